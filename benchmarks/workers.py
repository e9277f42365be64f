"""Each library in its own long-lived worker process; the parent asks them for samples in turn.

Why not time both libraries in one process: NumPy's OpenBLAS, tinygrad_lm's Numba kernels
and PyTorch's OpenMP each keep a pool of threads, and a pool's threads busy-wait for a while
after every call before they sleep. In one process, on a machine with few cores, the pool
of the library that just ran spins on the cores the other library's threads need, and both
look slower than they are. Users also run one library per process, and import NumPy before
it. So each library (and each kernel setting of tinygrad_lm) gets a worker process that
imports NumPy and then only its own library (``benchmarks/tasks_tinygrad.py`` or
``benchmarks/tasks_torch.py``), builds the work once, warms it up, and then, on request,
times a few samples and sends the times back. The parent alternates its requests between
the workers (A, B | B, A | A, B: ``ROUNDS`` rounds, the order reversed every round so that
neither drift nor order favours anyone), so machine drift hits every library alike. Only
one worker computes at a time: the others are blocked reading their pipe, asleep. A
worker's turn begins with ``settle_s`` of untimed calls, long enough for the previous
worker's pools to stop spinning (and for its own to wake), and then takes its share of the
samples in a row.

The protocol: one JSON object per line. The parent writes to the worker's stdin; the
worker answers on a copy of its stdout, and points its own stdout at stderr, so a stray
print (from Python or from C) cannot corrupt an answer:

    parent                                    worker (``python -m benchmarks.workers SPEC``)
                                              imports NumPy, then its one library
                                          <-  hello: pid, threads, versions, import order
    {"cmd": "setup", "task", "args", ...}  ->  builds the work, warms up, calibrates
                                          <-  number (calls per sample), check, info
    {"cmd": "turn", "samples", "settle_s"} ->  settles, then times ``samples`` samples
                                          <-  samples (seconds per call)
    ... the other workers' turns, while this one waits on its pipe ...
    {"cmd": "memory"}                      ->  <- peak_bytes of the process
    stdin closed                           ->  exits

A failing request is answered with ``{"error": traceback}``, which the parent raises as a
``WorkerError``. Torch gets ``torch.set_num_threads(n)`` with ``n`` the threads the first
tinygrad_lm worker runs on (the larger of its BLAS and Numba pools), a fair race.
"""
from __future__ import annotations

import gc
import importlib
import importlib.util
import json
import math
import os
import subprocess
import sys
import traceback
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence, TextIO

from benchmarks.machine import ROOT
from benchmarks.timing import Settings, Task, Timing, calibrate, sample, settle, warm_up

TASK_MODULES = {"tinygrad_lm": "benchmarks.tasks_tinygrad", "torch": "benchmarks.tasks_torch"}
ROUNDS = 3
"""Rounds of turns per measurement: enough for drift to reach every worker, few enough that
the settling (``Settings.threaded().settle_s`` per turn) stays a small part of the run."""
WATCHED_MODULES = ("numpy", "numba", "cupy", "tinygrad_lm", "torch")
"""The modules whose import order a worker reports (sys.modules keeps insertion order)."""


@dataclass(frozen=True)
class WorkerSpec:
    """One worker: its ``library``, the ``device`` it runs on, tinygrad_lm's ``kernels``
    (``"fast"`` or ``"reference"``) and the ``threads`` its library may use (None: the
    library's default)."""

    library: str
    device: str = "cpu"
    kernels: str = "fast"
    threads: int | None = None


class WorkerError(RuntimeError):
    """A worker failed a request, or died."""


# ---------------------------------------------------------------------------- parent side


class Worker:
    """A running worker process and its pipes; ``hello`` is what it said on starting."""

    def __init__(self, name: str, spec: WorkerSpec) -> None:
        self.name, self.spec = name, spec
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.workers", json.dumps(asdict(spec))],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.hello = self._receive()

    def ask(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """Send one request and wait (blocked, not spinning) for its answer."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"cmd": cmd, **fields}) + "\n")
        self.process.stdin.flush()
        return self._receive()

    def _receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            status = self.process.wait()
            raise WorkerError(f"the {self.name} worker exited with status {status} "
                              "(its error is printed above)")
        reply = json.loads(line)
        if "error" in reply:
            raise WorkerError(f"the {self.name} worker failed:\n{reply['error']}")
        return reply

    def close(self) -> None:
        """Close its stdin (the worker then exits), or kill it after 30 s."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Workers(dict):
    """Workers by name, closed together at the end of a ``with`` block."""

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in self.values():
            worker.close()


def torch_installed() -> bool:
    """Whether PyTorch can be imported here (asked without importing it)."""
    return importlib.util.find_spec("torch") is not None


def kernels_name(kernels: str) -> str:
    """The worker (and JSON) name of tinygrad_lm with ``kernels``: ``tinygrad_lm`` for the
    fast kernels, ``tinygrad_lm_reference`` for the reference ones."""
    return "tinygrad_lm" if kernels == "fast" else f"tinygrad_lm_{kernels}"


def start_workers(device: str, kernels: Sequence[str] = ("fast",),
                  torch: bool = True) -> Workers:
    """A tinygrad_lm worker per kernel setting and (with ``torch``) a PyTorch worker given
    as many threads as the first tinygrad_lm worker runs on."""
    workers = Workers()
    try:
        for setting in kernels:
            name = kernels_name(setting)
            workers[name] = Worker(name, WorkerSpec("tinygrad_lm", device, setting))
        if torch:
            threads = next(iter(workers.values())).hello["threads"]
            workers["torch"] = Worker("torch", WorkerSpec("torch", device, threads=threads))
    except BaseException:
        workers.__exit__()
        raise
    return workers


def setup(workers: Mapping[str, Worker], task: str, args: Mapping[str, Any],
          settings: Settings) -> dict[str, dict[str, Any]]:
    """Build, warm up and calibrate ``task`` in every worker, one after the other; returns
    each worker's answer (``number``, ``check``, ``info``)."""
    return {name: worker.ask("setup", task=task, args=dict(args), warmup=settings.warmup,
                             target_s=settings.target_s, max_number=settings.max_number)
            for name, worker in workers.items()}


def alternate(workers: Mapping[str, Worker], task: str, args: Mapping[str, Any],
              settings: Settings) -> tuple[dict[str, Timing], dict[str, dict[str, Any]]]:
    """Time ``task`` in every worker, taking turns: returns a Timing per worker and each
    worker's setup answer. The ``settings.repeat`` samples are taken in ``ROUNDS`` rounds;
    in each, every worker has one turn (``settle_s`` of untimed calls, then its samples),
    the order reversed every round."""
    setups = setup(workers, task, args, settings)
    block = math.ceil(settings.repeat / ROUNDS)
    settle_s = settings.threaded().settle_s
    samples: dict[str, list[float]] = {name: [] for name in workers}
    names = list(workers)
    for start in range(0, settings.repeat, block):
        count = min(block, settings.repeat - start)
        for name in names if start // block % 2 == 0 else reversed(names):
            samples[name] += workers[name].ask("turn", samples=count,
                                               settle_s=settle_s)["samples"]
    timings = {name: Timing(samples[name], setups[name]["number"]) for name in names}
    return timings, setups


def describe(settings: Settings) -> dict[str, Any]:
    """How ``alternate`` measures with ``settings``, for the JSON."""
    return {"warmup": settings.warmup, "repeat": settings.repeat, "target_s": settings.target_s,
            "rounds": ROUNDS, "settle_s": settings.threaded().settle_s}


def check_difference(setups: Mapping[str, Mapping[str, Any]]) -> float | None:
    """The largest relative difference between any worker's check numbers and the first
    worker's (None when the task has no check): near 0 when they computed the same thing."""
    checks = [s["check"] for s in setups.values() if s.get("check") is not None]
    if len(checks) < 2:
        return None
    base = checks[0]
    return max(abs(a - b) / max(abs(a), abs(b), 1e-30)
               for other in checks[1:] for a, b in zip(base, other))


# ---------------------------------------------------------------------------- worker side


def imported_order() -> list[str]:
    """The watched modules this process has imported, in the order it imported them."""
    return [name for name in sys.modules if name in WATCHED_MODULES]


def serve(spec: WorkerSpec, requests: Iterable[str], answers: TextIO) -> None:
    """The worker's loop: say hello, then answer each request line until the input ends."""
    try:
        tasks = importlib.import_module(TASK_MODULES[spec.library])  # NumPy, then its library
        hello = tasks.configure(spec.device, spec.kernels, spec.threads)
    except Exception:  # e.g. the device is unusable here: the parent says so
        _send(answers, {"error": traceback.format_exc()})
        return
    _send(answers, {**hello, "pid": os.getpid(), "imports": imported_order()})
    task: Task | None = None
    number = 1
    for line in requests:
        request = json.loads(line)
        try:
            if request["cmd"] == "setup":
                task = None
                gc.collect()  # the previous task's model goes before the next is built
                task = tasks.build(spec.device, request["task"], **request["args"])
                warm_up(task.candidate, request["warmup"])
                number = calibrate(task.candidate, Settings(target_s=request["target_s"],
                                                            max_number=request["max_number"]))
                answer = {"number": number, "check": task.check, "info": task.info or {}}
            elif request["cmd"] == "turn":
                assert task is not None, "turn before setup"
                settle(task.candidate, request["settle_s"])
                answer = {"samples": [sample(task.candidate, number)
                                      for _ in range(request["samples"])]}
            elif request["cmd"] == "memory":
                answer = {"peak_bytes": tasks.peak_memory(spec.device)}
            else:
                raise ValueError(f"unknown request {request['cmd']!r}")
        except Exception:  # the parent raises it, naming this worker
            answer = {"error": traceback.format_exc()}
        _send(answers, answer)


def _send(answers: TextIO, message: Mapping[str, Any]) -> None:
    answers.write(json.dumps(message) + "\n")
    answers.flush()


def main(argv: Sequence[str]) -> None:
    """``python -m benchmarks.workers SPEC_JSON``: serve requests from stdin."""
    answers = os.fdopen(os.dup(1), "w")  # the protocol's channel: a copy of stdout
    os.dup2(2, 1)  # stdout itself goes to stderr: prints cannot corrupt the answers
    serve(WorkerSpec(**json.loads(argv[0])), sys.stdin, answers)


if __name__ == "__main__":
    main(sys.argv[1:])
