"""Devices and every difference between NumPy (cpu) and CuPy (cuda).

Ops are written once against an array module ``xp``; this file is the only place that knows
which one it is. CuPy is imported lazily, so the library runs with NumPy alone.
"""
from __future__ import annotations

import ctypes
import math
import os
import time
from typing import Any

import numpy as np

from . import config

_CUPY_HINT = (
    "install CuPy for your CUDA version, e.g. `pip install 'tinygrad-lm[gpu]'` "
    "(cupy-cuda12x) or `pip install cupy-cuda13x`"
)


class Device:
    """A place where arrays live: ``xp`` is its array module and ``rng`` its random source."""

    def __init__(self, name: str, xp: Any, index: int = 0) -> None:
        self.name, self.xp, self.index = name, xp, index
        self.rng = self._new_rng()

    def __repr__(self) -> str:
        return f"Device({self.name!r})"

    def _new_rng(self) -> Any:
        """A generator seeded by ``manual_seed`` (offset by the device index), else by entropy."""
        seed = None if _seed is None else _seed + self.index
        if self.xp is np:
            return np.random.default_rng(seed)
        with self.xp.cuda.Device(self.index):
            return self.xp.random.RandomState(seed)

    def array(self, data: Any, dtype: Any = None) -> Any:
        """Move or convert ``data`` onto this device (no copy when it is already here)."""
        if self.xp is np:
            if type(data).__module__.startswith("cupy"):
                data = data.get()
            return np.asarray(data, dtype=dtype)
        with self.xp.cuda.Device(self.index):
            return self.xp.asarray(data, dtype=dtype)

    def randn(self, shape: tuple[int, ...], dtype: Any) -> Any:
        """Standard normal samples of ``dtype`` drawn from this device's generator."""
        if self.xp is np:
            return self.rng.standard_normal(shape, dtype=dtype)
        with self.xp.cuda.Device(self.index):
            return self.rng.standard_normal(shape, dtype=dtype)

    def rand(self, shape: tuple[int, ...], dtype: Any) -> Any:
        """Uniform samples in [0, 1) of ``dtype`` drawn from this device's generator."""
        if self.xp is np:
            return self.rng.random(shape, dtype=dtype)
        with self.xp.cuda.Device(self.index):
            return self.rng.random_sample(shape, dtype=dtype)

    def synchronize(self) -> None:
        """Wait for queued kernels to finish (needed before reading a clock)."""
        if self.xp is not np:
            self.xp.cuda.Device(self.index).synchronize()

    def matmul_peak(self, n: int | None = None, repeats: int = 5) -> float:
        """FLOP/s of an ``n`` x ``n`` float32 matmul here (n: 1024 on cpu, 4096 on cuda), the
        best of ``repeats`` after a warm-up: the ceiling a matmul-bound step can approach.
        Takes about 0.1 s, and draws nothing from the device's random generator."""
        n = n or (1024 if self.xp is np else 4096)
        a = self.array(np.full((n, n), 0.5, dtype=np.float32))
        b = a.copy()
        a @ b
        best = math.inf
        for _ in range(repeats):
            self.synchronize()
            start = time.perf_counter()
            a @ b
            self.synchronize()
            best = min(best, time.perf_counter() - start)
        return 2 * n ** 3 / best

    def memory_allocated(self) -> int:
        """Bytes held by the device's memory pool (0 on cpu, where NumPy uses malloc)."""
        if self.xp is np:
            return 0
        return int(self.xp.get_default_memory_pool().used_bytes())


_seed: int | None = None
CPU = Device("cpu", np)
_devices: dict[str, Device] = {"cpu": CPU}


def _import_cupy() -> Any:
    try:
        import cupy
    except ImportError as exc:
        raise RuntimeError(f"device 'cuda' needs CuPy, which is not installed: {_CUPY_HINT}") from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken
        raise RuntimeError(f"device 'cuda' needs a working CUDA GPU: {exc}") from exc
    if count == 0:
        raise RuntimeError("device 'cuda' needs a CUDA GPU, and none was found")
    return cupy


def get_device(spec: "str | Device | None" = None) -> Device:
    """Resolve ``'cpu'``, ``'cuda'``, ``'cuda:N'`` (or None for the default) to a Device."""
    if isinstance(spec, Device):
        return spec
    name = config.DEFAULT_DEVICE if spec is None else str(spec)
    if name == "cuda":
        name = "cuda:0"
    device = _devices.get(name)
    if device is not None:
        return device
    if not name.startswith("cuda:") or not name[5:].isdigit():
        raise ValueError(f"unknown device {spec!r}: use 'cpu', 'cuda' or 'cuda:N'")
    cupy = _import_cupy()
    index = int(name[5:])
    if index >= cupy.cuda.runtime.getDeviceCount():
        raise RuntimeError(f"device {name!r} does not exist: this machine has "
                           f"{cupy.cuda.runtime.getDeviceCount()} CUDA device(s)")
    device = _devices[name] = Device(name, cupy, index)
    return device


def device_of(array: Any) -> Device:
    """The Device that holds ``array``."""
    if type(array) is np.ndarray or isinstance(array, np.generic):  # NumPy ops on 0-d give scalars
        return CPU
    return get_device(f"cuda:{array.device.id}")


def is_array(obj: Any) -> bool:
    """True for a NumPy or CuPy ndarray."""
    return type(obj) is np.ndarray or type(obj).__module__.startswith("cupy")


def same_device(arrays: "tuple[Any, ...] | list[Any]") -> bool:
    """True when every array lives on one device (the common all-NumPy case is quick)."""
    kind = type(arrays[0])
    for a in arrays:
        if type(a) is not kind:
            return False
    return kind is np.ndarray or len({a.device.id for a in arrays}) == 1


def manual_seed(seed: int) -> None:
    """Seed the random source of every device, now and for devices created later."""
    global _seed
    _seed = int(seed)
    for device in _devices.values():
        device.rng = device._new_rng()


def to_host(array: Any) -> np.ndarray:
    """A NumPy copy of ``array`` (the one deliberate device-to-host transfer)."""
    return array.get() if type(array) is not np.ndarray else array.copy()


def index_add(target: Any, index: tuple[Any, ...], values: Any) -> None:
    """``target[index] += values`` where repeated indices accumulate (a scatter-add)."""
    if type(target) is not np.ndarray:
        import cupyx

        cupyx.scatter_add(target, index, values)
    elif len(index) == 1 and is_array(index[0]) and index[0].dtype.kind in "iu":
        _add_rows(target, index[0].reshape(-1), values.reshape(-1, *target.shape[1:]))
    else:
        np.add.at(target, index, values)


def _add_rows(target: np.ndarray, rows: np.ndarray, values: np.ndarray) -> None:
    """Row scatter-add (the embedding backward) by sorting: each distinct row is summed once
    with ``add.reduceat``; several times faster than ``np.add.at``."""
    if rows.size == 0:
        return
    rows = np.where(rows < 0, rows + target.shape[0], rows)
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    starts = np.flatnonzero(np.r_[True, sorted_rows[1:] != sorted_rows[:-1]])
    target[sorted_rows[starts]] += np.add.reduceat(values[order], starts, axis=0)


def erf(x: Any, out: Any = None) -> Any:
    """The error function, elementwise, accurate to the precision of ``x``'s dtype (into
    ``out`` when given, a contiguous array of ``x``'s shape and dtype)."""
    xp = device_of(x).xp
    if x.ndim == 0:  # the NumPy paths compute in place, which a 0-d result (a scalar) cannot
        return erf(xp.asarray(x).reshape(1)).reshape(())
    if xp is not np:
        import cupyx.scipy.special

        return cupyx.scipy.special.erf(x, out=out)
    if x.dtype == np.float64:
        result = _erf_float64(x)
        if out is None:
            return result
        out[...] = result
        return out
    return _erf_fast(x, out)


def _erf_fast(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Abramowitz & Stegun 7.1.26: |error| < 1.5e-7, enough for float32 and half:
    erf(|x|) = 1 - t (a1 + t (a2 + ... + t a5)) exp(-x^2) with t = 1 / (1 + p |x|)."""
    a = np.abs(x)
    t = 1 / (1 + x.dtype.type(0.3275911) * a)
    poly = x.dtype.type(1.061405429)
    for coefficient in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly = poly * t + x.dtype.type(coefficient)
    result = np.copysign(1 - poly * t * np.exp(-a * a), x)
    if out is None:
        return result
    out[...] = result
    return out


_ERF_SERIES = [(-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(61)]


def _erf_float64(x: np.ndarray) -> np.ndarray:
    """erf to ~1e-15: Maclaurin series for |x| < 2.5, erfc's continued fraction beyond."""
    a = np.abs(x)
    small = np.minimum(a, 2.5)
    z = small * small
    # erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1)), Horner in z = x^2
    series = np.zeros_like(small)
    for coefficient in reversed(_ERF_SERIES):
        series = coefficient + z * series
    series = series * small * (2.0 / math.sqrt(math.pi))
    # erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), evaluated bottom-up
    large = np.maximum(a, 2.5)
    frac = large
    for k in range(80, 0, -1):
        frac = large + (k / 2.0) / frac
    tail = 1.0 - np.exp(-large * large) / (math.sqrt(math.pi) * frac)
    return np.copysign(np.where(a < 2.5, series, tail), x)


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters


def tune_malloc() -> bool:
    """Ask glibc to serve big arrays from its heap (not fresh ``mmap``s) and to keep freed
    memory for reuse; True when it took. ``TINYGRAD_LM_MALLOC=system`` leaves malloc alone."""
    if os.environ.get("TINYGRAD_LM_MALLOC", "") == "system":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))


MALLOC_TUNED = tune_malloc()
