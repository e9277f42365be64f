"""GPT-2 weights in Hugging Face's layout: `GPT.from_pretrained` reproduces GPT-2's logits
(against a NumPy GPT-2 and, with torch, a PyTorch GPT-2 with Conv1D layers, both written
here), `save_pretrained` writes files those read back, and named models download offline."""
from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tinygrad_lm.models import GPT, GPTConfig
from tinygrad_lm.models import pretrained
from tinygrad_lm.models.pretrained import PretrainedError, download_pretrained
from tinygrad_lm.safetensors import load_file, save_file

SMALL = dict(vocab_size=23, n_positions=12, n_layer=2, n_head=2, n_embd=16)
IDS = np.array([[3, 7, 0, 22, 5, 5, 9, 1, 13], [1, 2, 3, 4, 5, 6, 7, 8, 9]])


def hf_config(activation: str = "gelu_new", **overrides) -> dict:
    return {"model_type": "gpt2", "activation_function": activation, "layer_norm_epsilon": 1e-5,
            "n_ctx": SMALL["n_positions"], **SMALL, **overrides}


def random_hf_state(config: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """GPT-2 tensors as Hugging Face stores them: ``transformer.`` names, Conv1D weights
    (in, out), and every LayerNorm and bias away from its initial value."""
    rng = np.random.default_rng(seed)
    C, V, T = config["n_embd"], config["vocab_size"], config["n_positions"]

    def normal(*shape: int, std: float = 0.3) -> np.ndarray:
        return (rng.standard_normal(shape) * std).astype(np.float32)

    state = {"transformer.wte.weight": normal(V, C), "transformer.wpe.weight": normal(T, C),
             "transformer.ln_f.weight": 1 + normal(C), "transformer.ln_f.bias": normal(C)}
    for i in range(config["n_layer"]):
        p = f"transformer.h.{i}."
        for ln in ("ln_1", "ln_2"):
            state[p + ln + ".weight"], state[p + ln + ".bias"] = 1 + normal(C), normal(C)
        for name, n_in, n_out in [("attn.c_attn", C, 3 * C), ("attn.c_proj", C, C),
                                  ("mlp.c_fc", C, 4 * C), ("mlp.c_proj", 4 * C, C)]:
            state[p + name + ".weight"], state[p + name + ".bias"] = normal(n_in, n_out), normal(n_out)
    return state


def hub_layout(state: dict[str, np.ndarray], n_positions: int) -> dict[str, np.ndarray]:
    """The layout of the hub's ``gpt2`` file: no ``transformer.`` prefix, the causal-mask
    buffers present, no ``lm_head.weight``."""
    out = {k.removeprefix("transformer."): v for k, v in state.items()}
    for key in [k for k in out if k.endswith("attn.c_attn.weight")]:
        layer = key.removesuffix("c_attn.weight")
        out[layer + "bias"] = np.tril(np.ones((1, 1, n_positions, n_positions), np.float32))
        out[layer + "masked_bias"] = np.array(-1e4, dtype=np.float32)
    return out


def write_hf_dir(directory: Path, state: dict[str, np.ndarray], config: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    save_file(state, directory / "model.safetensors", metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def numpy_gpt2_logits(state: dict[str, np.ndarray], config: dict, ids: np.ndarray) -> np.ndarray:
    """GPT-2's forward in float64 NumPy, on Hugging Face's tensors as stored."""
    w = {k: v.astype(np.float64) for k, v in state.items()}
    C, H = config["n_embd"], config["n_head"]

    def layer_norm(x, name):
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-5) * w[name + ".weight"] + w[name + ".bias"]

    def conv1d(x, name):  # Conv1D: x @ W + b with W stored (in, out)
        return x @ w[name + ".weight"] + w[name + ".bias"]

    def gelu(x):
        if config["activation_function"] == "gelu":
            from math import erf
            return 0.5 * x * (1 + np.vectorize(erf)(x / np.sqrt(2)))
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))

    B, T = ids.shape
    x = w["transformer.wte.weight"][ids] + w["transformer.wpe.weight"][:T]
    future = np.triu(np.ones((T, T), dtype=bool), k=1)
    for i in range(config["n_layer"]):
        p = f"transformer.h.{i}."
        q, k, v = np.split(conv1d(layer_norm(x, p + "ln_1"), p + "attn.c_attn"), 3, axis=-1)
        q, k, v = (t.reshape(B, T, H, C // H).transpose(0, 2, 1, 3) for t in (q, k, v))
        scores = np.where(future, -np.inf, q @ k.transpose(0, 1, 3, 2) / np.sqrt(C // H))
        att = np.exp(scores - scores.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        y = (att @ v).transpose(0, 2, 1, 3).reshape(B, T, C)
        x = x + conv1d(y, p + "attn.c_proj")
        h = gelu(conv1d(layer_norm(x, p + "ln_2"), p + "mlp.c_fc"))
        x = x + conv1d(h, p + "mlp.c_proj")
    return layer_norm(x, "transformer.ln_f") @ w["transformer.wte.weight"].T


def our_logits(model: GPT, ids: np.ndarray) -> np.ndarray:
    return model.eval()(ids)[0].numpy()


# ---------------------------------------------------------------- loading, NumPy only

@pytest.mark.parametrize("layout", ["transformers", "hub"])
@pytest.mark.parametrize("activation", ["gelu_new", "gelu"])
def test_from_pretrained_reproduces_gpt2_logits(tmp_path, layout, activation):
    config = hf_config(activation)
    state = random_hf_state(config)
    stored = dict(state, **{"lm_head.weight": state["transformer.wte.weight"]}) \
        if layout == "transformers" else hub_layout(state, config["n_positions"])
    model = GPT.from_pretrained(write_hf_dir(tmp_path / "gpt2", stored, config))
    assert model.config == GPTConfig(block_size=12, vocab_size=23, n_layer=2, n_head=2,
                                     n_embd=16, bias=True,
                                     gelu_approximate="tanh" if activation == "gelu_new" else "none")
    ours = our_logits(model, IDS)
    np.testing.assert_allclose(ours, numpy_gpt2_logits(state, config, IDS), atol=1e-4, rtol=0)


def test_from_pretrained_takes_the_file_and_converts_half_precision(tmp_path):
    config = hf_config()
    state = {k: v.astype(np.float16) for k, v in random_hf_state(config, seed=1).items()}
    directory = write_hf_dir(tmp_path / "half", state, config)
    model = GPT.from_pretrained(directory / "model.safetensors")
    assert model.lm_head.weight.dtype == np.float32
    np.testing.assert_allclose(our_logits(model, IDS), numpy_gpt2_logits(state, config, IDS),
                               atol=1e-4, rtol=0)


@pytest.mark.parametrize("change, message", [
    (lambda s, c: s.pop("transformer.h.1.mlp.c_fc.bias"), "missing: transformer.h.1.mlp.c_fc.bias"),
    (lambda s, c: s.update({"transformer.h.0.extra.weight": np.ones(2, np.float32)}),
     "unexpected: transformer.h.0.extra.weight"),
    (lambda s, c: s.update({"transformer.h.0.mlp.c_fc.weight":
                            s["transformer.h.0.mlp.c_fc.weight"].T.copy()}),
     r"mis-shaped: transformer.h.0.mlp.c_fc.weight \(16, 64\) \(expected \(64, 16\)\)"),
    (lambda s, c: s.update({"lm_head.weight": s["transformer.wte.weight"] + 1}),
     "lm_head.weight differs"),
    (lambda s, c: c.update(activation_function="relu"), "activation_function 'relu'"),
    (lambda s, c: c.update(layer_norm_epsilon=1e-6), "layer_norm_epsilon"),
    (lambda s, c: c.update(n_inner=32), "n_inner"),
    (lambda s, c: c.update(scale_attn_by_inverse_layer_idx=True), "scaled"),
    (lambda s, c: c.update(model_type="llama"), "model_type 'llama'"),
    (lambda s, c: c.pop("n_positions"), "missing n_positions"),
    (lambda s, c: c.update(n_head=3), "multiple of n_head"),
])
def test_from_pretrained_refuses_what_does_not_fit(tmp_path, change, message):
    config, state = hf_config(), random_hf_state(hf_config())
    change(state, config)
    directory = write_hf_dir(tmp_path / "m", state, config)
    with pytest.raises(PretrainedError, match=message) as info:
        GPT.from_pretrained(directory)
    assert str(directory) in str(info.value)


def test_from_pretrained_path_errors(tmp_path):
    with pytest.raises(PretrainedError, match="neither a file, a directory nor a model name"):
        GPT.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PretrainedError, match="model.safetensors is missing"):
        GPT.from_pretrained(tmp_path / "empty")
    save_file(random_hf_state(hf_config()), tmp_path / "lonely" / "model.safetensors")
    with pytest.raises(PretrainedError, match="config.json is missing"):
        GPT.from_pretrained(tmp_path / "lonely")
    (tmp_path / "lonely" / "config.json").write_text("[1, 2]")
    with pytest.raises(PretrainedError, match="config.json: not a JSON object"):
        GPT.from_pretrained(tmp_path / "lonely")
    (tmp_path / "lonely" / "config.json").write_text("{n_layer: 2")
    with pytest.raises(PretrainedError, match="config.json: not valid JSON"):
        GPT.from_pretrained(tmp_path / "lonely")


# ---------------------------------------------------------------- export

@pytest.mark.parametrize("overrides", [{}, {"bias": False}, {"gelu_approximate": "tanh"}])
def test_save_pretrained_round_trip_gives_identical_logits(tmp_path, overrides):
    model = GPT(GPTConfig(block_size=12, vocab_size=23, n_layer=2, n_head=2, n_embd=16,
                          dropout=0.1, **overrides))
    model.save_pretrained(tmp_path / "export")
    loaded = GPT.from_pretrained(tmp_path / "export")
    np.testing.assert_array_equal(our_logits(loaded, IDS), our_logits(model, IDS))
    assert loaded.config.gelu_approximate == model.config.gelu_approximate
    stored = load_file(tmp_path / "export" / "model.safetensors")
    assert "lm_head.weight" not in stored  # tied, as Hugging Face writes it
    assert stored["transformer.h.0.mlp.c_fc.weight"].shape == (16, 64)  # Conv1D (in, out)
    config = json.loads((tmp_path / "export" / "config.json").read_text())
    assert config["n_positions"] == 12 and config["resid_pdrop"] == 0.1
    # the NumPy GPT-2 reads the exported files as GPT-2's own
    np.testing.assert_allclose(numpy_gpt2_logits(stored, config, IDS), our_logits(model, IDS),
                               atol=1e-4, rtol=0)


@pytest.mark.parametrize("option,shown", [
    (dict(pos_emb="rope"), "pos_emb='rope'"), (dict(norm="rmsnorm"), "norm='rmsnorm'"),
    (dict(mlp="swiglu"), "mlp='swiglu'"), (dict(n_kv_head=1), "n_kv_head=1"),
    (dict(pos_emb="rope", mlp="swiglu"), "pos_emb='rope', mlp='swiglu'")])
def test_save_pretrained_refuses_a_config_gpt2_cannot_express(tmp_path, option, shown):
    model = GPT(GPTConfig(block_size=8, vocab_size=5, n_layer=1, n_head=2, n_embd=4, **option))
    with pytest.raises(PretrainedError, match=f"cannot express this model \\({shown}\\)"):
        model.save_pretrained(tmp_path / "x")
    assert not (tmp_path / "x" / "model.safetensors").exists()


def test_save_pretrained_takes_n_kv_head_equal_to_n_head(tmp_path):
    model = GPT(GPTConfig(block_size=8, vocab_size=5, n_layer=1, n_head=2, n_embd=4, n_kv_head=2))
    loaded = GPT.from_pretrained(model.save_pretrained(tmp_path / "x"))
    for name, array in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[name], array, err_msg=name)


# ---------------------------------------------------------------- named models, offline

class FakeResponse(io.BytesIO):
    def __init__(self, data: bytes, length: int | None = None) -> None:
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data) if length is None else length)}


class FakeHub:
    """An opener serving files from a dict, recording the URLs asked for."""

    def __init__(self, files: dict[str, bytes], short_by: int = 0) -> None:
        self.files, self.short_by, self.urls = files, short_by, []

    def __call__(self, url: str, timeout: float) -> FakeResponse:
        self.urls.append(url)
        name = url.rsplit("/", 1)[1]
        data = self.files[name]
        return FakeResponse(data[:len(data) - self.short_by], len(data))


def hub_files(tmp_path: Path) -> dict[str, bytes]:
    config = hf_config()
    directory = write_hf_dir(tmp_path / "source", hub_layout(random_hf_state(config), 12), config)
    return {"config.json": (directory / "config.json").read_bytes(),
            "model.safetensors": (directory / "model.safetensors").read_bytes(),
            "vocab.json": b"{}", "merges.txt": b"#version: 0.2\n"}


def test_download_fetches_each_file_once_into_the_cache(tmp_path):
    files = hub_files(tmp_path)
    hub = FakeHub(files)
    directory = download_pretrained("gpt2-medium", cache=tmp_path / "cache", opener=hub)
    assert directory == tmp_path / "cache"
    assert hub.urls == [f"https://huggingface.co/openai-community/gpt2-medium/resolve/main/{f}"
                        for f in ("config.json", "model.safetensors", "vocab.json", "merges.txt")]
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == files
    download_pretrained("gpt2-medium", cache=tmp_path / "cache", opener=hub)
    assert len(hub.urls) == 4  # everything was cached


def test_a_short_download_is_an_error_and_leaves_nothing(tmp_path):
    with pytest.raises(PretrainedError, match="closed after"):
        download_pretrained("gpt2", cache=tmp_path / "c", opener=FakeHub(hub_files(tmp_path), 3))
    assert list((tmp_path / "c").iterdir()) == []


def test_from_pretrained_by_name_uses_the_cache_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAD_LM_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # no local "gpt2" directory shadows the name
    hub = FakeHub(hub_files(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", hub)
    model = GPT.from_pretrained("gpt2")
    assert (tmp_path / "cache" / "gpt2" / "model.safetensors").is_file() and len(hub.urls) == 4
    config = hf_config()
    expected = numpy_gpt2_logits(random_hf_state(config), config, IDS)
    np.testing.assert_allclose(our_logits(model, IDS), expected, atol=1e-4, rtol=0)


def test_offline_download_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    from tinygrad_lm import cli

    monkeypatch.setenv("TINYGRAD_LM_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)

    def offline(url: str, timeout: float) -> FakeResponse:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(PretrainedError) as info:
        GPT.from_pretrained("gpt2")
    message = str(info.value)
    assert "\n" not in message and "could not download" in message
    assert str(tmp_path / "cache" / "gpt2") in message and "name resolution" in message
    assert not any((tmp_path / "cache" / "gpt2").iterdir())
    assert cli.main(["sample", "--init-from", "gpt2"]) == 2
    assert capsys.readouterr().err == f"tinygrad-lm sample: error: {message}\n"


# ---------------------------------------------------------------- PyTorch GPT-2

def torch_gpt2(config: dict):
    """A small GPT-2 in PyTorch with Hugging Face's module names and Conv1D layers."""
    torch = pytest.importorskip("torch")
    nn, F = torch.nn, torch.nn.functional

    class Conv1D(nn.Module):  # GPT-2's linear layer: weight stored (in, out)
        def __init__(self, n_in: int, n_out: int) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.randn(n_in, n_out) * 0.3)
            self.bias = nn.Parameter(torch.randn(n_out) * 0.3)

        def forward(self, x):
            return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight) \
                .reshape(*x.shape[:-1], -1)

    C, H = config["n_embd"], config["n_head"]

    def gelu(x):
        if config["activation_function"] == "gelu":
            return F.gelu(x)
        return 0.5 * x * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (x + 0.044715 * x ** 3)))

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(C, eps=1e-5), nn.LayerNorm(C, eps=1e-5)
            self.attn = nn.Module()
            self.attn.c_attn, self.attn.c_proj = Conv1D(C, 3 * C), Conv1D(C, C)
            self.mlp = nn.Module()
            self.mlp.c_fc, self.mlp.c_proj = Conv1D(C, 4 * C), Conv1D(4 * C, C)

        def forward(self, x):
            B, T, _ = x.shape
            q, k, v = self.attn.c_attn(self.ln_1(x)).split(C, dim=2)
            q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
            scores = q @ k.transpose(-2, -1) / (C // H) ** 0.5
            mask = torch.ones(T, T, dtype=torch.bool).triu(1)
            y = scores.masked_fill(mask, float("-inf")).softmax(-1) @ v
            x = x + self.attn.c_proj(y.transpose(1, 2).reshape(B, T, C))
            return x + self.mlp.c_proj(gelu(self.mlp.c_fc(self.ln_2(x))))

    class GPT2(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = nn.Module()
            self.transformer.wte = nn.Embedding(config["vocab_size"], C)
            self.transformer.wpe = nn.Embedding(config["n_positions"], C)
            self.transformer.h = nn.ModuleList([Block() for _ in range(config["n_layer"])])
            self.transformer.ln_f = nn.LayerNorm(C, eps=1e-5)

        def forward(self, ids):
            t = self.transformer
            x = t.wte(ids) + t.wpe(torch.arange(ids.shape[1]))
            for block in t.h:
                x = block(x)
            return t.ln_f(x) @ t.wte.weight.T  # the tied head

    return GPT2()


def test_torch_gpt2_weights_load_and_give_the_same_logits(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    config = hf_config()
    reference = torch_gpt2(config)
    with torch.no_grad():  # move LayerNorms off ones and zeros so a swap would show
        for name, p in reference.named_parameters():
            if "ln" in name:
                p.add_(torch.randn_like(p) * 0.3)
    state = {k: v.detach().numpy() for k, v in reference.state_dict().items()}
    model = GPT.from_pretrained(write_hf_dir(tmp_path / "m", state, config))
    with torch.no_grad():
        expected = reference(torch.from_numpy(IDS)).numpy()
    diff = np.abs(our_logits(model, IDS) - expected).max()
    assert diff < 1e-4, diff


@pytest.mark.parametrize("gelu_approximate", ["none", "tanh"])
def test_exported_weights_load_into_torch_gpt2_with_the_same_logits(tmp_path, gelu_approximate):
    torch = pytest.importorskip("torch")
    model = GPT(GPTConfig(block_size=12, vocab_size=23, n_layer=2, n_head=2, n_embd=16,
                          bias=False, gelu_approximate=gelu_approximate))
    model.save_pretrained(tmp_path / "export")
    config = json.loads((tmp_path / "export" / "config.json").read_text())
    reference = torch_gpt2(config)
    stored = load_file(tmp_path / "export" / "model.safetensors")
    reference.load_state_dict({k: torch.from_numpy(v) for k, v in stored.items()}, strict=True)
    with torch.no_grad():
        expected = reference(torch.from_numpy(IDS)).numpy()
    diff = np.abs(our_logits(model, IDS) - expected).max()
    assert diff < 1e-4, diff


# ---------------------------------------------------------------- command line

def test_export_then_sample_from_the_export_gives_the_run_s_text(tmp_path, capsys):
    from tinygrad_lm import cli

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("To be, or not to be, that is the question.\n" * 30, encoding="utf-8")
    run = tmp_path / "run"
    assert cli.main(["train", "--data", str(corpus), "--out", str(run), "--preset", "tiny",
                     "--max-iters", "2", "--eval-iters", "1", "--sample-tokens", "0",
                     "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["export", "--out", str(run), "--format", "safetensors"]) == 0
    assert capsys.readouterr().out == f"{run / 'safetensors'}\n"
    assert sorted(p.name for p in (run / "safetensors").iterdir()) == \
        ["config.json", "model.safetensors", "tokenizer.tlm"]
    args = ["--prompt", "To be", "--max-new-tokens", "30", "--seed", "4"]
    assert cli.main(["sample", "--out", str(run), *args]) == 0
    from_run = capsys.readouterr().out
    assert cli.main(["sample", "--init-from", str(run / "safetensors"), *args]) == 0
    assert capsys.readouterr().out == from_run and from_run.startswith("To be")


def test_sample_from_gpt2_weights_uses_gpt2_s_tokenizer(tmp_path, capsys):
    from test_gpt2_tokenizer import write_tokenizer
    from tinygrad_lm import cli

    config = hf_config(vocab_size=257)  # the 256 byte tokens and <|endoftext|>
    directory = write_hf_dir(tmp_path / "gpt2", random_hf_state(config), config)
    write_tokenizer(directory, merges=[])
    assert cli.main(["sample", "--init-from", str(directory), "--prompt", "Hi there",
                     "--max-new-tokens", "3", "--temperature", "0"]) == 0
    assert capsys.readouterr().out.startswith("Hi there")
    (directory / "vocab.json").unlink()
    assert cli.main(["sample", "--init-from", str(directory)]) == 2
    assert "no tokenizer beside" in capsys.readouterr().err


def test_export_without_a_run_is_one_line(tmp_path, capsys):
    from tinygrad_lm import cli

    assert cli.main(["export", "--out", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no checkpoint" in err
