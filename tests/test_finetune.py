"""``train --init-from``: fine-tuning pretrained GPT-2 weights with their own tokenizer."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from test_gpt2_tokenizer import MERGES, write_tokenizer
from test_gpt2_weights import hf_config, random_hf_state, write_hf_dir
from tinygrad_lm import cli, load
from tinygrad_lm.data import GPT2Tokenizer, prepare_dataset, tokenizer_from_dict
from tinygrad_lm.models import GPT, GPTConfig
from tinygrad_lm.tensor import Tensor

VOCAB = 256 + len(MERGES) + 1  # write_tokenizer's bytes, merges and <|endoftext|>
TEXT = "the theatre held the hall; all the ab and bc 12 times.\n" * 40


@pytest.fixture
def gpt2_dir(tmp_path) -> Path:
    """A small random GPT-2 in Hugging Face's layout, with a GPT-2 tokenizer beside it."""
    config = hf_config(vocab_size=VOCAB, n_positions=32, n_ctx=32)
    directory = write_hf_dir(tmp_path / "gpt2", random_hf_state(config), config)
    write_tokenizer(directory)
    return directory


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def fine_tune(gpt2_dir: Path, corpus: Path, out: Path, *extra: str) -> int:
    return cli.main(["train", "--init-from", str(gpt2_dir), "--data", str(corpus), "--out",
                     str(out), "--block-size", "16", "--batch-size", "2", "--max-iters", "3",
                     "--eval-interval", "3", "--eval-iters", "1", "--sample-tokens", "0",
                     "--quiet", *extra])


def test_init_from_trains_the_pretrained_weights_with_their_tokenizer(gpt2_dir, corpus, tmp_path):
    out = tmp_path / "run"
    assert fine_tune(gpt2_dir, corpus, out) == 0
    ckpt = load(out / "ckpt.tlm")
    pretrained = GPT.from_pretrained(gpt2_dir)
    assert ckpt["model_config"] == {**pretrained.config.__dict__, "block_size": 16}
    assert ckpt["model_config"]["gelu_approximate"] == "tanh"
    assert ckpt["tokenizer"]["kind"] == "gpt2"
    config = ckpt["train_config"]
    assert (config["n_layer"], config["n_embd"], config["tokenizer"], config["preset"]) == \
        (2, 16, "pretrained", "finetune")
    # three AdamW steps at lr 3e-5 move each weight by about 1e-4; a fresh model is 0.3 away
    moved = np.abs(ckpt["model"]["transformer.h.0.mlp.c_fc.weight"]
                   - pretrained.state_dict()["transformer.h.0.mlp.c_fc.weight"]).max()
    assert 0 < moved < 1e-3
    tokens = json.loads((out / "data" / "meta.json").read_text())
    assert tokens["tokenizer"] == "gpt2" and tokens["vocab_size"] == VOCAB


def test_a_fine_tuning_run_resumes_without_the_pretrained_files(gpt2_dir, corpus, tmp_path,
                                                                capsys):
    out = tmp_path / "run"
    assert fine_tune(gpt2_dir, corpus, out) == 0
    shutil.rmtree(gpt2_dir)
    assert cli.main(["train", "--out", str(out), "--resume", "--max-iters", "5", "--quiet",
                     "--sample-tokens", "0"]) == 0
    assert load(out / "ckpt.tlm")["iter"] == 5
    assert cli.main(["sample", "--out", str(out), "--prompt", "the", "--max-new-tokens", "4",
                     "--temperature", "0"]) == 0
    assert capsys.readouterr().out.startswith("the")


def test_export_of_a_fine_tuned_run_writes_gpt2_s_tokenizer_files(gpt2_dir, corpus, tmp_path,
                                                                  capsys):
    out = tmp_path / "run"
    assert fine_tune(gpt2_dir, corpus, out) == 0
    assert cli.main(["export", "--out", str(out)]) == 0
    exported = out / "safetensors"
    assert sorted(p.name for p in exported.iterdir()) == \
        ["config.json", "merges.txt", "model.safetensors", "vocab.json"]
    again = GPT2Tokenizer.from_files(exported / "vocab.json", exported / "merges.txt")
    original = GPT2Tokenizer.from_files(gpt2_dir / "vocab.json", gpt2_dir / "merges.txt")
    assert again.to_dict() == original.to_dict()


@pytest.mark.parametrize("flags, message", [
    (["--n-layer", "3"], "--n-layer cannot be combined with --init-from"),
    (["--tokenizer", "char"], "--tokenizer cannot be combined with --init-from"),
    (["--preset", "llama"], "--preset llama's --pos-emb cannot be combined with --init-from"),
    (["--block-size", "64"], "--block-size 64 is longer than the context"),
])
def test_init_from_refuses_what_the_weights_fix(gpt2_dir, corpus, tmp_path, capsys, flags,
                                               message):
    args = ["train", "--init-from", str(gpt2_dir), "--data", str(corpus), "--out",
            str(tmp_path / "run"), "--quiet", *flags]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_weights_that_cannot_be_read_are_one_line_naming_the_flag(gpt2_dir, corpus, tmp_path,
                                                                  capsys):
    (gpt2_dir / "merges.txt").unlink()
    for source, problem in [(tmp_path / "nowhere", "is neither a file, a directory"),
                            (gpt2_dir, "no tokenizer beside")]:
        assert cli.main(["train", "--init-from", str(source), "--data", str(corpus), "--out",
                         str(tmp_path / "run"), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("tinygrad-lm train: error: --init-from: ") and problem in err
        assert err.count("\n") == 1 and not (tmp_path / "run").exists()


def test_crop_block_size_keeps_the_logits_of_short_sequences():
    model = GPT(GPTConfig(block_size=12, vocab_size=11, n_layer=2, n_head=2, n_embd=8))
    ids = Tensor(np.arange(8).reshape(1, 8) % 11)
    before = model(ids)[0].numpy()
    model.crop_block_size(8)
    assert model.config.block_size == 8 and model.transformer.wpe.weight.shape == (8, 8)
    np.testing.assert_allclose(model(ids)[0].numpy(), before, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="exceeds block_size 8"):
        model(Tensor(np.zeros((1, 9), dtype=np.int64)))
    with pytest.raises(ValueError, match="between 1 and the model's 8"):
        model.crop_block_size(9)


def test_gpt2_tokenizer_round_trips_through_its_dict_and_prepares_data(gpt2_dir, tmp_path):
    tokenizer = GPT2Tokenizer.from_files(gpt2_dir / "vocab.json", gpt2_dir / "merges.txt")
    again = tokenizer_from_dict(tokenizer.to_dict())
    assert isinstance(again, GPT2Tokenizer)
    assert again.encode(TEXT) == tokenizer.encode(TEXT)
    dataset = prepare_dataset(TEXT, tmp_path / "data", tokenizer)
    ids = np.concatenate([dataset.train, dataset.val])
    assert ids.tolist() == tokenizer.encode(TEXT)
    assert isinstance(dataset.tokenizer, GPT2Tokenizer)
