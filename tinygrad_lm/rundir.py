"""The output directory of a training run, and the rules that keep an earlier run safe in it.

A run directory holds ``ckpt.tlm`` (the latest checkpoint), ``ckpt_best.tlm`` (the lowest
validation loss), ``metrics.jsonl`` (one JSON object per line), ``config.json`` (the resolved
configuration), ``loss.png`` and ``data/`` (the token cache).

- A new run refuses a directory that already holds a run unless told to replace it.
- A new run works in ``DIR/.incomplete-run/`` until it saves its first checkpoint, and only
  then moves its files into ``DIR``, replacing an earlier run's. A run that fails or is
  killed before that leaves ``DIR`` as it found it (and no ``DIR`` if it made it).
- A resumed run works in ``DIR`` itself: checkpoints are replaced atomically, metrics are
  appended, after dropping the lines of steps that the checkpoint does not hold (those of a
  killed process, possibly with a half-written last line).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from .atomic import atomic_write_bytes

CHECKPOINT = "ckpt.tlm"
BEST_CHECKPOINT = "ckpt_best.tlm"
METRICS = "metrics.jsonl"
CONFIG = "config.json"
PLOT = "loss.png"
DATA = "data"
RUN_FILES = (CHECKPOINT, BEST_CHECKPOINT, METRICS, CONFIG, PLOT, DATA)
STAGING = ".incomplete-run"
REPLACED = ".replaced-run"


def holds_run(out: Path) -> bool:
    """Whether ``out`` holds what a training run leaves: a checkpoint or a metrics log."""
    return any((out / name).exists() for name in (CHECKPOINT, BEST_CHECKPOINT, METRICS))


class RunDir:
    """Where the files of one run go now: the staging directory until the first checkpoint
    of a new run is committed, ``out`` afterwards (and from the start for a resumed run).

    Only the process that writes files (rank 0) calls ``open``, ``commit`` and ``discard``;
    every rank may ask ``path`` where the files are.
    """

    def __init__(self, out: str | Path, resume: bool) -> None:
        self.out = Path(out)
        self.committed = resume
        self.replaces_run = not resume and holds_run(self.out)
        self._created: Path | None = None  # the topmost directory this run made

    @property
    def work(self) -> Path:
        """The directory the run's files go to now."""
        return self.out if self.committed else self.out / STAGING

    def path(self, name: str) -> Path:
        """Where the run file ``name`` is (or goes) now."""
        return self.work / name

    def open(self) -> None:
        """Make the working directory, clearing what a killed process left: a new run's
        staging directory, half-written temporary files of run files."""
        missing = [p for p in [self.out, *self.out.parents] if not p.exists()]
        self._created = missing[-1] if missing else None
        if not self.committed:
            shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:
            for leftover in self.work.glob(f".{name}.*.tmp"):
                leftover.unlink()

    def commit(self) -> None:
        """Move a new run's files into ``out``, replacing an earlier run's (moved aside
        first, deleted last). Called once its first checkpoint is written."""
        if self.committed:
            return
        aside = self.out / REPLACED
        shutil.rmtree(aside, ignore_errors=True)
        aside.mkdir()
        for name in RUN_FILES:
            if (self.out / name).exists():
                (self.out / name).replace(aside / name)
        for name in RUN_FILES:
            if (self.work / name).exists():
                (self.work / name).replace(self.out / name)
        shutil.rmtree(self.work)
        shutil.rmtree(aside)
        self.committed = True

    def discard(self) -> None:
        """Forget a new run that never committed: its staging directory, and the
        directories it made for ``out`` (if nothing else was put there meanwhile)."""
        if self.committed:
            return
        shutil.rmtree(self.work, ignore_errors=True)
        if self._created is None:
            return
        for directory in [self.out, *self.out.parents]:
            try:
                directory.rmdir()
            except OSError:
                return
            if directory == self._created:
                return


def trim_metrics(path: Path, iteration: int) -> None:
    """Keep the metrics lines up to ``iteration`` (the checkpoint's): drop those of steps a
    killed or failed process ran past it, and a half-written last line."""
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("iter", 0) <= iteration:
            kept.append(line)
    if kept != lines:
        atomic_write_bytes(path, "".join(line + "\n" for line in kept).encode("utf-8"))
