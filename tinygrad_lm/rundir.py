"""The output directory of a training run, and the rules that keep an earlier run safe in it.

A run directory holds ``ckpt.tlm`` (the latest checkpoint), ``ckpt_best.tlm`` (the lowest
validation loss), ``metrics.jsonl`` (one JSON object per line), ``config.json`` (the resolved
configuration), ``loss.png`` and ``data/`` (the token cache).

- A new run refuses a directory that already holds a run unless told to replace it.
- A new run works in ``DIR/.incomplete-run/`` until it saves its first checkpoint, and only
  then moves its files into ``DIR``, replacing an earlier run's. A run that fails or is
  killed before that leaves ``DIR`` as it found it (and no ``DIR`` if it made it).
- A process killed while moving those files leaves ``DIR/.replaced-run/``; the next run
  first finishes the move or undoes it (``recover``), so ``DIR`` holds one whole run.
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
ALL_ASIDE = ".all-moved"  # in REPLACED: every file of the earlier run has been moved there


def holds_run(out: Path) -> bool:
    """Whether ``out`` holds what a training run leaves: a checkpoint or a metrics log."""
    return any((out / name).exists() for name in (CHECKPOINT, BEST_CHECKPOINT, METRICS))


def recover(out: str | Path) -> None:
    """Finish or undo a ``RunDir.commit`` that a killed process left half done, so that
    ``out`` holds either the earlier run or the new one, whole. Until the earlier run's files
    were all moved aside they go back; until the new checkpoint was moved in, the new run's
    files that made it are removed and the earlier run's go back; after that the commit is
    finished."""
    out = Path(out)
    aside = out / REPLACED
    if not aside.is_dir():
        return
    new_run_in = (aside / ALL_ASIDE).exists() and not (out / STAGING / CHECKPOINT).exists()
    if not new_run_in:
        if (aside / ALL_ASIDE).exists():  # the new run's files in out are partial
            for name in RUN_FILES:
                target = out / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        for name in RUN_FILES:
            if (aside / name).exists():
                (aside / name).replace(out / name)
    shutil.rmtree(out / STAGING, ignore_errors=True)
    shutil.rmtree(aside)


class RunDir:
    """Where the files of one run go now: the staging directory until the first checkpoint
    of a new run is committed, ``out`` afterwards (and from the start for a resumed run).

    Only the process that writes files (rank 0) calls ``open``, ``commit`` and ``discard``;
    every rank may ask ``path`` where the files are.
    """

    def __init__(self, out: str | Path, resume: bool) -> None:
        self.out = Path(out)
        recover(self.out)
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
        first, deleted last). Called once its first checkpoint is written. A process killed
        half-way leaves ``REPLACED`` behind, and ``recover`` puts things right."""
        if self.committed:
            return
        aside = self.out / REPLACED
        shutil.rmtree(aside, ignore_errors=True)
        aside.mkdir()
        for name in RUN_FILES:
            if (self.out / name).exists():
                (self.out / name).replace(aside / name)
        (aside / ALL_ASIDE).touch()
        for name in reversed(RUN_FILES):  # the checkpoint last: once it is in, all is in
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
