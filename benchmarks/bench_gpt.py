"""The GPT training step: tinygrad_lm against the same model in PyTorch eager.

For each config, on each device, in one process and alternating between the libraries:

- train step: forward + loss + backward + AdamW step (the work of one iteration of `train`);
- forward only (no graph: ``no_grad`` / ``torch.no_grad``);
- tokens/s, matmul GFLOP/s (6 per matmul weight + 12 L T C per token, over the whole step)
  and that as a share of the sgemm peak measured on the spot (the fastest library's);
- peak memory: each library runs a few steps in a fresh child process, which reports its
  peak resident set size (CPU) or peak pool bytes (GPU).

    python -m benchmarks.bench_gpt [--config tiny baby small] [--device cpu cuda] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python benchmarks/bench_gpt.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tinygrad_lm as tl  # noqa: E402  (before NumPy: see tinygrad_lm/parallel.py)
import numpy as np  # noqa: E402
from benchmarks import harness  # noqa: E402
from benchmarks.harness import Candidate, Settings  # noqa: E402
from tinygrad_lm import backend  # noqa: E402
from tinygrad_lm.models import GPT, GPTConfig  # noqa: E402
from tinygrad_lm.train import TrainConfig, configure_optimizer  # noqa: E402

CONFIGS: dict[str, dict[str, int]] = {
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, block_size=32, batch_size=8),
    "baby": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12),
    "small": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64),
    "medium": dict(n_layer=12, n_head=12, n_embd=768, block_size=512, batch_size=16),  # GPU
}
VOCAB = 65
GOALS = {"tiny": 1.25, "baby": 0.75, "small": 0.75}  # tinygrad_lm / torch step time


def model_config(name: str) -> GPTConfig:
    c = CONFIGS[name]
    return GPTConfig(block_size=c["block_size"], vocab_size=VOCAB, n_layer=c["n_layer"],
                     n_head=c["n_head"], n_embd=c["n_embd"], dropout=0.0)


def flops_per_step(name: str) -> float:
    """Matmul FLOPs of one training step: 6 per matmul weight per token (forward 2,
    backward 4) plus attention's 12 L T C per token (scores and weighted sum, forward and
    backward). The position embedding, norms and biases take part in no matmul, so they are
    left out (nanoGPT leaves the position embedding out of its 6N too)."""
    c, cfg = CONFIGS[name], model_config(name)
    weights = sum(int(np.prod(p.shape)) for key, p in GPT(cfg).named_parameters()
                  if len(p.shape) == 2 and key != "transformer.wpe.weight")
    tokens = c["batch_size"] * c["block_size"]
    return tokens * (6 * weights + 12 * c["n_layer"] * c["block_size"] * c["n_embd"])


def sgemm_peak(gemm: dict[str, Any]) -> tuple[float, str]:
    """The device's matmul ceiling: the fastest sgemm any library reached in this run, and
    which library that was. Every library's share is of this one ceiling (a library's own
    sgemm would let a faster BLAS show more than 100%)."""
    library = max((k for k in gemm if k != "n"), key=lambda k: gemm[k])
    return gemm[library], library


def batch(name: str) -> tuple[np.ndarray, np.ndarray]:
    c = CONFIGS[name]
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCAB, (c["batch_size"], c["block_size"]))
    return x, np.roll(x, -1, axis=1)


class Step:
    """One training step and one forward pass of a model; subclasses build the model, the
    optimizer, the batch and ``no_grad`` for their library."""

    model: Any
    optimizer: Any
    x: Any
    y: Any
    no_grad: Any

    def step(self) -> None:
        _, loss = self.model(self.x, self.y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def forward(self) -> None:
        with self.no_grad():
            self.model(self.x, self.y)


class TinygradStep(Step):
    """tinygrad_lm's GPT with the optimizer of `train`."""

    def __init__(self, name: str, device: str) -> None:
        tl.manual_seed(0)
        self.model = GPT(model_config(name)).to(device)
        self.optimizer = configure_optimizer(self.model, TrainConfig())
        x, y = batch(name)
        self.x, self.y = tl.Tensor(x, device=device), tl.Tensor(y, device=device)
        self.no_grad = tl.no_grad


class TorchStep(Step):
    """The same model in PyTorch eager (benchmarks/torch_gpt.py) with the same AdamW groups
    (PyTorch's default init: the values do not change the time)."""

    def __init__(self, name: str, device: str, torch: Any) -> None:
        from benchmarks.torch_gpt import TorchGPT

        torch.manual_seed(0)
        self.model = TorchGPT(vars(model_config(name))).to(device)
        decay = [p for p in self.model.parameters() if p.ndim >= 2]
        other = [p for p in self.model.parameters() if p.ndim < 2]
        t = TrainConfig()
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": t.weight_decay},
                                            {"params": other, "weight_decay": 0.0}],
                                           lr=t.lr, betas=(t.beta1, t.beta2))
        x, y = batch(name)
        self.x, self.y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        self.no_grad = torch.no_grad


def peak_memory(library: str, name: str, device: str, steps: int = 3) -> float | None:
    """Peak memory (bytes) of ``steps`` training steps in a fresh child process."""
    cmd = [sys.executable, "-m", "benchmarks.bench_gpt", "--measure-memory", library, name, device,
           str(steps)]
    out = subprocess.run(cmd, cwd=harness.ROOT, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        sys.stderr.write(f"memory measurement of {library} {name} failed:\n{out.stderr}\n")
        return None
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_bytes"])


def _measure_memory_child(library: str, name: str, device: str, steps: int) -> None:
    torch = harness.import_torch() if library == "torch" else None
    runner: Step = TorchStep(name, device, torch) if torch else TinygradStep(name, device)
    for _ in range(steps):
        runner.step()
    if device.startswith("cuda"):
        if torch:
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = backend.get_device(device).xp.get_default_memory_pool().total_bytes()
    else:
        peak = _peak_rss()
    print(json.dumps({"peak_bytes": peak}))


def _peak_rss() -> int:
    """This process's peak resident set size in bytes. VmHWM, unlike getrusage's ru_maxrss,
    starts afresh at exec, so the parent's (torch-laden) high-water mark does not leak in."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_config(name: str, device: str, settings: Settings, memory: bool) -> dict[str, Any]:
    torch = harness.import_torch()
    tdev = harness.torch_device(torch, device)
    ours = TinygradStep(name, device)
    sync = harness.tinygrad_sync(device)
    step_candidates = {"tinygrad_lm": Candidate(ours.step, sync)}
    forward_candidates = {"tinygrad_lm": Candidate(ours.forward, sync)}
    if tdev is not None:
        theirs = TorchStep(name, tdev, torch)
        tsync = harness.torch_sync(torch, tdev)
        step_candidates["torch"] = Candidate(theirs.step, tsync)
        forward_candidates["torch"] = Candidate(theirs.forward, tsync)
    steps = harness.time_interleaved(step_candidates, settings.threaded())
    forwards = harness.time_interleaved(forward_candidates, settings.threaded())
    c = CONFIGS[name]
    tokens = c["batch_size"] * c["block_size"]
    flops = flops_per_step(name)
    row: dict[str, Any] = {"config": name, "device": device, **c, "vocab_size": VOCAB,
                           "flops_per_step": flops}
    for lib in step_candidates:
        row[lib] = {"step": steps[lib].to_dict(), "forward": forwards[lib].to_dict(),
                    "tokens_per_s": tokens / steps[lib].median,
                    "gflops": flops / steps[lib].median / 1e9}
        if memory:
            row[lib]["peak_bytes"] = peak_memory(lib, name, device)
    if "torch" in step_candidates:
        row["step_ratio"] = harness.ratio(steps["tinygrad_lm"], steps["torch"])
        row["forward_ratio"] = harness.ratio(forwards["tinygrad_lm"], forwards["torch"])
    return row


def report(rows: list[dict[str, Any]], peak: dict[str, dict[str, Any]]) -> str:
    headers = ["config", "device", "library", "step", "[min-max]", "forward", "tok/s", "GFLOP/s",
               "% peak", "peak mem", "step ratio"]
    lines = []
    for row in rows:
        reference, _ = sgemm_peak(peak[row["device"]])
        for lib in ("tinygrad_lm", "torch"):
            if lib not in row:
                continue
            r = row[lib]
            mem = r.get("peak_bytes")
            lines.append([
                row["config"], row["device"], lib, harness.fmt_time(r["step"]["median_s"]),
                f"[{harness.fmt_time(r['step']['min_s'])}-{harness.fmt_time(r['step']['max_s'])}]",
                harness.fmt_time(r["forward"]["median_s"]), f"{r['tokens_per_s']:,.0f}",
                f"{r['gflops']:.1f}", _share(r["gflops"], reference),
                f"{mem / 2**30:.2f} GiB" if mem else "-",
                harness.fmt_ratio(row.get("step_ratio")) if lib == "tinygrad_lm" else "1.00x"])
    table = harness.format_table(headers, lines)
    if any(line[8].endswith("!") for line in lines):
        table += ("\n! more than the sgemm peak measured in this run: that measurement came out "
                  "low (a busy machine, or --quick's 512 x 512 matmul), so the share means little")
    return table


def _share(gflops: float, peak: float) -> str:
    """GFLOP/s as a share of the sgemm peak; marked with ``!`` when it exceeds the peak,
    which only a peak measured too low can explain."""
    share = 100 * gflops / peak
    return f"{share:.0f}%" + ("!" if share > 100 else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_common_args(parser)
    parser.add_argument("--config", nargs="+", default=None, choices=sorted(CONFIGS),
                        help="model sizes (default: tiny baby small; tiny with --quick)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument("--measure-memory", nargs=4, metavar=("LIB", "CONFIG", "DEVICE", "STEPS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure_memory:
        lib, name, device, steps = args.measure_memory
        _measure_memory_child(lib, name, device, int(steps))
        return 0
    settings = harness.settings_from_args(args)
    if not args.quick and args.repeat is None:
        settings = replace(settings, warmup=1, repeat=5, target_s=0.05)
    configs = args.config or (["tiny"] if args.quick else ["tiny", "baby", "small"])
    devices, skipped = harness.devices_to_run(args.device)
    if not devices:
        return 2
    env = harness.environment()
    peak = {d: harness.sgemm_gflops(d, 512 if args.quick else harness_sgemm_n(d), settings)
            for d in devices}
    rows = [run_config(name, device, settings, memory=not args.no_memory and not args.quick)
            for device in devices for name in configs]
    print(f"GPT train step (forward + loss + backward + AdamW), vocab {VOCAB}; "
          f"BLAS {env['blas'].get('name', '?')} with {harness.blas_threads()} threads; "
          f"sgemm peak (the fastest library, {'512' if args.quick else 'full-size'} matmul) "
          + ", ".join(f"{d}: {sgemm_peak(p)[0]:.0f} GFLOP/s ({sgemm_peak(p)[1]})"
                      for d, p in peak.items()))
    print(report(rows, peak))
    if args.json:
        harness.write_json(args.json, {"benchmark": "gpt", "environment": env,
                                       "sgemm_gflops": peak, "rows": rows, "goals": GOALS})
        compared = [r for r in rows if "step_ratio" in r]
        if compared:
            harness.save_chart(args.json.with_suffix(".png"),
                               [f"{r['config']} {r['device']} {what}" for r in compared
                                for what in ("step", "forward")],
                               [r[f"{what}_ratio"] for r in compared
                                for what in ("step", "forward")],
                               "GPT: tinygrad_lm time / PyTorch eager time",
                               "time ratio (log scale; below 1: tinygrad_lm is faster)")
    return 0


def harness_sgemm_n(device: str) -> int:
    return 2048 if device == "cpu" else 8192


if __name__ == "__main__":
    sys.exit(main())
