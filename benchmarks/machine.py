"""Facts about the machine and this process that every figure depends on: CPU model and
vendor, cores, BLAS threads, peak memory, the code's version. No array library is imported
here, so a worker process can ask without loading anything it does not time."""
from __future__ import annotations

import os
import platform
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _cpu_field(cpuinfo_key: str, lscpu_key: str) -> str | None:
    """A field of /proc/cpuinfo (Linux), else of ``lscpu``'s report; None when neither has it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.split(":", 1)[0].strip() == cpuinfo_key:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if line.split(":", 1)[0].strip() == lscpu_key:
            return line.split(":", 1)[1].strip()
    return None


def cpu_model() -> str:
    """The CPU's marketing name, e.g. ``AMD EPYC`` (what ``lscpu`` calls "Model name")."""
    return _cpu_field("model name", "Model name") or platform.processor() or platform.machine()


def cpu_vendor() -> str:
    """The CPU's vendor, e.g. ``AuthenticAMD`` or ``GenuineIntel`` ("?" when unknown)."""
    return _cpu_field("vendor_id", "Vendor ID") or "?"


def cpu_count() -> int:
    """The cores this process may run on (its affinity mask), else all of the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threadpool_blas() -> list[dict[str, Any]]:
    """The BLAS libraries threadpoolctl sees loaded (empty when it is not installed)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]


def blas_threads() -> int:
    """Threads NumPy's BLAS runs with: threadpoolctl's answer when it is installed, else the
    usual environment variables, else the number of CPUs (OpenBLAS's default)."""
    loaded = threadpool_blas()
    if loaded:
        return int(loaded[0]["num_threads"])
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return os.cpu_count() or 1


def peak_rss() -> int:
    """This process's peak resident set size in bytes. VmHWM, unlike getrusage's ru_maxrss,
    starts afresh at exec, so a parent's high-water mark does not leak in."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def git_commit() -> str | None:
    """``git describe`` of the checkout being measured (None outside a git checkout)."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine() -> dict[str, Any]:
    """The machine and interpreter: what every figure is recorded beside."""
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpu": cpu_model(),
            "cpu_vendor": cpu_vendor(), "cpu_count": cpu_count(),
            "python": platform.python_version(), "platform": platform.platform(),
            "git": git_commit()}
