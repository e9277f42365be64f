"""train and sample: the command line end to end, exact resume, and bad input."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinygrad_lm import cli
from tinygrad_lm.rundir import STAGING
from tinygrad_lm.train import CHECKPOINT, METRICS, TrainConfig, TrainingError, Trainer

TEXT = ("To be, or not to be, that is the question:\n"
        "Whether 'tis nobler in the mind to suffer\n"
        "The slings and arrows of outrageous fortune,\n") * 40

TINY = ["--preset", "tiny", "--quiet", "--eval-iters", "2", "--sample-tokens", "20"]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def step_losses(out: Path) -> list[tuple[int, float]]:
    lines = (out / METRICS).read_text(encoding="utf-8").splitlines()
    return [(e["iter"], e["loss"]) for e in map(json.loads, lines) if "loss" in e]


def test_train_then_sample(corpus: Path, tmp_path: Path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--data", str(corpus), "--out", str(out), "--max-iters", "30",
                     *TINY]) == 0
    assert (out / CHECKPOINT).exists() and (out / "ckpt_best.tlm").exists()
    losses = step_losses(out)
    assert [i for i, _ in losses] == list(range(1, 31))
    assert losses[-1][1] < losses[0][1]  # it learns
    capsys.readouterr()
    args = ["sample", "--out", str(out), "--prompt", "To be", "--max-new-tokens", "40",
            "--seed", "3"]
    assert cli.main(args) == 0
    first = capsys.readouterr().out
    assert first.startswith("To be") and len(first) > 40
    assert cli.main(args) == 0
    assert capsys.readouterr().out == first  # same seed, same text
    # past the 32-token window of the tiny preset, halving gives the same greedy text with
    # and without the cache
    halve = ["sample", "--out", str(out), "--prompt", "To be", "--max-new-tokens", "60",
             "--temperature", "0", "--context", "halve"]
    assert cli.main(halve) == 0
    cached = capsys.readouterr().out
    assert cached.startswith("To be") and len(cached) > 60
    assert cli.main([*halve, "--no-cache"]) == 0
    assert capsys.readouterr().out == cached


def test_resume_continues_exactly(corpus: Path, tmp_path: Path):
    base = dict(data=str(corpus), quiet=True, max_iters=20, batch_size=4, block_size=16,
                n_layer=1, n_head=2, n_embd=16, eval_interval=10, eval_iters=1, warmup=3,
                dropout=0.1)
    whole = tmp_path / "whole"
    Trainer(TrainConfig(out=str(whole), **base)).run()
    part = tmp_path / "part"
    Trainer(TrainConfig(out=str(part), **base)).run(until=10)
    Trainer(TrainConfig(out=str(part), resume=True, **base)).run()
    assert step_losses(part) == step_losses(whole)


def test_interrupt_saves_a_checkpoint(corpus: Path, tmp_path: Path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "tinygrad_lm", "train", "--data", str(corpus), "--out", str(out),
           "--max-iters", "100000", "--eval-interval", "100000", *TINY]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / STAGING / METRICS).exists():  # training began
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted at iteration" in err and "Traceback" not in err
    assert (out / CHECKPOINT).exists()


@pytest.mark.parametrize("content,message", [(None, "missing.txt"), ("", "empty")])
def test_bad_data_is_one_clear_line(tmp_path: Path, capsys, content, message):
    path = tmp_path / ("missing.txt" if content is None else "empty.txt")
    if content is not None:
        path.write_text(content)
    assert cli.main(["train", "--data", str(path), "--out", str(tmp_path / "o"), *TINY]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_sample_rejects_unknown_characters_and_missing_checkpoint(corpus: Path, tmp_path: Path,
                                                                  capsys):
    out = tmp_path / "run"
    assert cli.main(["sample", "--out", str(out)]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    cli.main(["train", "--data", str(corpus), "--out", str(out), "--max-iters", "2", *TINY])
    capsys.readouterr()
    assert cli.main(["sample", "--out", str(out), "--prompt", "Zebra 🦓"]) == 2
    err = capsys.readouterr().err
    assert "🦓" in err and "Traceback" not in err


def test_diverging_loss_stops_with_a_clear_message(corpus: Path, tmp_path: Path):
    cfg = TrainConfig(data=str(corpus), out=str(tmp_path / "run"), quiet=True, max_iters=5,
                      batch_size=2, block_size=8, n_layer=1, n_head=1, n_embd=8, eval_iters=1)
    trainer = Trainer(cfg)
    for p in trainer.model.parameters():
        p.data[...] = float("nan")
    with pytest.raises(TrainingError, match="loss became nan"):
        trainer.step()


def test_module_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "tinygrad_lm", "train", "--help"],
                         capture_output=True, text=True, env={**os.environ}, timeout=60)
    assert out.returncode == 0 and "--max-iters" in out.stdout
