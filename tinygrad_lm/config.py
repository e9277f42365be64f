"""The library's only global state: default float dtype and device, grad mode, the tracer.

Everything mutable that changes how ops behave lives here, so a reader can see it at once.
"""
from __future__ import annotations

import functools
import os
from typing import Any, Callable, TypeVar

import numpy as np

DEFAULT_FLOAT = np.dtype(np.float32)
"""Python floats and lists of floats become this dtype (float32, as in PyTorch)."""

DEFAULT_DEVICE: str = os.environ.get("TINYGRAD_LM_DEVICE", "cpu")
"""The device of tensors created without ``device=``; ``TINYGRAD_LM_DEVICE`` overrides it."""

KERNEL_SETTINGS = ("reference", "fast")

KERNELS: str = os.environ.get("TINYGRAD_LM_KERNELS", "fast")
"""Which kernels the fused ops run (tinygrad_lm/kernels): ``"fast"`` (compiled) or
``"reference"`` (plain array code); ``TINYGRAD_LM_KERNELS`` sets it, ``tl.set_kernels``
changes it."""
if KERNELS not in KERNEL_SETTINGS:
    raise ValueError(f"TINYGRAD_LM_KERNELS must be 'reference' or 'fast', not {KERNELS!r}")

_grad_enabled = True

_tracer: Any = None
"""The active ``tinygrad_lm.tracing.trace`` (None: ops run untraced); see ``tracing.py``."""

_write_clock = 0
"""Counts in-place writes. A graph node notes the count when it is made; at backward, a
tensor it saved whose last write came later was changed under it (see ``Tensor._inplace``)."""

F = TypeVar("F", bound=Callable[..., Any])


def is_grad_enabled() -> bool:
    """True when ops record the graph for backward."""
    return _grad_enabled


def _set_grad_enabled(mode: bool) -> bool:
    """Set the grad mode and return the previous one."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, mode
    return previous


def _set_kernels(name: str) -> None:
    global KERNELS
    KERNELS = name


def _tick() -> int:
    """Advance the write clock (an in-place write happens) and return the new time."""
    global _write_clock
    _write_clock += 1
    return _write_clock


def _set_tracer(tracer: Any) -> Any:
    """Install ``tracer`` (or None) and return the previous one."""
    global _tracer
    previous, _tracer = _tracer, tracer
    return previous


class set_grad_enabled:
    """Context manager (and decorator) that sets whether ops record the graph."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self.previous: list[bool] = []

    def __enter__(self) -> None:
        self.previous.append(_set_grad_enabled(self.mode))

    def __exit__(self, *exc: object) -> None:
        _set_grad_enabled(self.previous.pop())

    def __call__(self, fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with set_grad_enabled(self.mode):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class no_grad(set_grad_enabled):
    """``with tl.no_grad():`` (or ``@tl.no_grad()``) records nothing: inference and updates."""

    def __init__(self) -> None:
        super().__init__(False)

class enable_grad(set_grad_enabled):
    """Re-enables recording inside a ``no_grad`` block."""

    def __init__(self) -> None:
        super().__init__(True)

