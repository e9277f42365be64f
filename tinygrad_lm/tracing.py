"""Watch autograd run: one line per op in forward and per node in backward.

``with tl.trace():`` (or ``TINYGRAD_LM_TRACE=1`` in the environment, for a whole program)
prints each op's name, input and output shapes and dtypes, and the time it took. Ops that
a backward node runs to compute its gradients are printed indented under it, so a learner
sees that a backward pass is itself made of ops (here ``x * x`` uses ``x`` twice, so the engine
adds its two gradient contributions: the last ``Add``):

>>> import io, tinygrad_lm as tl
>>> x = tl.Tensor([1.0, 2.0], requires_grad=True)
>>> with tl.trace(file=io.StringIO()) as t:
...     (x * x).sum().backward()
>>> for e in t.events:
...     print("    " * e.depth + e.phase, e.op)
forward Mul
forward Sum
backward SumBackward
    forward Reshape
    forward Expand
backward MulBackward
    forward Mul
    forward Mul
forward Add
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Sequence, TextIO

from . import backend, config
from .tensor import Tensor


@dataclass
class TraceEvent:
    """One traced step: an op's forward, or a graph node's backward."""

    phase: str                     # "forward" or "backward"
    op: str                        # e.g. "Mul" or "MulBackward"
    inputs: list[str]              # "shape dtype" of each array argument
    outputs: list[str]             # "shape dtype" of the result(s); "-" for no gradient
    seconds: float
    depth: int                     # 1 for ops run inside a backward node


def _describe(value: Any) -> str:
    if value is None:
        return "-"
    data = value.data if isinstance(value, Tensor) else value
    return f"{tuple(data.shape)} {data.dtype}"


class trace:
    """Context manager that prints (to ``file``, default stderr) and records every op it sees.

    ``events`` holds the :class:`TraceEvent` list afterwards, in the printed order: a backward
    node first, then the ops it ran. Tracing synchronizes the device around each op so the
    times are real on a GPU too; it slows everything down, so it is for watching, not for
    benchmarking.
    """

    def __init__(self, file: TextIO | None = None, quiet: bool = False) -> None:
        self.file = file
        self.quiet = quiet
        self.events: list[TraceEvent] = []
        self._nested: list[list[TraceEvent]] = []  # ops run by the backward nodes now open
        self._previous: list[trace | None] = []

    def __enter__(self) -> "trace":
        self._previous.append(config._set_tracer(self))
        return self

    def __exit__(self, *exc: object) -> None:
        config._set_tracer(self._previous.pop())

    def start(self, arrays: Sequence[Any], backward: bool = False) -> float:
        """Called by the engine before an op or a backward node runs; returns the start time."""
        _synchronize(arrays)
        if backward:
            self._nested.append([])
        return time.perf_counter()

    def forward(self, op: str, inputs: Sequence[Any], output: Any, started: float) -> None:
        """Called by the engine after an op's forward ran."""
        _synchronize([output])
        event = TraceEvent("forward", op, _describe_all(inputs), [_describe(output)],
                           time.perf_counter() - started, len(self._nested))
        if self._nested:
            self._nested[-1].append(event)
        else:
            self._emit(event)

    def backward(self, node: str, dout: Any, grads: Sequence[Any], started: float) -> None:
        """Called by the engine after a node's backward ran: emits it, then the ops it ran."""
        _synchronize(grads)
        children = self._nested.pop()
        event = TraceEvent("backward", node, [_describe(dout)], [_describe(g) for g in grads],
                           time.perf_counter() - started, len(self._nested))
        if self._nested:  # a backward inside a backward (create_graph through a reference)
            self._nested[-1] += [event, *children]
            return
        for e in (event, *children):
            self._emit(e)

    def _emit(self, event: TraceEvent) -> None:
        self.events.append(event)
        if not self.quiet:
            print(format_event(event), file=self.file or sys.stderr)


def _synchronize(values: Sequence[Any]) -> None:
    """Wait for the device of the first array among ``values`` (a no-op on the CPU)."""
    for v in values:
        data = v.data if isinstance(v, Tensor) else v
        if backend.is_array(data):
            backend.device_of(data).synchronize()
            return


def _describe_all(values: Sequence[Any]) -> list[str]:
    return [_describe(v) for v in values if isinstance(v, Tensor) or backend.is_array(v)]


def format_event(event: TraceEvent) -> str:
    """``forward  Mul  (2,) float32, (2,) float32 -> (2,) float32  3.1 µs``, indented by depth."""
    indent = "    " * event.depth
    arrow = "dout " if event.phase == "backward" else ""
    shapes = f"{arrow}{', '.join(event.inputs)} -> {', '.join(event.outputs)}"
    return (f"{indent}{event.phase:<8}  {event.op:<18} {shapes:<50} "
            f"{event.seconds * 1e6:9.1f} µs")


if os.environ.get("TINYGRAD_LM_TRACE", "") not in ("", "0"):
    config._set_tracer(trace())
