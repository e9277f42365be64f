"""Environment, device and report utilities shared by every benchmark in this folder.

The rules that make a comparison worth reading, and where each is kept:

- warm up, synchronize the device before reading the clock, take many samples of a batch
  of calls and report medians with min and max: ``benchmarks/timing.py``;
- time each library in its own worker process, the workers taking turns, so that one
  library's thread pools never spin against the other's (``benchmarks/workers.py``: the GPT
  step and the fused ops); ``time_interleaved`` takes turns inside one process (the per-op
  overhead benchmark, whose work is mostly single-threaded);
- compare by the ratio of medians from the same run;
- record the machine (CPU model and vendor: ``benchmarks/machine.py``; ``environment``,
  ``header``) and its matmul ceiling (``sgemm_gflops``) beside the numbers, and
  give PyTorch as many threads as tinygrad_lm.

A benchmark script times its candidates, prints ``format_table`` under ``header`` and
saves ``write_json`` (plus ``save_chart`` when matplotlib is installed);
``add_common_args`` / ``settings_from_args`` / ``usable_devices`` give every script the
same command line.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

import tinygrad_lm
from benchmarks import machine
from benchmarks.machine import blas_threads
from benchmarks.timing import (QUICK, Candidate, Settings, Timing, _no_sync,  # noqa: F401
                               ratio, time_fn, time_interleaved)  # (re-exported for scripts)
from benchmarks.workers import torch_installed
from tinygrad_lm import backend


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
    elif not torch_installed():
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


def blas_info() -> dict[str, Any]:
    """Which BLAS NumPy was built with, and what threadpoolctl sees loaded (if installed)."""
    info: dict[str, Any] = {}
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        info.update(name=blas.get("name"), version=blas.get("version"))
    except (TypeError, KeyError):  # NumPy < 1.25 has no mode="dicts"
        pass
    loaded = machine.threadpool_blas()
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


def environment() -> dict[str, Any]:
    """Everything about the machine and libraries that in-process numbers depend on."""
    env: dict[str, Any] = {**machine.machine(), "numpy": np.__version__, "blas": blas_info(),
                           "tinygrad_lm": tinygrad_lm.__version__, "gpus": gpu_names()}
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        env["cupy"] = cupy.__version__
    torch = import_torch()
    if torch is not None:
        env["torch"] = {"version": torch.__version__, "threads": torch.get_num_threads(),
                        "cuda": torch.cuda.is_available()}
    return env


def header(env: Mapping[str, Any], device: str) -> str:
    """One line naming the machine and the libraries of the workers that ran on ``device``
    (``env``: ``machine.machine()`` plus ``workers``, each device's workers' hellos). It
    stands above every table, so no figure is read apart from the CPU it was measured on."""
    libraries = []
    for name, hello in env["workers"][device].items():
        kernels = f", {hello['kernels']} kernels" if "kernels" in hello else ""
        gpu = f", {hello['gpu']}" if "gpu" in hello else ""
        libraries.append(f"{name} {hello['version']} ({hello['threads']} threads{kernels}{gpu})")
    return (f"CPU {env['cpu']} ({env['cpu_vendor']}), {env['cpu_count']} cores, {device}: "
            + "; ".join(libraries) + "; each library in its own worker process, taking turns")


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
