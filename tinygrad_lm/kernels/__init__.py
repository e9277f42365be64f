"""The kernel layer: what each fused op computes, apart from how fast it runs.

A graph node in fused.py saves what its backward needs and asks this module for the kernels
that serve its arrays:

- ``reference``: plain NumPy/CuPy array code, line for line the derivations in
  docs/layers.md (the one to read first);
- ``cpu``: the same functions compiled with Numba (fused loops, all cores);
- ``cuda``: the same functions as CuPy kernels.

``tl.set_kernels("reference" | "fast")`` (or ``TINYGRAD_LM_KERNELS``) chooses; "fast" takes
``cpu`` for NumPy arrays and ``cuda`` for CuPy arrays. Without Numba the CPU falls back to
the reference kernels, with one notice. Every fast kernel is tested equal to its reference.
"""
from __future__ import annotations

import functools
import types
import warnings
from typing import Any

from .. import backend, config
from . import reference


def set_kernels(name: str) -> None:
    """Run the fused ops with the ``"reference"`` or the ``"fast"`` kernels (the default)."""
    if name not in config.KERNEL_SETTINGS:
        raise ValueError(f"set_kernels: the kernels are 'reference' or 'fast', not {name!r}")
    config._set_kernels(name)


def get_kernels() -> str:
    """The kernel setting in force: ``"reference"`` or ``"fast"``."""
    return config.KERNELS


def for_array(array: Any) -> types.ModuleType:
    """The kernel module that serves ``array`` under the current setting."""
    if config.KERNELS == "reference":
        return reference
    if backend.device_of(array) is backend.CPU:
        return _cpu_kernels()
    return _cuda_kernels()


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in the compiled CPU kernels (by default, one per core)."""
    if int(n) < 1:
        raise ValueError(f"set_num_threads: need at least 1 thread, not {n}")
    kernels = _cpu_kernels()
    if kernels is not reference:
        kernels.set_num_threads(int(n))


@functools.cache
def _cpu_kernels() -> types.ModuleType:
    """``cpu`` (imported, and its kernels compiled, on first use), or ``reference`` with one
    notice when Numba cannot be imported."""
    try:
        from . import cpu
    except ImportError as exc:  # Numba missing or broken: slower, still correct
        warnings.warn(f"tinygrad_lm: the compiled CPU kernels need Numba ({exc}); "
                      "running the reference kernels instead", RuntimeWarning, stacklevel=3)
        return reference
    return cpu


@functools.cache
def _cuda_kernels() -> types.ModuleType:
    from . import cuda
    return cuda
