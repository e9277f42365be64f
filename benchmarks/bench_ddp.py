"""Data-parallel scaling: tokens/s of the GPT train step on 1 and N MPI ranks.

    mpirun -n 1 python -m benchmarks.bench_ddp --config baby small
    mpirun -n 2 python -m benchmarks.bench_ddp --config baby small

Each rank trains on its own batch of the config's size (so N ranks process N times the
tokens per step) and uses cores/N BLAS threads, so 1 rank and N ranks share the same cores.
Rank 0 prints the median step time, the global tokens/s and the time of the gradient
all-reduce inside the step (JSON with ``--json``).
"""
from __future__ import annotations

import os

if "OPENBLAS_NUM_THREADS" not in os.environ:  # must be set before NumPy loads OpenBLAS
    _world = int(os.environ.get("OMPI_COMM_WORLD_SIZE", os.environ.get("PMI_SIZE", "1")))
    os.environ["OPENBLAS_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _world))

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import tinygrad_lm as tl  # noqa: E402
from benchmarks import harness  # noqa: E402
from benchmarks.shapes import CONFIGS, batch, model_kwargs  # noqa: E402
from tinygrad_lm import distributed  # noqa: E402
from tinygrad_lm.models import GPT, GPTConfig  # noqa: E402
from tinygrad_lm.train import TrainConfig, configure_optimizer  # noqa: E402


def measure(name: str, steps: int, group: distributed.ProcessGroup) -> dict[str, Any]:
    """Median step time and all-reduce time of ``steps`` data-parallel steps (after 2 warm-ups)."""
    tl.manual_seed(0)
    model = distributed.DistributedDataParallel(GPT(GPTConfig(**model_kwargs(name))), group)
    optimizer = configure_optimizer(model.module, TrainConfig())
    x, y = batch(name)
    x, y = tl.Tensor(x), tl.Tensor(y)
    step_times, reduce_times = [], []
    for i in range(steps + 2):
        group.barrier()
        started = time.perf_counter()
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        reduce_started = time.perf_counter()
        model.all_reduce_gradients()
        reduced = time.perf_counter()
        optimizer.step()
        if i >= 2:
            step_times.append(time.perf_counter() - started)
            reduce_times.append(reduced - reduce_started)
    c = CONFIGS[name]
    step = statistics.median(group.all_reduce_floats([statistics.median(step_times)], "mean"))
    reduce = group.all_reduce_floats([statistics.median(reduce_times)], "mean")[0]
    return {"config": name, "ranks": group.world_size, "blas_threads": harness.blas_threads(),
            "step_s": step, "tokens_per_s": group.world_size * c["batch_size"] * c["block_size"] / step,
            "all_reduce_ms": reduce * 1e3, "buckets": len(model.bucket_sizes),
            "gradient_mib": sum(model.bucket_sizes) * 4 / 2**20}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", nargs="+", default=["baby", "small"],
                        choices=["tiny", "baby", "small"])
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: by size)")
    parser.add_argument("--json", default=None, metavar="PATH")
    args = parser.parse_args(argv)
    group = distributed.init_process_group()
    rows = [measure(name, args.steps or {"tiny": 40, "baby": 20, "small": 3}[name], group)
            for name in args.config]
    if group.rank == 0:
        print(f"{'config':<8}{'ranks':>6}{'threads':>8}{'step':>11}{'tokens/s':>11}"
              f"{'all-reduce':>12}{'buckets':>8}{'grads':>10}")
        for r in rows:
            print(f"{r['config']:<8}{r['ranks']:>6}{r['blas_threads']:>8}{r['step_s'] * 1e3:>9.1f}ms"
                  f"{r['tokens_per_s']:>11,.0f}{r['all_reduce_ms']:>10.2f}ms{r['buckets']:>8}"
                  f"{r['gradient_mib']:>7.1f}MiB")
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
