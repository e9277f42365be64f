"""`tinygrad-lm train` keeps earlier work safe and says what it does (issue #14).

A new run refuses a directory that holds a run; --overwrite replaces it only at the new
run's first checkpoint; --resume restores the saved configuration; --config reads TOML;
every bad flag value is one line naming the flag; the run says what it is at the start.
"""
from __future__ import annotations

import io
import json
import os
import re
import sys
from pathlib import Path

import pytest

from tinygrad_lm import cli, distributed, save
from tinygrad_lm.checks import select
from tinygrad_lm.data import tokenizers
from tinygrad_lm.data.tokenizers import BPETokenizer
from tinygrad_lm.train import CHECKPOINT, METRICS, Trainer
from tinygrad_lm.run_config import new_run

TEXT = ("To be, or not to be, that is the question:\n"
        "Whether 'tis nobler in the mind to suffer\n"
        "The slings and arrows of outrageous fortune,\n") * 40

QUICK = ["--preset", "tiny", "--quiet", "--eval-iters", "2", "--eval-interval", "5",
         "--sample-tokens", "0"]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def snapshot(directory: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and directory (None) under ``directory``, hidden ones too."""
    return {str(p.relative_to(directory)): None if p.is_dir() else p.read_bytes()
            for p in sorted(directory.rglob("*"))}


def train(*args: str) -> int:
    return cli.main(["train", *map(str, args)])


def step_iters(out: Path) -> list[int]:
    lines = (out / METRICS).read_text(encoding="utf-8").splitlines()
    return [e["iter"] for e in map(json.loads, lines) if "loss" in e]


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def finished_run(corpus: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    assert train("--data", corpus, "--out", out, "--max-iters", "10", *QUICK) == 0
    return out


# ----------------------------------------------------------------------------- refuse, overwrite


def test_a_second_run_refuses_in_one_line_and_writes_nothing(finished_run: Path, corpus: Path,
                                                             capsys):
    before = snapshot(finished_run)
    capsys.readouterr()
    assert train("--data", corpus, "--out", finished_run, "--max-iters", "1", *QUICK) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "already holds a run" in line and "--resume" in line and "--overwrite" in line
    assert "iteration 10" in line
    assert snapshot(finished_run) == before


def test_overwrite_replaces_the_old_run_only_at_the_new_runs_first_checkpoint(
        finished_run: Path, corpus: Path, tmp_path: Path, capsys):
    before = snapshot(finished_run)
    # fails at once (a typo in --data): nothing changes
    assert train("--data", tmp_path / "typo.txt", "--out", finished_run, "--overwrite",
                 *QUICK) == 2
    assert snapshot(finished_run) == before
    # diverges before its first checkpoint: nothing changes, and the message says so
    capsys.readouterr()
    assert train("--data", corpus, "--out", finished_run, "--overwrite", "--lr", "1e9",
                 "--grad-clip", "0", *QUICK, "--eval-interval", "50") == 2
    line = one_error_line(capsys.readouterr().err)
    assert "loss became" in line and "nothing was saved" in line
    assert snapshot(finished_run) == before
    # succeeds: the old run is replaced as a whole
    assert train("--data", corpus, "--out", finished_run, "--overwrite", "--max-iters", "6",
                 *QUICK) == 0
    assert step_iters(finished_run) == list(range(1, 7))
    assert sorted(p.name for p in finished_run.iterdir()) == \
        ["ckpt.tlm", "ckpt_best.tlm", "config.json", "data", "metrics.jsonl"]


def test_a_failed_start_into_a_new_directory_leaves_no_directory(corpus: Path, tmp_path: Path):
    out = tmp_path / "a" / "b" / "run"
    assert train("--data", tmp_path / "missing.txt", "--out", out, *QUICK) == 2
    assert not (tmp_path / "a").exists()
    assert train("--data", corpus, "--out", out, "--block-size", "5000", *QUICK) == 2
    assert not (tmp_path / "a").exists()


# ----------------------------------------------------------------------------- resume


def test_resume_restores_the_saved_configuration(corpus: Path, tmp_path: Path, capsys,
                                                 monkeypatch):
    out = tmp_path / "run"
    flags = {"data": str(corpus), "out": str(out), "max_iters": 30, "eval_iters": 2,
             "eval_interval": 10, "quiet": True, "sample_tokens": 0, "preset": "tiny"}
    Trainer(new_run({}, flags)).run(until=20)  # as if interrupted at 20 of 30
    monkeypatch.chdir(tmp_path / "..")  # the data path was saved absolute
    capsys.readouterr()
    assert train("--out", out, "--resume") == 0
    err = capsys.readouterr().err
    assert "resuming the run" in err and "done: iterations 20 -> 30 (10 in" in err
    assert step_iters(out) == list(range(1, 31))
    assert json.loads((out / "config.json").read_text())["max_iters"] == 30
    # the finished run: nothing to do, nothing changes
    before = snapshot(out)
    assert train("--out", out, "--resume") == 0
    assert "is finished (30 of 30 iterations)" in capsys.readouterr().err
    assert snapshot(out) == before
    # a larger --max-iters extends it, on the saved data and model
    assert train("--out", out, "--resume", "--max-iters", "35", "--quiet") == 0
    assert step_iters(out) == list(range(1, 36))


@pytest.mark.parametrize("flags,message", [
    (["--n-layer", "3"], "--n-layer 3 contradicts the run being resumed, which has --n-layer 2"),
    (["--lr", "0.5"], "--lr 0.5 contradicts"),
    (["--preset", "cpu"], "--preset cpu contradicts"),
    (["--max-iters", "5"], "--max-iters 5 is less than the 10 iterations"),
    (["--overwrite"], "give one of them"),
])
def test_resume_refuses_a_flag_that_contradicts_the_run(finished_run: Path, capsys, flags,
                                                        message):
    before = snapshot(finished_run)
    capsys.readouterr()
    assert train("--out", finished_run, "--resume", *flags) == 2
    assert message in one_error_line(capsys.readouterr().err)
    assert snapshot(finished_run) == before


def test_resume_without_a_run_says_so(tmp_path: Path, capsys):
    assert train("--out", tmp_path / "none", "--resume") == 2
    assert "no checkpoint in" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "none").exists()


# ----------------------------------------------------------------------------- --config


def test_config_file_gives_flags_and_the_command_line_wins(corpus: Path, tmp_path: Path):
    toml = tmp_path / "run.toml"
    toml.write_text(f'preset = "tiny"\ndata = "{corpus}"\nmax_iters = 3\neval_interval = 2\n'
                    f'eval_iters = 1\nsample_tokens = 0\nquiet = true\nlr = 1\n')
    out = tmp_path / "run"
    assert train("--config", toml, "--out", out) == 0
    assert step_iters(out) == [1, 2, 3]
    saved = json.loads((out / "config.json").read_text())
    assert saved["lr"] == 1.0 and saved["n_layer"] == 2  # from the file, then the preset
    assert train("--config", toml, "--out", tmp_path / "two", "--max-iters", "4") == 0
    assert step_iters(tmp_path / "two") == [1, 2, 3, 4]


@pytest.mark.parametrize("content,message", [
    ("max_itres = 3", "unknown key 'max_itres'"),
    ('max_iters = "3"', "max_iters must be int, got '3'"),
    ("max_iters = ", "not valid TOML"),
])
def test_a_bad_config_file_is_one_line(tmp_path: Path, capsys, content, message):
    toml = tmp_path / "bad.toml"
    toml.write_text(content)
    assert train("--config", toml, "--out", tmp_path / "run") == 2
    assert message in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- bad values


@pytest.mark.parametrize("flags,message", [
    (["--eval-interval", "0"], "--eval-interval must be at least 1, got 0"),
    (["--eval-iters", "0"], "--eval-iters must be at least 1, got 0"),
    (["--max-iters", "-1"], "--max-iters must be at least 1, got -1"),
    (["--block-size", "0"], "--block-size must be at least 1, got 0"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--n-head", "3"], "--n-embd 64 must be a multiple of --n-head 3"),
    (["--dropout", "1.5"], "--dropout must be at least 0 and below 1, got 1.5"),
    (["--lr", "nan"], "--lr must be a finite number"),
    (["--lr", "0"], "--lr must be greater than 0"),
    (["--seed", "-1"], "--seed must be at least 0, got -1"),
    (["--tokenizer", "bpe", "--vocab-size", "100000"], "--vocab-size must be between 256 and"),
    (["--block-size", "5000"], "--block-size 5000 is too long for the train split"),
    (["--max-iters", "abc"], "argument --max-iters: invalid int value: 'abc'"),
    (["--device", "tpu"], "unknown device 'tpu'"),
])
def test_every_bad_train_flag_is_one_line_naming_it(corpus: Path, tmp_path: Path, capsys,
                                                    flags, message):
    try:
        status = train("--data", corpus, "--out", tmp_path / "run", *QUICK, *flags)
    except SystemExit as exc:  # argparse's own checks (types, choices)
        status = exc.code
    assert status == 2
    assert message in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flags,message", [
    (["--max-new-tokens", "-5"], "--max-new-tokens must be at least 0, got -5"),
    (["--top-k", "0"], "--top-k must be at least 1"),
    (["--top-p", "0"], "--top-p must be above 0"),
    (["--temperature", "-1"], "--temperature must be at least 0"),
])
def test_bad_sample_flags_are_one_line(finished_run: Path, capsys, flags, message):
    capsys.readouterr()
    assert cli.main(["sample", "--out", str(finished_run), *flags]) == 2
    assert message in one_error_line(capsys.readouterr().err)


# ----------------------------------------------------------------------------- what it says


def test_the_start_summary_and_progress_say_what_runs_and_how_fast(corpus: Path,
                                                                   tmp_path: Path, capsys,
                                                                   monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    out = tmp_path / "run"
    assert train("--data", corpus, "--out", out, "--max-iters", "4",
                 *[f for f in QUICK if f != "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"run: a new run in {out}" in err
    assert "M parameters" in err and f"token cache in {out / 'data'}" in err
    assert "train + " in err and "val tokens" in err
    assert "config: data=" in err and "max_iters=4" in err
    last = [line for line in err.splitlines() if line.startswith("iter 4/4")][0]
    assert "ms/iter" in last and "tok/s" in last and "elapsed" in last and "ETA" in last
    assert re.search(r"tok/s, \d+% of matmul peak \|", last)
    assert re.search(r"matmul peak: [\d,]+ GFLOP/s", err)
    assert "done: iterations 0 -> 4 (4 in" in err
    assert err.count("matplotlib is not installed") == 1


def test_bpe_training_reports_progress(caplog, monkeypatch):
    monkeypatch.setattr(tokenizers, "_REPORT_EVERY_S", -1.0)
    with caplog.at_level("INFO", logger="tinygrad_lm.data.tokenizers"):
        BPETokenizer.train(TEXT, 260)
    assert "merges learned" in caplog.text and "left" in caplog.text


def test_ddp_without_mpi4py_is_an_error(corpus: Path, tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    assert train("--data", corpus, "--out", tmp_path / "run", "--ddp", *QUICK) == 2
    assert "--ddp needs mpi4py" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()
    assert distributed.get_world_size() == 1


def test_checkpoints_are_written_with_the_umask_mode(tmp_path: Path):
    previous = os.umask(0o022)
    try:
        save({"x": 1}, tmp_path / "a.tlm")
    finally:
        os.umask(previous)
    assert (tmp_path / "a.tlm").stat().st_mode & 0o777 == 0o644


def test_gradcheck_picks_rows_by_a_word_and_lists_names_it_does_not_know(capsys):
    assert [c.name for c in select(["matmul"])] == ["matmul 2-D", "matmul 1-D", "matmul batched"]
    assert [c.name for c in select(["rotary"])] == ["F.rotary_embedding"]  # _ and . split words
    assert [c.name for c in select(["sum"])] == ["sum"]  # not "logsumexp"
    assert cli.main(["gradcheck", "--op", "nope", "--no-second-order"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "no check is named 'nope'; the checks are: add, sub," in line and "matmul 2-D" in line



def test_the_share_of_the_matmul_peak_is_the_step_s_flops_over_the_peak():
    from tinygrad_lm.progress import Progress

    stream = io.StringIO()
    progress = Progress(0, 10, 100, stream=stream, flops_per_step=2e9, peak_flops=1e11)
    progress.update(10, 1.0, 0.05)  # 2 GFLOP in 50 ms: 40 GFLOP/s of 100
    assert "2,000 tok/s, 40% of matmul peak |" in stream.getvalue()
    unmeasured = Progress(0, 10, 100, stream=io.StringIO())
    unmeasured.update(1, 1.0, 0.05)
    assert "2,000 tok/s |" in unmeasured.line(1, 1.0)


def test_the_preset_follows_the_data_unless_one_is_named():
    from tinygrad_lm.run_config import new_run
    from tinygrad_lm.train import PRESETS

    shakespeare = new_run({}, {"data": "shakespeare"})
    assert shakespeare.preset == "shakespeare" and shakespeare.pos_emb == "rope"
    assert shakespeare.max_iters == PRESETS["shakespeare"]["max_iters"]
    assert new_run({"data": "shakespeare"}, {}).preset == "shakespeare"  # from a TOML file
    assert new_run({}, {"data": "shakespeare", "preset": "cpu"}).pos_emb == "learned"
    assert new_run({}, {"data": "stdlib"}).preset == "cpu"
    assert new_run({}, {"init_from": "gpt2"}).preset == "finetune"
