"""The GPT training step: tinygrad_lm against the same model in PyTorch eager.

For each config, on each device, each library in its own worker process, the workers
taking turns (benchmarks/workers.py says how and why):

- train step: forward + loss + backward + AdamW step (the work of one iteration of `train`);
- forward only (no graph: ``no_grad`` / ``torch.no_grad``);
- tokens/s, matmul GFLOP/s (6 per matmul weight + 12 L T C per token, over the whole step)
  and that as a share of the sgemm peak (NumPy's, in the tinygrad_lm worker, and PyTorch's:
  the share is of the faster). The peak is measured again just before each config's step:
  a shared VM's speed drifts by a third within minutes, and a peak taken at a fast moment
  for a step timed at a slow one would understate the share;
- peak memory: each library runs a few steps in a fresh worker, which reports its peak
  resident set size (CPU) or peak pool bytes (GPU);
- the floor: the step's matmuls alone (``shapes.step_matmuls``), on the array library's
  BLAS in the first tinygrad_lm worker and on PyTorch's, printed under the table beside
  0.75x of PyTorch's step. No step built on those matmuls can beat their time.

``--kernels fast reference`` also times tinygrad_lm with its reference kernels (a worker of
its own); ``--contention N`` keeps N CPU-bound processes busy while the configs are timed
(the contention run: ``--config baby --contention 2``).

    python -m benchmarks.bench_gpt [--config tiny baby small] [--device cpu cuda]
                                   [--kernels fast reference] [--contention N] [--json PATH]
"""
from __future__ import annotations

import argparse
import os
import sys
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

if __package__ in (None, ""):  # run as `python benchmarks/bench_gpt.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness, machine, shapes, workers  # noqa: E402
from benchmarks.contention import busy_processes  # noqa: E402
from benchmarks.shapes import CONFIGS, VOCAB, flops_per_step  # noqa: E402
from benchmarks.timing import Settings  # noqa: E402

GOALS = {"tiny": 1.25, "baby": 0.75, "small": 0.75}  # tinygrad_lm / torch step time
SGEMM_N = {"cpu": 2048, "cuda": 8192}
QUICK_SGEMM_N = 512


def default_configs(device: str, quick: bool) -> list[str]:
    """tiny with --quick; else tiny, baby and small, and medium on a GPU."""
    if quick:
        return ["tiny"]
    return ["tiny", "baby", "small"] + (["medium"] if device.startswith("cuda") else [])


def sgemm_peak(gemm: Mapping[str, Any]) -> tuple[float, str]:
    """The device's matmul ceiling: the fastest sgemm any library reached in this run, and
    which library that was. Every library's share is of this one ceiling (a library's own
    sgemm would let a faster BLAS show more than 100%)."""
    library = max((k for k in gemm if k != "n"), key=lambda k: gemm[k])
    return gemm[library], library


def measure_sgemm(pool: Mapping[str, workers.Worker], n: int,
                  settings: Settings) -> dict[str, Any]:
    """GFLOP/s of an ``n`` x ``n`` float32 matmul: the array library's in the first
    tinygrad_lm worker (``numpy`` or ``cupy``) and torch's, taking turns."""
    first = next(iter(pool))
    chosen = {name: w for name, w in pool.items() if name in (first, "torch")}
    timings, _ = workers.alternate(chosen, "sgemm", {"n": n}, settings)
    array_library = "numpy" if pool[first].hello["device"] == "cpu" else "cupy"
    return {"n": n, **{("torch" if name == "torch" else array_library): 2 * n ** 3 / t.median / 1e9
                       for name, t in timings.items()}}


def measure_config(pool: Mapping[str, workers.Worker], name: str, sgemm_n: int,
                   settings: Settings) -> dict[str, Any]:
    """The sgemm peak, then the step and the forward pass of config ``name`` in every worker,
    then the step's matmuls alone: one JSON row."""
    gemm = measure_sgemm(pool, sgemm_n, settings)
    steps, setups = workers.alternate(pool, "gpt_step", {"config": name}, settings)
    forwards, _ = workers.alternate(pool, "gpt_forward", {"config": name}, settings)
    first = next(iter(pool))
    floors, _ = workers.alternate({lib: w for lib, w in pool.items() if lib in (first, "torch")},
                                  "gpt_matmuls", {"config": name}, settings)
    flops = flops_per_step(name)
    row: dict[str, Any] = {"config": name, "device": pool[next(iter(pool))].hello["device"],
                           **CONFIGS[name], "vocab_size": VOCAB, "flops_per_step": flops,
                           "sgemm_gflops": gemm}
    for lib in pool:
        row[lib] = {"step": steps[lib].to_dict(), "forward": forwards[lib].to_dict(),
                    "tokens_per_s": shapes.tokens(name) / steps[lib].median,
                    "gflops": flops / steps[lib].median / 1e9,
                    "parameters": setups[lib]["info"]["parameters"]}
        if lib in floors:
            row[lib]["matmuls"] = floors[lib].to_dict()
        if lib != "torch" and "torch" in pool:
            row[lib]["step_ratio"] = harness.ratio(steps[lib], steps["torch"])
            row[lib]["forward_ratio"] = harness.ratio(forwards[lib], forwards["torch"])
    return row


def peak_memory(name: str, spec: workers.WorkerSpec, config: str) -> int:
    """Peak memory (bytes) of a fresh worker that has set up the train step of ``config``:
    built the model and run three steps (the calibration's; no warm-up asked)."""
    worker = workers.Worker(f"{name} (memory)", spec)
    try:
        worker.ask("setup", task="gpt_step", args={"config": config}, warmup=0,
                   target_s=0.0, max_number=1)
        return int(worker.ask("memory")["peak_bytes"])
    finally:
        worker.close()


def run_device(device: str, configs: Sequence[str], kernels: Sequence[str], settings: Settings,
               quick: bool, contention: int) -> dict[str, Any]:
    """Every config (while ``contention`` busy processes run), on ``device``: the workers'
    hellos, the rows and the busy pids."""
    sgemm_n = QUICK_SGEMM_N if quick else SGEMM_N[device.split(":")[0]]
    with workers.start_workers(device, kernels, torch=workers.torch_installed()) as pool:
        with busy_processes(contention) if contention else nullcontext([]) as pids:
            rows = [measure_config(pool, name, sgemm_n, settings) for name in configs]
        return {"workers": {name: w.hello for name, w in pool.items()}, "rows": rows,
                "busy_pids": pids}


def add_memory(rows: list[dict[str, Any]], device: str, kernels: Sequence[str],
               threads: int) -> None:
    """Each library's peak memory per config, from fresh workers, into ``rows``."""
    specs = {workers.kernels_name(k): workers.WorkerSpec("tinygrad_lm", device, k)
             for k in kernels}
    if workers.torch_installed():
        specs["torch"] = workers.WorkerSpec("torch", device, threads=threads)
    for row in rows:
        for lib, spec in specs.items():
            row[lib]["peak_bytes"] = peak_memory(lib, spec, row["config"])


def report(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a table: a line per config, device and library, then the floor lines."""
    headers = ["config", "device", "library", "step", "[min-max]", "forward", "tok/s",
               "GFLOP/s", "% peak", "peak mem", "step ratio"]
    lines = []
    for row in rows:
        reference, _ = sgemm_peak(row["sgemm_gflops"])
        for lib in [k for k in row if isinstance(row[k], dict) and "step" in row[k]]:
            r = row[lib]
            mem = r.get("peak_bytes")
            ratio = 1.0 if lib == "torch" else r.get("step_ratio")
            lines.append([
                row["config"], row["device"], lib, harness.fmt_time(r["step"]["median_s"]),
                f"[{harness.fmt_time(r['step']['min_s'])}-{harness.fmt_time(r['step']['max_s'])}]",
                harness.fmt_time(r["forward"]["median_s"]), f"{r['tokens_per_s']:,.0f}",
                f"{r['gflops']:.1f}", _share(r["gflops"], reference),
                f"{mem / 2**30:.2f} GiB" if mem else "-", harness.fmt_ratio(ratio)])
    table = harness.format_table(headers, lines, align="lll" + "r" * 8)
    floors = [_floor(row) for row in rows]
    table += "".join(f"\n{floor}" for floor in floors if floor)
    if any(line[8].endswith("!") for line in lines):
        table += ("\n! more than the sgemm peak measured before this config: that measurement "
                  "came out low (a busy machine, or --quick's 512 x 512 matmul), so the share "
                  "means little")
    return table


def _floor(row: Mapping[str, Any]) -> str:
    """What the step's matmuls alone take in each library (``shapes.step_matmuls``), and
    0.75x of PyTorch's step: no step built on those matmuls can be faster than them."""
    timed = {lib: r["matmuls"]["median_s"] for lib, r in row.items()
             if isinstance(r, dict) and "matmuls" in r}
    if not timed:
        return ""
    text = f"{row['config']} {row['device']}: the step's matmuls alone take " + ", ".join(
        f"{harness.fmt_time(t)} ({lib})" for lib, t in timed.items())
    if isinstance(row.get("torch"), dict):
        goal = 0.75 * row["torch"]["step"]["median_s"]
        text += f"; 0.75x of torch's step is {harness.fmt_time(goal)}"
    return text


def _share(gflops: float, peak: float) -> str:
    """GFLOP/s as a share of the sgemm peak; marked with ``!`` when it exceeds the peak,
    which only a peak measured too low can explain."""
    share = 100 * gflops / peak
    return f"{share:.0f}%" + ("!" if share > 100 else "")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_gpt",
                                     description=__doc__.split("\n\n")[0])
    harness.add_common_args(parser)
    parser.add_argument("--config", nargs="+", default=None, choices=sorted(CONFIGS),
                        help="model sizes (default: tiny baby small, and medium on cuda; "
                             "tiny with --quick)")
    parser.add_argument("--kernels", nargs="+", default=["fast"], choices=["fast", "reference"],
                        help="tinygrad_lm's kernel settings to time, each in its own worker "
                             "(default: fast)")
    parser.add_argument("--contention", type=int, default=0, metavar="N",
                        help="keep N CPU-bound processes busy while the configs are timed")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table, write JSON (and a chart) if asked."""
    args = _parser().parse_args(argv)
    if args.contention < 0:
        raise SystemExit("--contention must be 0 or more")
    settings = harness.settings_from_args(args)
    if not args.quick and args.repeat is None:
        settings = replace(settings, warmup=1, repeat=5, target_s=0.05)
    devices, skipped = harness.devices_to_run(args.device)
    if not devices:
        return 2
    kernels = list(dict.fromkeys(args.kernels))
    env: dict[str, Any] = {**machine.machine(), "pid": os.getpid(), "workers": {}}
    rows, busy = [], []
    for device in devices:
        run = run_device(device, args.config or default_configs(device, args.quick), kernels,
                         settings, args.quick, args.contention)
        env["workers"][device] = run["workers"]
        if not args.no_memory and not args.quick:
            threads = run["workers"][workers.kernels_name(kernels[0])]["threads"]
            add_memory(run["rows"], device, kernels, threads)
        rows += run["rows"]
        busy += run["busy_pids"]
    for device in devices:
        print(harness.header(env, device))
    contention = f"; {args.contention} busy processes running" if args.contention else ""
    print(f"GPT train step (forward + loss + backward + AdamW), vocab {VOCAB}{contention}; "
          f"sgemm peak ({QUICK_SGEMM_N if args.quick else 'full-size'} matmul, measured just "
          "before each config) " + ", ".join(
              f"{r['config']} {r['device']}: {sgemm_peak(r['sgemm_gflops'])[0]:.0f} GFLOP/s "
              f"({sgemm_peak(r['sgemm_gflops'])[1]})" for r in rows))
    print(report(rows))
    if args.json:
        harness.write_json(args.json, {
            "benchmark": "gpt", "environment": env,
            "settings": {**workers.describe(settings), "quick": args.quick, "kernels": kernels},
            "contention": {"processes": args.contention, "pids": busy},
            "rows": rows, "goals": GOALS,
            "skipped": [{"device": d, "reason": r} for d, r in skipped.items()]})
        compared = [r for r in rows if "step_ratio" in r.get("tinygrad_lm", {})]
        if compared:
            harness.save_chart(args.json.with_suffix(".png"),
                               [f"{r['config']} {r['device']} {what}" for r in compared
                                for what in ("step", "forward")],
                               [r["tinygrad_lm"][f"{what}_ratio"] for r in compared
                                for what in ("step", "forward")],
                               "GPT: tinygrad_lm time / PyTorch eager time",
                               "time ratio (log scale; below 1: tinygrad_lm is faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
