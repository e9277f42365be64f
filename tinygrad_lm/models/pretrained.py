"""GPT-2 weights in Hugging Face's layout, in and out: `load_pretrained`, `save_pretrained`.

A Hugging Face GPT-2 directory holds ``config.json`` (sizes and the activation) and
``model.safetensors`` (the weights). Its names are ours (nanoGPT kept them), with two
differences: GPT-2's ``Conv1D`` layers store their weight as (in, out), the transpose of
our ``Linear``'s (out, in), and the hub's files may drop the ``transformer.`` prefix.
The files also carry ``attn.bias`` / ``attn.masked_bias`` (the causal mask as a buffer,
which we compute instead) and may omit ``lm_head.weight`` (tied to ``wte``).
"""
from __future__ import annotations

import dataclasses
import http.client
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..data.corpora import atomic_write_bytes, cache_dir
from ..data.gpt2_tokenizer import GPT2Tokenizer
from ..data.tokenizers import Tokenizer, tokenizer_from_dict
from ..safetensors import load_file, save_file
from ..serialization import load, save
from .gpt import GPT, GPTConfig

WEIGHTS_FILE, CONFIG_FILE = "model.safetensors", "config.json"
GPT2_TOKENIZER_FILES = ("vocab.json", "merges.txt")
RUN_TOKENIZER_FILE = "tokenizer.tlm"  # a run's own (char or BPE) tokenizer, from export
MODEL_NAMES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
HUB_URL = "https://huggingface.co/openai-community/{name}/resolve/main/{file}"
# a named model's files: the weights, and GPT-2's tokenizer for `sample --init-from`
HUB_FILES = (CONFIG_FILE, WEIGHTS_FILE, *GPT2_TOKENIZER_FILES)
# the layers GPT-2 writes as Conv1D, with weights (in, out)
CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight",
                  "mlp.c_proj.weight")
MASK_BUFFERS = (".attn.bias", ".attn.masked_bias")
EMBEDDINGS = ("transformer.wte.weight", "transformer.wpe.weight")
# GPT-2's activation_function values and our GELU for each
ACTIVATIONS = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "none"}
LAYER_NORM_EPS = 1e-5  # what our LayerNorms use, and every released GPT-2
# GPTConfig fields that GPT-2's config.json can express; any other must keep its default
GPT2_FIELDS = ("block_size", "vocab_size", "n_layer", "n_head", "n_embd", "dropout", "bias",
               "gelu_approximate")
_DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 1 << 20


class PretrainedError(ValueError):
    """Pretrained weights that cannot be found, downloaded or mapped onto the GPT."""


def load_pretrained(path: str | os.PathLike[str], dropout: float = 0.0) -> GPT:
    """A GPT holding the weights at ``path``: a directory with ``model.safetensors`` and
    ``config.json``, that ``model.safetensors`` itself, or a model name in `MODEL_NAMES`
    (downloaded once into the cache; a local path of the same name wins). ``dropout`` is
    the model's (0 by default, as nanoGPT; GPT-2 trained with 0.1)."""
    weights = resolve_weights(path)
    config_path = weights.with_name(CONFIG_FILE)
    if not config_path.is_file():
        raise PretrainedError(f"{config_path} is missing: it must sit beside {weights.name}")
    try:
        hf_config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PretrainedError(f"{config_path}: not valid JSON ({exc})") from None
    if not isinstance(hf_config, dict):
        raise PretrainedError(f"{config_path}: not a JSON object")
    config = config_from_hf(hf_config, config_path, dropout)
    model = GPT(config)
    model.load_state_dict(state_from_hf(load_file(weights), model, weights))
    return model


def load_pretrained_with_tokenizer(path: str | os.PathLike[str], dropout: float = 0.0
                                   ) -> tuple[GPT, Tokenizer]:
    """`load_pretrained` and the tokenizer beside the weights (`load_tokenizer_beside`)."""
    weights = resolve_weights(path)
    tokenizer = load_tokenizer_beside(weights)
    return load_pretrained(weights, dropout), tokenizer


def load_tokenizer_beside(weights: Path) -> Tokenizer:
    """The tokenizer in the directory of ``weights``: GPT-2's (``vocab.json`` and
    ``merges.txt``) or a run's (``tokenizer.tlm``, written by `save_tokenizer`)."""
    vocab, merges = (weights.with_name(name) for name in GPT2_TOKENIZER_FILES)
    if vocab.is_file() and merges.is_file():
        return GPT2Tokenizer.from_files(vocab, merges)
    if weights.with_name(RUN_TOKENIZER_FILE).is_file():
        return tokenizer_from_dict(load(weights.with_name(RUN_TOKENIZER_FILE)))
    raise PretrainedError(f"no tokenizer beside {weights}: it needs vocab.json and merges.txt "
                          f"(GPT-2's) or {RUN_TOKENIZER_FILE} (tinygrad-lm export)")


def save_tokenizer(tokenizer: Tokenizer, directory: str | os.PathLike[str]) -> None:
    """Write ``tokenizer`` where `load_tokenizer_beside` finds it: GPT-2's as its own two
    files, which other libraries read too; any other as ``tokenizer.tlm``."""
    if isinstance(tokenizer, GPT2Tokenizer):
        tokenizer.write_files(directory)
    else:
        save(tokenizer.to_dict(), Path(directory) / RUN_TOKENIZER_FILE)


def resolve_weights(path: str | os.PathLike[str]) -> Path:
    """The ``model.safetensors`` that ``path`` names (see `load_pretrained`)."""
    local = Path(path).expanduser()
    if local.is_dir():
        local = local / WEIGHTS_FILE
        if not local.is_file():
            raise PretrainedError(f"{local} is missing: a GPT-2 directory holds {WEIGHTS_FILE} "
                                  f"and {CONFIG_FILE}")
        return local
    if local.is_file():
        return local
    if str(path) in MODEL_NAMES:
        return download_pretrained(str(path)) / WEIGHTS_FILE
    raise PretrainedError(f"{str(path)!r} is neither a file, a directory nor a model name "
                          f"({', '.join(MODEL_NAMES)})")


def download_pretrained(name: str, cache: str | os.PathLike[str] | None = None,
                        opener: Callable[..., Any] | None = None) -> Path:
    """The directory of model ``name``'s files, downloading those not cached yet.

    The cache is ``cache`` or `cache_dir()`/name (``$TINYGRAD_LM_CACHE`` moves it). Each
    file streams into a temporary file that is renamed into place only when complete (its
    length checked against Content-Length), so a broken download is never mistaken for a
    cached file. ``opener`` replaces ``urllib.request.urlopen`` (tests stay offline).
    """
    opener = opener or urllib.request.urlopen
    directory = Path(cache).expanduser() if cache is not None else cache_dir() / name
    for file in HUB_FILES:
        target = directory / file
        if target.is_file():
            continue
        url = HUB_URL.format(name=name, file=file)
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{file}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f, opener(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
                print(f"downloading {url} to {target}", file=sys.stderr)
                while chunk := response.read(_CHUNK):
                    f.write(chunk)
                expected = response.headers.get("Content-Length")
                if expected is not None and int(expected) != f.tell():
                    raise OSError(f"the connection closed after {f.tell()} of {expected} bytes")
            os.replace(tmp, target)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise PretrainedError(
                f"could not download {url} ({exc}); without network access, copy {', '.join(HUB_FILES)} of "
                f"{name} into {directory} or pass a local directory") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return directory


def config_from_hf(hf: dict[str, Any], where: str | os.PathLike[str] = "config.json",
                   dropout: float = 0.0) -> GPTConfig:
    """Our GPTConfig for GPT-2's ``config.json``; refuses settings our GPT computes otherwise."""
    def fail(problem: str) -> PretrainedError:
        return PretrainedError(f"{where}: {problem}")

    if hf.get("model_type", "gpt2") != "gpt2":
        raise fail(f"model_type {hf['model_type']!r} is not gpt2")
    missing = [k for k in ("vocab_size", "n_positions", "n_layer", "n_head", "n_embd")
               if k not in hf]
    if missing:
        raise fail(f"missing {', '.join(missing)}")
    activation = hf.get("activation_function", "gelu_new")
    if activation not in ACTIVATIONS:
        raise fail(f"activation_function {activation!r} is not one of {', '.join(ACTIVATIONS)}")
    if hf.get("layer_norm_epsilon", LAYER_NORM_EPS) != LAYER_NORM_EPS:
        raise fail(f"layer_norm_epsilon {hf['layer_norm_epsilon']} is not {LAYER_NORM_EPS}")
    if hf.get("n_inner") not in (None, 4 * hf["n_embd"]):
        raise fail(f"n_inner {hf['n_inner']} is not 4 * n_embd")
    if hf.get("scale_attn_by_inverse_layer_idx") or not hf.get("scale_attn_weights", True):
        raise fail("attention must be scaled by 1/sqrt(head size) only")
    try:
        return GPTConfig(block_size=hf["n_positions"], vocab_size=hf["vocab_size"],
                         n_layer=hf["n_layer"], n_head=hf["n_head"], n_embd=hf["n_embd"],
                         dropout=dropout, bias=True, gelu_approximate=ACTIVATIONS[activation])
    except (TypeError, ValueError) as exc:
        raise fail(str(exc)) from None


def state_from_hf(tensors: dict[str, np.ndarray], model: GPT,
                  where: str | os.PathLike[str] = WEIGHTS_FILE) -> dict[str, np.ndarray]:
    """GPT-2's tensors renamed and transposed into ``model``'s state_dict, checked whole."""
    state = {}
    for key, array in tensors.items():
        name = key if key.startswith(("transformer.", "lm_head.")) else f"transformer.{key}"
        if name.endswith(MASK_BUFFERS):
            continue
        state[name] = array.T if name.endswith(CONV1D_WEIGHTS) else array
    wte = state.get("transformer.wte.weight")
    head = state.setdefault("lm_head.weight", wte)  # tied: one matrix under two names
    if head is not None and wte is not None and not np.array_equal(head, wte):
        raise PretrainedError(f"{where}: lm_head.weight differs from transformer.wte.weight; "
                              "this GPT ties them")
    own = model.state_dict()
    found = {"missing": [k for k in own if k not in state],
             "unexpected": [k for k in state if k not in own],
             "mis-shaped": [f"{k} {state[k].shape} (expected {own[k].shape})" for k in own
                            if k in state and state[k].shape != own[k].shape]}
    problems = [f"{kind}: {', '.join(keys)}" for kind, keys in found.items() if keys]
    if problems:
        raise PretrainedError(f"{where}: the tensors do not fit GPT-2 of this config: "
                              + "; ".join(problems))
    return state


def config_to_hf(config: GPTConfig) -> dict[str, Any]:
    """GPT-2's ``config.json`` for ``config``; refuses a config GPT-2 cannot express."""
    other = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
             if f.name not in GPT2_FIELDS and getattr(config, f.name) != f.default}
    if other.get("n_kv_head") == config.n_head:  # as many key/value heads as GPT-2's
        del other["n_kv_head"]
    if other:
        settings = ", ".join(f"{name}={value!r}" for name, value in other.items())
        raise PretrainedError(f"GPT-2's format cannot express this model ({settings}): GPT-2 "
                              "has learned position embeddings, LayerNorm, the 4x GELU MLP and "
                              "a key/value head per query head")
    activation = "gelu_new" if config.gelu_approximate == "tanh" else "gelu"
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
            "vocab_size": config.vocab_size, "n_positions": config.block_size,
            "n_ctx": config.block_size, "n_embd": config.n_embd, "n_layer": config.n_layer,
            "n_head": config.n_head, "n_inner": None, "activation_function": activation,
            "layer_norm_epsilon": LAYER_NORM_EPS, "resid_pdrop": config.dropout,
            "embd_pdrop": config.dropout, "attn_pdrop": config.dropout,
            "tie_word_embeddings": True}


def state_to_hf(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Our state_dict in GPT-2's layout: Conv1D weights as (in, out), the tied head left
    out, and zero biases where a bias-free model has none (the same function)."""
    out = {}
    for name, array in state.items():
        if name == "lm_head.weight":
            continue
        out[name] = np.ascontiguousarray(array.T) if name.endswith(CONV1D_WEIGHTS) else array
        bias = name.removesuffix("weight") + "bias"
        if name.endswith(".weight") and name not in EMBEDDINGS and bias not in state:
            out[bias] = np.zeros(array.shape[0], dtype=array.dtype)  # LayerNorm or Linear
    return out


def save_pretrained(model: GPT, directory: str | os.PathLike[str]) -> Path:
    """Write ``model`` as a Hugging Face GPT-2 directory (``model.safetensors``,
    ``config.json``), each file written atomically; returns the directory."""
    directory = Path(directory)
    hf_config = config_to_hf(model.config)
    save_file(state_to_hf(model.state_dict()), directory / WEIGHTS_FILE,
              metadata={"format": "pt"})  # Hugging Face's loader asks for "pt"
    atomic_write_bytes(directory / CONFIG_FILE, (json.dumps(hf_config, indent=2) + "\n").encode())
    return directory
