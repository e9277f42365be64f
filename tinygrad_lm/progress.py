"""The progress line of ``tinygrad-lm train``: where the run is, how fast, and how long to go.

How fast is also said against the machine: the share of its matmul peak (a float32 matmul
timed at the start, `Device.matmul_peak`) that the step's matmul FLOPs
(`training_flops_per_token`) reach. A step also spends time outside matmuls, so this is
what a faster engine could still win, not a grade.

On a terminal the line is redrawn in place; in a log file (not a terminal) a line is
written every 10 seconds and at the end, so logs stay short. Speed is averaged over the
last 20 steps; the ETA divides the wall time of this process (evaluations and checkpoints
included) by the iterations it has run, so it does not flatter the estimate.
"""
from __future__ import annotations

import sys
import time
from collections import deque
from typing import TextIO


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``: a duration as people read it."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Iteration, loss, ms/iter, tokens/s, share of the matmul peak (when ``flops_per_step``
    and ``peak_flops`` are given), elapsed time and ETA on one line of ``stream``."""

    def __init__(self, start: int, total: int, tokens_per_step: int, enabled: bool = True,
                 stream: TextIO | None = None, flops_per_step: float | None = None,
                 peak_flops: float | None = None) -> None:
        self.start, self.total, self.tokens_per_step = start, total, tokens_per_step
        self.flops_per_step, self.peak_flops = flops_per_step, peak_flops
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.began = self.last_line = time.perf_counter()
        self.recent: deque[float] = deque(maxlen=20)

    def line(self, it: int, loss: float) -> str:
        """The text for iteration ``it`` (after at least one ``update``)."""
        per_step = sum(self.recent) / len(self.recent)
        elapsed = time.perf_counter() - self.began
        eta = (self.total - it) * elapsed / max(it - self.start, 1)
        peak = ""
        if self.flops_per_step and self.peak_flops:
            peak = f", {100 * self.flops_per_step / per_step / self.peak_flops:.0f}% of matmul peak"
        return (f"iter {it}/{self.total} loss {loss:.4f} | {per_step * 1e3:.1f} ms/iter, "
                f"{self.tokens_per_step / per_step:,.0f} tok/s{peak} | "
                f"{format_duration(elapsed)} elapsed, ETA {format_duration(eta)}")

    def update(self, it: int, loss: float, step_seconds: float) -> None:
        """Record a step that took ``step_seconds`` and show iteration ``it``."""
        self.recent.append(max(step_seconds, 1e-9))
        if not self.enabled:
            return
        text = self.line(it, loss)
        if self.tty:
            width = 20
            done = int(width * it / max(self.total, 1))
            self.stream.write(f"\r[{'#' * done}{'.' * (width - done)}] {text}   ")
            self.stream.flush()
        elif time.perf_counter() - self.last_line > 10 or it == self.total:
            self.last_line = time.perf_counter()
            self.stream.write(text + "\n")

    def message(self, text: str) -> None:
        """Print a line of its own (an evaluation) without breaking the bar."""
        if self.enabled:
            self.stream.write(("\r" if self.tty else "") + text + (" " * 20 if self.tty else "")
                              + "\n")

    def close(self) -> None:
        """End the bar's line."""
        if self.enabled and self.tty:
            self.stream.write("\n")
