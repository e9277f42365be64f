"""Failure injection: whatever happens to `tinygrad-lm train`, the run saved before is intact.

Each test hurts a run (SIGKILL and Ctrl-C at seeded random moments, a full disk, a corrupt
checkpoint, a diverging learning rate) and then checks that the last checkpoint loads, the
metrics log reads, and `--resume` carries on (after the kills, to exactly the losses of an
uninterrupted run).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import pytest

import tinygrad_lm as tl
from tinygrad_lm import cli, serialization
from tinygrad_lm.rundir import STAGING, holds_run, recover
from tinygrad_lm.train import CHECKPOINT, METRICS

ROOT = Path(__file__).resolve().parents[1]
TEXT = "".join(f"line {i}: the quick brown fox jumps over {i * i % 97} lazy dogs\n"
               for i in range(150))
SEED = 14  # the "random" moments of the kills, fixed so that CI repeats them


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def flags(corpus: Path, out: Path, max_iters: int = 10) -> list[str]:
    return ["--data", str(corpus), "--out", str(out), "--preset", "tiny", "--quiet",
            "--max-iters", str(max_iters), "--eval-interval", "5", "--eval-iters", "1",
            "--sample-tokens", "0", "--n-layer", "1", "--n-embd", "32", "--batch-size", "4",
            "--block-size", "16"]


def metrics(out: Path, allow_torn_last_line: bool = False) -> list[dict[str, Any]]:
    lines = (out / METRICS).read_text(encoding="utf-8").splitlines()
    entries = []
    for i, line in enumerate(lines):
        try:
            entries.append(json.loads(line))
        except ValueError:
            assert allow_torn_last_line and i == len(lines) - 1, line  # a kill mid-write
    return entries


def step_losses(out: Path) -> list[tuple[int, float]]:
    return [(e["iter"], e["loss"]) for e in metrics(out) if "loss" in e]


def assert_intact(out: Path, killed: bool) -> int:
    """The run in ``out``, as the next run finds it (after ``recover``, which finishes or
    undoes a move of files that a kill interrupted), reads back (checkpoint and metrics);
    returns its iteration, or -1 when ``out`` holds no run (a new run that stopped before its
    first checkpoint)."""
    recover(out)
    if not holds_run(out):
        assert not out.exists() or {p.name for p in out.iterdir()} <= {STAGING}
        return -1
    ckpt = tl.load(out / CHECKPOINT)
    entries = metrics(out, allow_torn_last_line=killed)
    assert max(e["iter"] for e in entries) >= ckpt["iter"]
    json.loads((out / "config.json").read_text())
    return int(ckpt["iter"])


def logged_lines(out: Path) -> int:
    """Lines in the metrics log of the run in ``out`` (staged or not): a step or evaluation
    each, so it tells how far the run has come."""
    for log in (out / METRICS, out / STAGING / METRICS):
        try:  # (the run may move its log from one place to the other meanwhile)
            return log.read_bytes().count(b"\n")
        except FileNotFoundError:
            continue
    return 0


def snapshot(directory: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(directory)): None if p.is_dir() else p.read_bytes()
            for p in sorted(directory.rglob("*"))}


def test_kills_and_interrupts_at_random_moments_never_lose_the_run(corpus: Path,
                                                                   tmp_path: Path):
    max_iters = 100
    reference = tmp_path / "reference"
    assert cli.main(["train", *flags(corpus, reference, max_iters)]) == 0
    out = tmp_path / "run"
    rng = random.Random(SEED)
    finished = False
    for sig in [signal.SIGKILL, signal.SIGINT, signal.SIGKILL, signal.SIGINT, signal.SIGKILL]:
        resume = (out / CHECKPOINT).exists()
        cmd = ["--out", str(out), "--resume", "--quiet"] if resume else flags(corpus, out, max_iters)
        proc = subprocess.Popen([sys.executable, "-m", "tinygrad_lm", "train", *cmd], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        target = logged_lines(out) + rng.randint(3, 20)  # a random moment, in steps
        deadline = time.time() + 60
        while proc.poll() is None and time.time() < deadline and logged_lines(out) < target:
            time.sleep(0.005)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert "Traceback" not in err, err
        assert proc.returncode in (0, 130 if sig == signal.SIGINT else -signal.SIGKILL), err
        reached = assert_intact(out, killed=sig == signal.SIGKILL)
        if proc.returncode == 0:
            finished = reached == max_iters
            break
    if not finished:
        resume = ["--resume"] if (out / CHECKPOINT).exists() else []
        rest = ["--out", str(out), "--quiet"] if resume else flags(corpus, out, max_iters)
        assert cli.main(["train", *rest, *resume]) == 0
    assert step_losses(out) == step_losses(reference)  # each step once, as if never stopped
    assert tl.load(out / CHECKPOINT)["iter"] == max_iters


class _FillsUp:
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, f: BinaryIO, room: int) -> None:
        self.f, self.room = f, room

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            self.f.write(data[:self.room])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.f.write(data)


def test_a_full_disk_while_saving_keeps_the_last_checkpoint(corpus: Path, tmp_path: Path,
                                                            monkeypatch, capsys):
    real = serialization.atomic_writer
    saves: list[Path] = []

    @contextlib.contextmanager
    def filling_writer(path: Path) -> Iterator[Any]:
        saves.append(path)
        with real(path) as f:
            yield f if len(saves) <= 2 else _FillsUp(f, 1000)  # the 2nd ckpt.tlm fails

    monkeypatch.setattr(serialization, "atomic_writer", filling_writer)
    out = tmp_path / "run"
    assert cli.main(["train", *flags(corpus, out, 15)]) == 2
    line = capsys.readouterr().err.strip()
    assert "No space left on device" in line and "the last checkpoint saved" in line
    assert "\n" not in line and "Traceback" not in line
    assert assert_intact(out, killed=False) == 5
    assert not list(out.glob(".*.tmp"))  # the half-written file is gone
    monkeypatch.setattr(serialization, "atomic_writer", real)
    assert cli.main(["train", "--out", str(out), "--resume"]) == 0
    assert [i for i, _ in step_losses(out)] == list(range(1, 16))


def test_a_full_file_system_keeps_the_last_checkpoint(corpus: Path, tmp_path: Path, capsys):
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=480k", "tmpfs", str(disk)],
                           capture_output=True) if os.geteuid() == 0 else None
    if mount is None or mount.returncode != 0:
        pytest.skip("mounting a small tmpfs needs root and a system that allows it")
    try:
        out = disk / "run"  # the run takes 0.4 MB (two 180 kB checkpoints): the third checkpoint does not fit
        assert cli.main(["train", *flags(corpus, out, 15)]) == 2
        assert "No space left on device" in capsys.readouterr().err
        assert assert_intact(out, killed=False) == 5
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
        assert cli.main(["train", "--out", str(out), "--resume"]) == 0
        assert assert_intact(out, killed=False) == 15
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_corrupt_checkpoint_is_reported_and_left_alone(corpus: Path, tmp_path: Path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", *flags(corpus, out)]) == 0
    raw = bytearray((out / CHECKPOINT).read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (out / CHECKPOINT).write_bytes(bytes(raw))
    before = snapshot(out)
    capsys.readouterr()
    assert cli.main(["train", "--out", str(out), "--resume", "--max-iters", "12"]) == 2
    err = capsys.readouterr().err.strip()
    assert "checksum mismatch" in err and "\n" not in err
    assert snapshot(out) == before


def test_a_half_written_checkpoint_of_a_killed_save_is_ignored_and_cleared(corpus: Path,
                                                                           tmp_path: Path):
    out = tmp_path / "run"
    assert cli.main(["train", *flags(corpus, out)]) == 0
    leftover = out / f".{CHECKPOINT}.deadbeef.tmp"
    leftover.write_bytes((out / CHECKPOINT).read_bytes()[:1000])
    assert cli.main(["train", "--out", str(out), "--resume", "--max-iters", "12"]) == 0
    assert not leftover.exists() and assert_intact(out, killed=False) == 12


def test_a_diverging_new_run_leaves_the_old_run_resumable(corpus: Path, tmp_path: Path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", *flags(corpus, out)]) == 0
    before = snapshot(out)
    assert cli.main(["train", *flags(corpus, out, 50), "--overwrite", "--lr", "1e9",
                     "--grad-clip", "0", "--eval-interval", "50"]) == 2
    assert "loss became" in capsys.readouterr().err
    assert snapshot(out) == before
    assert cli.main(["train", "--out", str(out), "--resume", "--max-iters", "12"]) == 0
    assert [i for i, _ in step_losses(out)] == list(range(1, 13))


@pytest.mark.parametrize("moved_aside, moved_in", [
    (1, 0),  # killed while moving the earlier run aside
    (99, 0),  # all moved aside, nothing of the new run in yet
    (99, 3),  # the new run's data, plot and config in, its metrics and checkpoints not
    (99, 99),  # everything moved, only the clean-up left
])
def test_a_commit_killed_at_any_point_leaves_one_whole_run(tmp_path: Path, moved_aside: int,
                                                          moved_in: int) -> None:
    """RunDir.commit moves the earlier run aside, then the new run in (its checkpoint last);
    replay it up to a point, as a kill would leave it, and ``recover`` must restore the
    earlier run whole, or finish the new one."""
    from tinygrad_lm.rundir import ALL_ASIDE, REPLACED, RUN_FILES

    out = tmp_path / "run"
    names = ("ckpt.tlm", "metrics.jsonl", "config.json")
    (out / STAGING).mkdir(parents=True)
    for name in names:
        (out / name).write_text(f"old {name}")
        (out / STAGING / name).write_text(f"new {name}")
    (out / STAGING / "data").mkdir()
    (out / STAGING / "data" / "train.bin").write_text("new data")
    (out / "data").mkdir()
    (out / "data" / "train.bin").write_text("old data")
    aside = out / REPLACED
    aside.mkdir()
    old = [n for n in RUN_FILES if (out / n).exists()]
    for name in old[:moved_aside]:
        (out / name).replace(aside / name)
    if moved_aside >= len(old):
        (aside / ALL_ASIDE).touch()
        new = [n for n in reversed(RUN_FILES) if (out / STAGING / n).exists()]
        for name in new[:moved_in]:
            (out / STAGING / name).replace(out / name)
    recover(out)
    which = "new" if moved_in >= 99 else "old"
    assert sorted(p.name for p in out.iterdir()) == sorted([*names, "data"])
    for name in names:
        assert (out / name).read_text() == f"{which} {name}"
    assert (out / "data" / "train.bin").read_text() == f"{which} data"
