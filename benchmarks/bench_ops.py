"""Op by op: tinygrad_lm against PyTorch eager, forward alone and forward+backward.

Two questions, one table per device:

- Overhead. Around tiny arrays NumPy's own work is negligible, so the time is the engine's:
  Python calls, graph recording, the backward walk. ``(a * b + c).sum().backward()`` on 4x4
  float32 is the headline number (goal: at most 1.5x PyTorch eager).
- Throughput. Every primitive op, and the fused ops of ``tinygrad_lm.nn.functional`` that
  exist in this checkout, at three sizes, with torch doing the same work beside it.

Each row checks that both libraries computed the same forward result (``max_abs_diff``)
before timing them, interleaved, in the same process.

    python -m benchmarks.bench_ops [--device cpu cuda] [--json out.json] [--quick]
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

if __package__ in (None, ""):  # run as `python benchmarks/bench_ops.py`: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

import tinygrad_lm as tl  # noqa: E402
from benchmarks import harness  # noqa: E402
from benchmarks.harness import Candidate, Settings  # noqa: E402

OVERHEAD = "overhead"
GOAL_RATIO = 1.5
SIZES = {"small": (16, 64), "medium": (256, 512), "large": (1024, 1024)}
ATTENTION_SIZES = {"small": (1, 2, 16, 32), "medium": (4, 4, 64, 32), "large": (8, 8, 128, 64)}
FUSED = ("layer_norm", "cross_entropy", "scaled_dot_product_attention")
SGEMM_N = {"cpu": 2048, "cuda": 8192}
QUICK_SGEMM_N = 256


@dataclass(frozen=True)
class Input:
    """How to make one argument: ``float`` (standard normal), ``positive`` (uniform in
    [0.5, 1.5), for log and division), ``index`` (int64 in [0, high)) or ``bool``."""

    shape: tuple[int, ...]
    kind: str = "float"
    high: int = 0


@dataclass(frozen=True)
class OpSpec:
    """One benchmarked op: its inputs per size label, and the same computation written for
    tinygrad_lm and for torch. ``fused`` names the ``tinygrad_lm.nn.functional`` function
    the row needs (skipped when absent); ``flops`` counts a forward's floating-point work;
    ``threaded`` rows run on BLAS thread pools and are timed with ``Settings.threaded``."""

    name: str
    sizes: Mapping[str, Sequence[Input]]
    tl: Callable[..., Any]
    torch: Callable[..., Any]
    fused: str | None = None
    flops: Callable[[Sequence[Input]], int] | None = None
    threaded: bool = False


def _per_size(make: Callable[[int, int], list[Input]]) -> dict[str, list[Input]]:
    return {label: make(rows, cols) for label, (rows, cols) in SIZES.items()}


def _matmul_flops(inputs: Sequence[Input]) -> int:
    (m, k), (_, n) = inputs[0].shape, inputs[1].shape
    return 2 * m * k * n


def find_fused() -> tuple[dict[str, Callable[..., Any]], dict[str, str]]:
    """The fused ops ``tinygrad_lm.nn.functional`` provides now, and why the others are not
    benchmarked (that module is still being written, so this is decided at run time)."""
    try:
        functional = importlib.import_module("tinygrad_lm.nn.functional")
    except Exception as exc:  # missing, or mid-edit: report it and run the primitives
        return {}, {name: f"tinygrad_lm.nn.functional: {type(exc).__name__}: {exc}"
                    for name in FUSED}
    found, missing = {}, {}
    for name in FUSED:
        fn = getattr(functional, name, None)
        if fn is None:
            missing[name] = f"tinygrad_lm.nn.functional has no {name}"
        else:
            found[name] = fn
    return found, missing


def op_specs(torch: Any, fused: Mapping[str, Callable[..., Any]]) -> list[OpSpec]:
    """Every row of the benchmark. ``torch`` may be None (its lambdas are then never called);
    so may any entry of ``fused`` (its row is skipped)."""
    one = _per_size(lambda r, c: [Input((r, c))])
    two = _per_size(lambda r, c: [Input((r, c)), Input((r, c))])
    positive = _per_size(lambda r, c: [Input((r, c), "positive")])

    def tnn() -> Any:
        return torch.nn.functional

    attention = {label: [Input(shape)] * 3 for label, shape in ATTENTION_SIZES.items()}
    return [
        OpSpec(OVERHEAD, {"4x4": [Input((4, 4))] * 3},
               lambda a, b, c: (a * b + c).sum(), lambda a, b, c: (a * b + c).sum()),
        OpSpec("add", two, lambda a, b: a + b, lambda a, b: a + b),
        OpSpec("mul", two, lambda a, b: a * b, lambda a, b: a * b),
        OpSpec("div", _per_size(lambda r, c: [Input((r, c)), Input((r, c), "positive")]),
               lambda a, b: a / b, lambda a, b: a / b),
        OpSpec("exp", one, lambda x: x.exp(), lambda x: x.exp()),
        OpSpec("log", positive, lambda x: x.log(), lambda x: x.log()),
        OpSpec("tanh", one, lambda x: x.tanh(), lambda x: x.tanh()),
        OpSpec("sigmoid", one, lambda x: x.sigmoid(), lambda x: x.sigmoid()),
        OpSpec("relu", one, lambda x: x.relu(), lambda x: x.relu()),
        OpSpec("gelu", one, lambda x: x.gelu(), lambda x: tnn().gelu(x)),
        OpSpec("sum", one, lambda x: x.sum(axis=-1), lambda x: x.sum(dim=-1)),
        OpSpec("max", one, lambda x: x.max(axis=-1), lambda x: x.amax(dim=-1)),
        OpSpec("softmax", one, lambda x: x.softmax(-1), lambda x: x.softmax(-1)),
        OpSpec("log_softmax", one, lambda x: x.log_softmax(-1), lambda x: x.log_softmax(-1)),
        OpSpec("matmul", _per_size(lambda r, c: [Input((r, c)), Input((c, c))]),
               lambda a, b: a @ b, lambda a, b: a @ b, flops=_matmul_flops, threaded=True),
        OpSpec("reshape+permute", one, lambda x: x.reshape(x.shape[0], -1, 8).permute(0, 2, 1),
               lambda x: x.reshape(x.shape[0], -1, 8).permute(0, 2, 1)),
        OpSpec("gather", _per_size(lambda r, c: [Input((r, c)), Input((r,), "index", r)]),
               lambda x, i: x[i], lambda x, i: x[i]),
        OpSpec("cat", two, lambda a, b: tl.cat([a, b], axis=0),
               lambda a, b: torch.cat([a, b], dim=0)),
        OpSpec("where", _per_size(lambda r, c: [Input((r, c), "bool"), Input((r, c)),
                                                 Input((r, c))]),
               lambda m, a, b: tl.where(m, a, b), lambda m, a, b: torch.where(m, a, b)),
        OpSpec("layer_norm", _per_size(lambda r, c: [Input((r, c)), Input((c,)), Input((c,))]),
               lambda x, w, b: fused["layer_norm"](x, (x.shape[-1],), w, b),
               lambda x, w, b: tnn().layer_norm(x, (x.shape[-1],), w, b), fused="layer_norm"),
        OpSpec("cross_entropy", _per_size(lambda r, c: [Input((r, c)), Input((r,), "index", c)]),
               lambda x, y: fused["cross_entropy"](x, y),
               lambda x, y: tnn().cross_entropy(x, y), fused="cross_entropy"),
        OpSpec("attention", attention,
               lambda q, k, v: fused["scaled_dot_product_attention"](q, k, v, is_causal=True),
               lambda q, k, v: tnn().scaled_dot_product_attention(q, k, v, is_causal=True),
               fused="scaled_dot_product_attention"),
    ]


def _array(spec: Input, rng: np.random.Generator) -> np.ndarray:
    if spec.kind == "float":
        return rng.standard_normal(spec.shape, dtype=np.float32)
    if spec.kind == "positive":
        return rng.random(spec.shape, dtype=np.float32) + np.float32(0.5)
    if spec.kind == "index":
        return rng.integers(0, spec.high, spec.shape, dtype=np.int64)
    if spec.kind == "bool":
        return rng.random(spec.shape) < 0.5
    raise ValueError(f"bench_ops: unknown input kind {spec.kind!r}")


@dataclass
class Case:
    """One op at one size on one device, ready to time: candidates per mode ("fwd" and
    "fwd+bwd"), and how far torch's forward result is from ours."""

    candidates: dict[str, dict[str, Candidate]]
    max_abs_diff: float | None


def prepare(spec: OpSpec, inputs: Sequence[Input], device: str, torch: Any,
            rng: np.random.Generator) -> Case:
    """Build the inputs on ``device`` for both libraries and the functions to time.

    Forward+backward clears the inputs' ``.grad`` each call in both libraries, so neither
    pays for accumulating into the previous call's gradient. A scalar output starts backward
    with no explicit gradient; any other gets the same fixed random ``dout`` in both.
    """
    arrays = [_array(i, rng) for i in inputs]
    tl_args = [tl.Tensor(a, device=device, requires_grad=a.dtype.kind == "f") for a in arrays]
    tl_leaves = [t for t in tl_args if t.requires_grad]
    tl_out = spec.tl(*tl_args)
    dout = rng.standard_normal(tl_out.shape, dtype=np.float32) if tl_out.ndim else None
    tl_dout = None if dout is None else tl.Tensor(dout, device=device)

    def tl_step() -> None:
        for t in tl_leaves:
            t.grad = None
        spec.tl(*tl_args).backward(tl_dout)

    tl_sync = harness.tinygrad_sync(device)
    candidates = {"fwd": {"tinygrad_lm": Candidate(lambda: spec.tl(*tl_args), tl_sync)},
                  "fwd+bwd": {"tinygrad_lm": Candidate(tl_step, tl_sync)}}
    tdev = harness.torch_device(torch, device)
    if tdev is None:
        return Case(candidates, None)

    t_args = [torch.from_numpy(a.copy()).to(tdev).requires_grad_(a.dtype.kind == "f")
              for a in arrays]
    t_leaves = [t for t in t_args if t.requires_grad]
    t_dout = None if dout is None else torch.from_numpy(dout).to(tdev)

    def torch_step() -> None:
        for t in t_leaves:
            t.grad = None
        spec.torch(*t_args).backward(t_dout)

    t_sync = harness.torch_sync(torch, tdev)
    candidates["fwd"]["torch"] = Candidate(lambda: spec.torch(*t_args), t_sync)
    candidates["fwd+bwd"]["torch"] = Candidate(torch_step, t_sync)
    expected = spec.torch(*t_args).detach().cpu().numpy()
    diff = float(np.max(np.abs(tl_out.numpy() - expected)))
    return Case(candidates, diff if np.isfinite(diff) else None)


def run_case(spec: OpSpec, label: str, inputs: Sequence[Input], device: str, case: Case,
             settings: Settings) -> list[dict[str, Any]]:
    """Time both modes of one prepared case; one JSON row per mode."""
    rows = []
    for mode, candidates in case.candidates.items():
        timings = harness.time_interleaved(candidates, settings)
        ours, theirs = timings["tinygrad_lm"], timings.get("torch")
        row: dict[str, Any] = {
            "op": spec.name, "size": label, "shapes": [list(i.shape) for i in inputs],
            "device": device, "mode": mode, "tinygrad_lm": ours.to_dict(),
            "torch": None if theirs is None else theirs.to_dict(),
            "ratio": None if theirs is None else harness.ratio(ours, theirs),
            "max_abs_diff": case.max_abs_diff,
        }
        if spec.flops is not None:  # the backward of a matmul is two more of the same size
            flops = spec.flops(inputs) * (1 if mode == "fwd" else 3)
            row["gflops"] = {name: flops / t.median / 1e9 for name, t in timings.items()}
        rows.append(row)
    return rows


def headline(rows: Sequence[Mapping[str, Any]], device: str) -> dict[str, Any]:
    """The overhead rows of ``device`` in short: seconds per call and the ratio to torch."""
    out: dict[str, Any] = {"goal_ratio": GOAL_RATIO}
    for row in rows:
        if row["op"] == OVERHEAD and row["device"] == device:
            out[row["mode"]] = {
                "tinygrad_lm_s": row["tinygrad_lm"]["median_s"],
                "torch_s": None if row["torch"] is None else row["torch"]["median_s"],
                "ratio": row["ratio"],
            }
    return out


def _note(row: Mapping[str, Any]) -> str:
    if "gflops" not in row:
        return ""
    return " / ".join(f"{name} {value:.1f}" for name, value in row["gflops"].items()) + " GFLOP/s"


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows of one device as aligned text."""
    notes = any("gflops" in row for row in rows)
    body = []
    for row in rows:
        ours, theirs = row["tinygrad_lm"], row["torch"]
        body.append([
            row["op"], row["size"], "x".join(map(str, row["shapes"][0])), row["mode"],
            f"{harness.fmt_time(ours['median_s'])} [{harness.fmt_time(ours['min_s'])}-"
            f"{harness.fmt_time(ours['max_s'])}]",
            "-" if theirs is None else harness.fmt_time(theirs["median_s"]),
            harness.fmt_ratio(row["ratio"]),
        ] + ([_note(row)] if notes else []))
    headers = ["op", "size", "shape", "mode", "tinygrad_lm median [min-max]", "torch", "ratio"]
    return harness.format_table(headers + ([""] if notes else []), body,
                                align="llllrrr" + ("l" if notes else ""))


def run_device(specs: Sequence[OpSpec], device: str, torch: Any, missing: Mapping[str, str],
               settings: Settings, quick: bool, rng: np.random.Generator,
               skipped: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Every row of ``specs`` on one device; what cannot run is appended to ``skipped``."""
    rows: list[dict[str, Any]] = []
    for spec in specs:
        if spec.fused in missing:
            skipped.append({"op": spec.name, "device": device, "reason": missing[spec.fused]})
            continue
        # the headline row gets twice the samples: it is the number people quote
        row_settings = (dataclasses.replace(settings, repeat=settings.repeat * 2)
                        if spec.name == OVERHEAD else settings)
        if spec.threaded:
            row_settings = row_settings.threaded()
        for label, inputs in spec.sizes.items():
            if spec.name != OVERHEAD and label not in (("small",) if quick else SIZES):
                continue
            try:
                case = prepare(spec, inputs, device, torch, rng)
                rows += run_case(spec, label, inputs, device, case, row_settings)
            except Exception as exc:  # a broken op costs its row, not the whole run
                reason = f"error: {type(exc).__name__}: {exc}"
                print(f"{spec.name} {label} on {device}: {reason}", file=sys.stderr)
                skipped.append({"op": spec.name, "size": label, "device": device,
                                "reason": reason})
    return rows


def print_device(device: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """The headline and the table of one device."""
    head = headline(rows, device)
    print(f"\n== {device}: seconds per call; ratio = tinygrad_lm / torch (lower is better)")
    for mode in ("fwd+bwd", "fwd"):
        if mode in head and head[mode]["torch_s"] is not None:
            print(f"headline overhead, (a * b + c).sum() on 4x4, {mode}: "
                  f"{harness.fmt_time(head[mode]['tinygrad_lm_s'])} vs torch "
                  f"{harness.fmt_time(head[mode]['torch_s'])}: "
                  f"{harness.fmt_ratio(head[mode]['ratio'])} (goal <= {GOAL_RATIO}x)")
    print(table(rows))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_ops",
        description="Time each op in tinygrad_lm and PyTorch eager, forward and "
                    "forward+backward, and print the ratio (tinygrad_lm / torch).")
    harness.add_common_args(parser)
    parser.add_argument("--ops", nargs="+", metavar="NAME",
                        help="only these ops (names as in the table; the overhead row is "
                             f"'{OVERHEAD}')")
    parser.add_argument("--profile", action="store_true",
                        help="also print a cProfile of tinygrad_lm's 4x4 overhead "
                             "forward+backward on the first device")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the tables, write JSON (and a chart) if asked."""
    args = _parser().parse_args(argv)
    settings = harness.settings_from_args(args)
    names = [s.name for s in op_specs(None, {})]
    unknown = set(args.ops or ()) - set(names)
    if unknown:
        raise SystemExit(f"bench_ops: unknown op(s) {sorted(unknown)}; choose from {names}")
    devices, skipped_devices = harness.devices_to_run(args.device)
    if not devices:
        return 2
    torch = harness.import_torch()
    fused, missing = find_fused()
    specs = [s for s in op_specs(torch, fused) if not args.ops or s.name in args.ops]

    env = harness.environment()
    print(f"{env['cpu']} ({env['cpu_count']} CPUs), numpy {env['numpy']} "
          f"({env['blas'].get('name')}, {env['blas']['threads']} threads), "
          f"torch {env['torch']['version'] if 'torch' in env else 'not installed'}, "
          f"GPUs: {', '.join(env['gpus']) or 'none'}")
    sgemm = {}
    for device in devices:
        n = QUICK_SGEMM_N if args.quick else SGEMM_N[device.split(":")[0]]
        sgemm[device] = harness.sgemm_gflops(device, n, settings)
        print(f"sgemm {n}x{n} on {device}: " + ", ".join(
            f"{k} {v:.1f} GFLOP/s" for k, v in sgemm[device].items() if k != "n"))

    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = [{"device": d, "reason": r} for d, r in skipped_devices.items()]
    for device in devices:
        device_rows = run_device(specs, device, torch, missing, settings, args.quick, rng,
                                 skipped)
        rows += device_rows
        print_device(device, device_rows)
    for entry in skipped:
        what = f"{entry['op']} on {entry['device']}" if "op" in entry else entry["device"]
        print(f"skipped {what}: {entry['reason']}")

    if args.profile and devices:
        overhead = next(s for s in op_specs(torch, fused) if s.name == OVERHEAD)
        case = prepare(overhead, overhead.sizes["4x4"], devices[0], torch, rng)
        print(f"\ncProfile of 4x4 overhead fwd+bwd on {devices[0]}, 2000 calls:")
        print(harness.profile_calls(case.candidates["fwd+bwd"]["tinygrad_lm"].fn, 2000))

    if args.json is not None:
        payload = {
            "benchmark": "ops",
            "settings": {**dataclasses.asdict(settings), "quick": args.quick,
                         "devices": devices},
            "environment": env,
            "sgemm_gflops": sgemm,
            "headline": {device: headline(rows, device) for device in devices},
            "rows": rows,
            "skipped": skipped,
        }
        harness.write_json(args.json, payload)
        charted = [r for r in rows if r["ratio"] is not None]
        if charted:
            harness.save_chart(
                args.json.with_suffix(".png"),
                [f"{r['device']} {r['op']} {r['size']} {r['mode']}" for r in charted],
                [r["ratio"] for r in charted], "tinygrad_lm / torch per op",
                "time ratio (log scale)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
