"""Each fused op, forward + backward, at the GPT configs' sizes: tinygrad_lm's fast kernels,
its reference kernels and PyTorch eager.

The ops a GPT step leans on, at the shapes they have in the tiny, baby and small configs
(benchmarks/shapes.py): GELU on (B*T, 4C), layer norm on (B*T, C), softmax cross-entropy
(mean) on (B*T, 65), causal attention on (B, heads, T, C/heads), the embedding's forward and
backward (a scatter-add) on (B, T) ids into (65, C), the AdamW update of the config's model
parameters, and gradient-norm clipping of their gradients. The gradients are taken with
``grad`` (``torch.autograd.grad``), which returns them: inside a model an op's inputs are
activations, not leaves, and no ``.grad`` is written (our engine copies a gradient into a
leaf's first ``.grad``, PyTorch hands its buffer over; that copy would be timed here and never
in a train step). Three worker processes, one
per library and kernel setting, take turns (benchmarks/workers.py says how and why); the
ratio fast / torch is the one to read (the goal: at most 1.5x at the baby and small sizes).
Before timing, the workers' norms of the output and of every gradient are compared: the
same inputs must give the same numbers (``check diff``, a relative difference).

    python -m benchmarks.bench_fused [--config tiny baby small] [--op gelu ...]
                                     [--device cpu cuda] [--json PATH] [--quick]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

if __package__ in (None, ""):  # run as `python benchmarks/bench_fused.py`: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness, machine, shapes, workers  # noqa: E402
from benchmarks.timing import Settings  # noqa: E402

KERNELS = ("fast", "reference")
GOAL_RATIO = 1.5
GOAL_CONFIGS = ("baby", "small")
FAST, REFERENCE = (workers.kernels_name(k) for k in KERNELS)


def measure(pool: Mapping[str, workers.Worker], op: str, config: str,
            settings: Settings) -> dict[str, Any]:
    """One op at one config in every worker: its JSON row."""
    timings, setups = workers.alternate(pool, "op", {"name": op, "config": config}, settings)
    fast, reference, torch = (timings.get(name) for name in (FAST, REFERENCE, "torch"))
    row: dict[str, Any] = {"op": op, "config": config, "device": pool[FAST].hello["device"],
                           "shapes": shapes.op_shapes(op, config),
                           **{name: t.to_dict() for name, t in timings.items()},
                           "reference_over_fast": harness.ratio(reference, fast),
                           "fast_over_torch": None if torch is None else harness.ratio(fast, torch),
                           "check_difference": workers.check_difference(setups)}
    if op in shapes.MODEL_OPS:
        row["parameters"] = setups[FAST]["info"]["parameters"]
    return row


def goal(row: Mapping[str, Any]) -> str:
    """``met`` or ``missed`` for the goal (fast <= 1.5x torch) where it applies, else ``-``."""
    if row["config"] not in GOAL_CONFIGS or row["fast_over_torch"] is None:
        return "-"
    return "met" if row["fast_over_torch"] <= GOAL_RATIO else "missed"


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows of one device as aligned text."""
    def cell(timing: Mapping[str, Any] | None) -> str:
        return "-" if timing is None else harness.fmt_time(timing["median_s"])

    def diff(value: float | None) -> str:
        return "-" if value is None else f"{value:.0e}"

    return harness.format_table(
        ["op", "config", "fast", "reference", "torch", "fast/torch", "reference/fast",
         f"goal <={GOAL_RATIO}x", "check diff"],
        [[r["op"], r["config"], cell(r[FAST]), cell(r[REFERENCE]), cell(r.get("torch")),
          harness.fmt_ratio(r["fast_over_torch"]), harness.fmt_ratio(r["reference_over_fast"]),
          goal(r), diff(r["check_difference"])] for r in rows],
        align="ll" + "r" * 7)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_fused",
        description="Time each fused op's forward + backward (and the AdamW update and "
                    "gradient clipping) at the GPT configs' sizes: tinygrad_lm's fast and "
                    "reference kernels against PyTorch eager, each in its own worker process.")
    harness.add_common_args(parser)
    parser.add_argument("--config", nargs="+", default=None,
                        choices=[c for c in shapes.CONFIGS if c != "medium"],
                        help="sizes (default: tiny baby small; tiny with --quick)")
    parser.add_argument("--op", nargs="+", default=list(shapes.FUSED_OPS),
                        choices=shapes.FUSED_OPS, help="ops to time (default: all)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print a table per device, write JSON if asked."""
    args = _parser().parse_args(argv)
    settings = harness.settings_from_args(args)
    devices, skipped = harness.devices_to_run(args.device)
    if not devices:
        return 2
    configs = args.config or (["tiny"] if args.quick else ["tiny", "baby", "small"])
    env: dict[str, Any] = {**machine.machine(), "pid": os.getpid(), "workers": {}}
    rows: list[dict[str, Any]] = []
    for device in devices:
        with workers.start_workers(device, KERNELS, torch=workers.torch_installed()) as pool:
            env["workers"][device] = {name: w.hello for name, w in pool.items()}
            device_rows = [measure(pool, op, config, settings)
                           for config in configs for op in args.op]
        rows += device_rows
        print(harness.header(env, device))
        print(f"forward + backward, median per call; goal: fast <= {GOAL_RATIO}x torch at "
              f"{' and '.join(GOAL_CONFIGS)}")
        print(table(device_rows))
    if args.json is not None:
        harness.write_json(args.json, {
            "benchmark": "fused", "environment": env,
            "settings": {**workers.describe(settings), "quick": args.quick, "devices": devices},
            "configs": {name: shapes.CONFIGS[name] for name in configs}, "vocab": shapes.VOCAB,
            "goal": {"ratio": GOAL_RATIO, "configs": list(GOAL_CONFIGS)},
            "rows": rows, "skipped": [{"device": d, "reason": r} for d, r in skipped.items()],
        })
    return 0


if __name__ == "__main__":
    sys.exit(main())
