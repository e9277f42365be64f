"""Timing without any array library: what a benchmark process and a worker process share.

- warm up before measuring (caches, lazy imports, allocator pools, CUDA kernel builds):
  ``Settings.warmup``;
- synchronize the device before reading the clock, because GPU work is queued
  asynchronously: every ``Candidate`` carries its device's ``sync``;
- make each sample a batch of calls long enough for the clock to resolve
  (``Settings.target_s``, ``calibrate``), and report the median of many samples with their
  min and max (``Timing``);
- take turns, so a burst of machine noise hits every candidate alike, and compare by the
  ratio of medians from the same run (``time_interleaved`` in one process,
  ``benchmarks/workers.py`` across processes).

This module imports neither NumPy nor tinygrad_lm nor PyTorch, so a worker process that
times one library loads only that library.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping


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

        After a call, OpenBLAS's and OpenMP's workers busy-wait for up to ~0.1 s before
        they sleep; on a machine with few cores they steal the CPU from the next
        candidate's threads, which then run several times slower. So each candidate first
        runs untimed for ``settle_s`` (the other's workers fall asleep, its own wake up),
        then takes ``block`` samples in a row.
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


def sample(candidate: Candidate, number: int) -> float:
    """Seconds per call over a batch of ``number`` calls, with the device drained both ends."""
    fn, sync = candidate.fn, candidate.sync
    sync()  # queued work from before must not be billed to this sample
    start = time.perf_counter()
    for _ in range(number):
        fn()
    sync()
    return (time.perf_counter() - start) / number


def calibrate(candidate: Candidate, settings: Settings) -> int:
    """Calls per sample so that one sample lasts about ``settings.target_s``."""
    once = min(sample(candidate, 1) for _ in range(3))
    return max(1, min(settings.max_number, math.ceil(settings.target_s / max(once, 1e-9))))


def warm_up(candidate: Candidate, calls: int) -> None:
    """``calls`` untimed calls, then wait for the device."""
    for _ in range(calls):
        candidate.fn()
    candidate.sync()


def settle(candidate: Candidate, seconds: float) -> None:
    """Run ``candidate`` untimed for at least ``seconds`` (nothing when 0)."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        candidate.fn()
        candidate.sync()


def time_interleaved(candidates: Mapping[str, Candidate],
                     settings: Settings = Settings()) -> dict[str, Timing]:
    """Time several candidates of one process in alternation; returns a Timing per name.

    In each round every candidate takes a turn of ``settings.block`` samples (one by
    default), in the given order on even rounds and reversed on odd ones, so neither drift
    nor order favours anyone. The garbage collector stays on: collecting the graph's
    objects is part of what an autograd engine costs.
    """
    for candidate in candidates.values():
        warm_up(candidate, settings.warmup)
    numbers = {name: calibrate(c, settings) for name, c in candidates.items()}
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    names = list(candidates)
    for start in range(0, settings.repeat, settings.block):
        turn = min(settings.block, settings.repeat - start)
        for name in names if start // settings.block % 2 == 0 else reversed(names):
            settle(candidates[name], settings.settle_s)
            samples[name] += [sample(candidates[name], numbers[name]) for _ in range(turn)]
    return {name: Timing(samples[name], numbers[name]) for name in names}


def time_fn(fn: Callable[[], Any], sync: Callable[[], None] = _no_sync,
            settings: Settings = Settings()) -> Timing:
    """Time one function alone (use ``time_interleaved`` to compare several)."""
    return time_interleaved({"fn": Candidate(fn, sync)}, settings)["fn"]


def ratio(a: Timing, b: Timing) -> float:
    """How many times slower ``a`` is than ``b``: the ratio of their medians."""
    return a.median / b.median


@dataclass
class Task:
    """What a worker process times: the ``candidate``; ``check``, numbers the parent
    compares across libraries (norms of the output and the gradients: the same work gives
    the same numbers), or None; ``info``, facts about the work (e.g. the parameter count)."""

    candidate: Candidate
    check: list[float] | None = None
    info: dict[str, Any] | None = None
