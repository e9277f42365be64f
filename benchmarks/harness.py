"""Timing, environment and report utilities shared by every benchmark in this folder.

The rules that make a comparison worth reading, and where each is kept:

- warm up before measuring (caches, lazy imports, allocator pools, CUDA kernel builds):
  ``Settings.warmup``;
- synchronize the device before reading the clock, because GPU work is queued
  asynchronously: every ``Candidate`` carries its device's ``sync``;
- make each sample a batch of calls long enough for the clock to resolve
  (``Settings.target_s``), and report the median of many samples with their min and max;
- interleave the candidates sample by sample (``time_interleaved``), so a burst of machine
  noise hits all of them alike, and compare by the ratio of medians from the same run;
- record the machine (``environment``) and its matmul ceiling (``sgemm_gflops``) beside
  the numbers, and give PyTorch the same number of threads as NumPy's BLAS.

A benchmark script builds ``Candidate`` objects, times them with ``time_interleaved``,
prints ``format_table`` and saves ``write_json`` (plus ``save_chart`` when matplotlib is
installed); ``add_common_args`` / ``settings_from_args`` / ``usable_devices`` give every
script the same command line.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

import tinygrad_lm
from tinygrad_lm import backend

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------- timing


def _no_sync() -> None:
    """CPU work is finished when the call returns: nothing to wait for."""


@dataclass
class Candidate:
    """One contender: ``fn`` does the measured work once; ``sync`` waits for its device."""

    fn: Callable[[], Any]
    sync: Callable[[], None] = _no_sync


@dataclass(frozen=True)
class Settings:
    """How hard to measure: warm-up calls, samples, the wall time of one sample, and how
    the candidates take turns (``block`` samples per turn, after ``settle_s`` of untimed
    calls; see ``threaded``)."""

    warmup: int = 3
    repeat: int = 15
    target_s: float = 0.01
    max_number: int = 100_000
    block: int = 1
    settle_s: float = 0.0

    def threaded(self) -> "Settings":
        """Turns for work that runs on a BLAS or OpenMP thread pool (matmuls).

        After a call, OpenBLAS's workers busy-wait for up to ~0.1 s before they sleep; on a
        machine with few cores they steal the CPU from the next candidate's threads, which
        then run several times slower. So each candidate first runs untimed for
        ``settle_s`` (the other's workers fall asleep, its own wake up), then takes
        ``block`` samples in a row.
        """
        return replace(self, block=max(1, min(5, self.repeat)), settle_s=0.15)


QUICK = Settings(warmup=2, repeat=5, target_s=0.001)
"""Smoke-test settings: every code path runs, the numbers are rough."""


@dataclass
class Timing:
    """Seconds per call of one candidate, one entry per sample of ``number`` calls."""

    samples: list[float]
    number: int

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)

    def to_dict(self) -> dict[str, Any]:
        """The summary that goes into JSON (seconds per call)."""
        return {"median_s": self.median, "min_s": self.min, "max_s": self.max,
                "repeat": len(self.samples), "number": self.number}


def _sample(candidate: Candidate, number: int) -> float:
    """Seconds per call over a batch of ``number`` calls, with the device drained both ends."""
    fn, sync = candidate.fn, candidate.sync
    sync()  # queued work from before must not be billed to this sample
    start = time.perf_counter()
    for _ in range(number):
        fn()
    sync()
    return (time.perf_counter() - start) / number


def _calibrate(candidate: Candidate, settings: Settings) -> int:
    """Calls per sample so that one sample lasts about ``settings.target_s``."""
    once = min(_sample(candidate, 1) for _ in range(3))
    return max(1, min(settings.max_number, math.ceil(settings.target_s / max(once, 1e-9))))


def _settle(candidate: Candidate, seconds: float) -> None:
    """Run ``candidate`` untimed for at least ``seconds`` (nothing when 0)."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        candidate.fn()
        candidate.sync()


def time_interleaved(candidates: Mapping[str, Candidate],
                     settings: Settings = Settings()) -> dict[str, Timing]:
    """Time several candidates in alternation; returns a Timing per name.

    In each round every candidate takes a turn of ``settings.block`` samples (one by
    default), in the given order on even rounds and reversed on odd ones, so neither drift
    nor order favours anyone. The garbage collector stays on: collecting the graph's
    objects is part of what an autograd engine costs.
    """
    for candidate in candidates.values():
        for _ in range(settings.warmup):
            candidate.fn()
        candidate.sync()
    numbers = {name: _calibrate(c, settings) for name, c in candidates.items()}
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    names = list(candidates)
    for start in range(0, settings.repeat, settings.block):
        turn = min(settings.block, settings.repeat - start)
        for name in names if start // settings.block % 2 == 0 else reversed(names):
            _settle(candidates[name], settings.settle_s)
            samples[name] += [_sample(candidates[name], numbers[name]) for _ in range(turn)]
    return {name: Timing(samples[name], numbers[name]) for name in names}


def time_fn(fn: Callable[[], Any], sync: Callable[[], None] = _no_sync,
            settings: Settings = Settings()) -> Timing:
    """Time one function alone (use ``time_interleaved`` to compare several)."""
    return time_interleaved({"fn": Candidate(fn, sync)}, settings)["fn"]


def ratio(a: Timing, b: Timing) -> float:
    """How many times slower ``a`` is than ``b``: the ratio of their medians."""
    return a.median / b.median


def profile_calls(fn: Callable[[], Any], number: int, top: int = 25,
                  sort: str = "tottime") -> str:
    """A cProfile report (the ``top`` functions by ``sort``) of ``number`` calls to ``fn``."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(number):
        fn()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(sort).print_stats(top)
    return out.getvalue()


# ---------------------------------------------------------------------------- frameworks


def tinygrad_sync(device: str) -> Callable[[], None]:
    """The function that waits for queued tinygrad_lm work on ``device``."""
    return backend.get_device(device).synchronize


def blas_threads() -> int:
    """Threads NumPy's BLAS runs with: threadpoolctl's answer when it is installed, else the
    usual environment variables, else the number of CPUs (OpenBLAS's default)."""
    loaded = _threadpool_blas()
    if loaded:
        return int(loaded[0]["num_threads"])
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return os.cpu_count() or 1


def _threadpool_blas() -> list[dict[str, Any]]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]


def import_torch() -> Any | None:
    """PyTorch with as many intra-op threads as NumPy's BLAS (a fair CPU race), or None."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(blas_threads())
    return torch


def torch_device(torch: Any | None, device: str) -> str | None:
    """The torch device that matches a tinygrad_lm device, or None if torch cannot use it."""
    if torch is None:
        return None
    if device == "cpu":
        return "cpu"
    return device if torch.cuda.is_available() else None


def torch_sync(torch: Any, device: str) -> Callable[[], None]:
    """The function that waits for queued torch work on ``device``."""
    return torch.cuda.synchronize if device.startswith("cuda") else _no_sync


def devices_to_run(devices: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """``usable_devices``, saying on stderr why a device is skipped, that nothing will run
    when no device is usable (the caller then exits with status 2), and that the PyTorch
    columns stay empty when PyTorch is not installed."""
    usable, skipped = usable_devices(devices)
    for name, reason in skipped.items():
        print(f"skipping device {name}: {reason}", file=sys.stderr)
    if not usable:
        print("bench: error: none of the requested devices can be used, so nothing was "
              "measured", file=sys.stderr)
    elif import_torch() is None:
        print("PyTorch is not installed: only tinygrad_lm is timed and the PyTorch and ratio "
              "columns show '-' (pip install torch==2.13.0 to compare)", file=sys.stderr)
    return usable, skipped


def usable_devices(devices: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Split requested devices into those that work here and, for the rest, why not."""
    usable, skipped = [], {}
    for name in devices:
        try:
            usable.append(backend.get_device(name).name)
        except (RuntimeError, ValueError) as exc:
            skipped[name] = str(exc)
    return usable, skipped


# ---------------------------------------------------------------------------- environment


def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo, else what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info() -> dict[str, Any]:
    """Which BLAS NumPy was built with, and what threadpoolctl sees loaded (if installed)."""
    info: dict[str, Any] = {}
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        info.update(name=blas.get("name"), version=blas.get("version"))
    except (TypeError, KeyError):  # NumPy < 1.25 has no mode="dicts"
        pass
    loaded = _threadpool_blas()
    if loaded:
        info["threadpoolctl"] = [{key: lib.get(key) for key in
                                  ("internal_api", "version", "num_threads", "architecture")}
                                 for lib in loaded]
    info["threads"] = blas_threads()
    return info


def gpu_names() -> list[str]:
    """Names of the CUDA GPUs, asked of CuPy, else of torch; empty when there are none."""
    try:
        import cupy

        runtime = cupy.cuda.runtime
        return [runtime.getDeviceProperties(i)["name"].decode()
                for i in range(runtime.getDeviceCount())]
    except Exception:  # CuPy missing, or no driver/GPU: try torch
        pass
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return []


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment() -> dict[str, Any]:
    """Everything about the machine and libraries that the numbers depend on."""
    env: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "blas": blas_info(),
        "tinygrad_lm": tinygrad_lm.__version__,
        "git": _git_commit(),
        "gpus": gpu_names(),
    }
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        env["cupy"] = cupy.__version__
    torch = import_torch()
    if torch is not None:
        env["torch"] = {"version": torch.__version__, "threads": torch.get_num_threads(),
                        "cuda": torch.cuda.is_available()}
    return env


def sgemm_gflops(device: str, n: int, settings: Settings = Settings()) -> dict[str, Any]:
    """GFLOP/s of an ``n`` x ``n`` float32 matmul on ``device``: the array library's own
    (NumPy or CuPy) and torch's when present. The ceiling a matmul-bound op can reach.
    Timed with ``settings.threaded()`` turns, since both run on thread pools."""
    dev = backend.get_device(device)
    a, b = dev.randn((n, n), np.float32), dev.randn((n, n), np.float32)
    candidates = {dev.xp.__name__: Candidate(lambda: a @ b, dev.synchronize)}
    torch = import_torch()
    tdev = torch_device(torch, device)
    if tdev is not None:
        ta, tb = torch.randn(n, n, device=tdev), torch.randn(n, n, device=tdev)
        candidates["torch"] = Candidate(lambda: ta @ tb, torch_sync(torch, tdev))
    timings = time_interleaved(candidates, settings.threaded())
    result: dict[str, Any] = {"n": n}
    result.update({name: 2 * n ** 3 / t.median / 1e9 for name, t in timings.items()})
    return result


# ---------------------------------------------------------------------------- reporting


def fmt_time(seconds: float) -> str:
    """A duration with three significant digits and a unit: ``12.3us``, ``4.56ms``."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g}{unit}"
    return f"{seconds / 1e-9:.3g}ns"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
                 align: str | None = None) -> str:
    """Plain aligned text. ``align`` has one letter per column, ``l`` or ``r``; by default
    the first column is left-aligned and the rest right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    align = align or "l" + "r" * (len(headers) - 1)
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if a == "l" else c.rjust(w)
                         for c, w, a in zip(row, widths, align)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule] + [line(row) for row in cells[1:]])


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Settings):
        return asdict(obj)
    raise TypeError(f"write_json: cannot serialise {type(obj).__name__}")


def write_json(path: Path | str, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` as strict JSON (no NaN), creating the folder if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, indent=2, allow_nan=False, default=_json_default)
    path.write_text(text + "\n", encoding="utf-8")


def save_chart(path: Path | str, labels: Sequence[str], values: Sequence[float], title: str,
               xlabel: str, reference: float | None = 1.0) -> bool:
    """A horizontal bar chart (log scale) as PNG, with a line at ``reference``.

    Returns False, and writes nothing, when matplotlib is not installed: charts are extra.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(8, 0.22 * len(labels) + 1.2))
    positions = range(len(labels))
    start = 1.0 if reference is None else reference  # bars grow from the reference line
    ax.barh(list(positions), [v - start for v in values], left=start, color="#4878a8")
    ax.set_yticks(list(positions), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}"))
    if reference is not None:
        ax.axvline(reference, color="black", linewidth=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------- command line


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """``--device``, ``--json``, ``--quick`` and ``--repeat``: the same in every benchmark."""
    parser.add_argument("--device", nargs="+", default=["cpu"],
                        help="devices to run on, e.g. cpu cuda (unavailable ones are skipped)")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="also write the results as JSON here (and a PNG chart beside it "
                             "when matplotlib is installed)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and few samples: a smoke test, not a measurement")
    parser.add_argument("--repeat", type=int, metavar="N",
                        help="samples per measurement (default 15, or 5 with --quick)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The Settings that ``--quick`` and ``--repeat`` ask for."""
    settings = QUICK if args.quick else Settings()
    if args.repeat is not None:
        if args.repeat < 1:
            raise SystemExit("--repeat must be at least 1")
        settings = replace(settings, repeat=args.repeat)
    return settings
