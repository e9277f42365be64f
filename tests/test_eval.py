"""``tinygrad-lm eval``: a run's loss and perplexity over every token of a split."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_lm as tl
import tinygrad_lm.nn.functional as F
from tinygrad_lm.evaluate import evaluate_run, split_ids, split_loss
from tinygrad_lm.models import GPT, GPTConfig
from tinygrad_lm.sample import load_model

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short training run on a small text file."""
    out = tmp_path_factory.mktemp("eval") / "run"
    data = out.parent / "text.txt"
    data.write_text("the quick brown fox jumps over the lazy dog. " * 60)
    subprocess.run([sys.executable, "-m", "tinygrad_lm", "train", "--preset", "tiny",
                    "--data", str(data), "--out", str(out), "--max-iters", "20", "--quiet",
                    "--sample-tokens", "0"], cwd=ROOT, check=True, capture_output=True)
    return out


def test_split_loss_is_the_mean_over_every_window_whatever_the_batch() -> None:
    tl.manual_seed(0)
    model = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=1, n_head=2, n_embd=8)).eval()
    ids = np.random.default_rng(0).integers(0, 11, 8 * 5 + 3)  # 5 windows; 2 tokens left over
    expected = []
    for w in range(5):
        logits, _ = model(tl.Tensor(ids[None, w * 8:(w + 1) * 8]))
        expected.append(F.cross_entropy(logits.reshape(8, 11), ids[w * 8 + 1:(w + 1) * 8 + 1])
                        .item())
    for batch in (1, 2, 64):
        loss, tokens = split_loss(model, ids, 8, batch)
        assert tokens == 40
        assert loss == pytest.approx(float(np.mean(expected)), rel=1e-6)


def test_split_ids_cut_where_training_cuts() -> None:
    class Identity:
        def encode(self, text: str) -> np.ndarray:
            return np.arange(len(text))

    assert split_ids("x" * 20, Identity(), "val").tolist() == list(range(18, 20))
    assert split_ids("x" * 20, Identity(), "train").tolist() == list(range(18))


def test_eval_reports_the_runs_whole_split_loss_and_perplexity(run: Path) -> None:
    result = evaluate_run(run)
    model, tokenizer = load_model(run)
    text = (run.parent / "text.txt").read_text()
    loss, tokens = split_loss(model, split_ids(text, tokenizer, "val"), model.config.block_size)
    assert result["loss"] == pytest.approx(loss) and result["tokens"] == tokens
    assert result["perplexity"] == pytest.approx(math.exp(loss))
    assert result["split"] == "val" and result["iter"] == 20
    assert evaluate_run(run, split="train")["tokens"] > 5 * tokens  # nine tenths against one


def test_eval_command_prints_one_line_and_errors_name_the_flag(run: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tinygrad_lm", "eval", *args], cwd=ROOT,
                              capture_output=True, text=True)

    ok = cli("--out", str(run))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("val loss ") and "perplexity" in ok.stdout
    assert len(ok.stdout.strip().splitlines()) == 1
    for args, says in ((["--out", str(run), "--split", "test"], "--split must be one of"),
                       (["--out", str(run), "--batch-size", "0"], "--batch-size must be at least 1"),
                       (["--out", str(run.parent / "none")], "no checkpoint in")):
        bad = cli(*args)
        assert bad.returncode == 2 and says in bad.stderr and "Traceback" not in bad.stderr
