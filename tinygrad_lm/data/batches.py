"""Token ids on disk and random training batches drawn from them.

`prepare_dataset` tokenizes a corpus once and writes a data directory::

    train.bin  val.bin   raw token ids (uint16 when vocab_size <= 65536, else uint32)
    tokenizer.json       the tokenizer (`Tokenizer.to_dict`, arrays as lists)
    meta.json            corpus hash, tokenizer settings, dtype and token counts

The ids are split 90/10 (by default) into train and val, after encoding the whole text.
Calling it again with the same text and tokenizer settings reuses the directory: the key in
``meta.json`` is a hash of the corpus and the settings, and ``meta.json`` is written last,
so a directory whose preparation was interrupted is rebuilt, never half-used.

`Batcher` draws ``(x, y)`` batches of shape ``(batch_size, block_size)`` at random offsets,
``y`` being ``x`` shifted by one token, from a NumPy ``Generator`` it is given; its
`state_dict` captures that generator so a resumed run draws the same batches.
`TokenDataset.batch_at` instead seeds a fresh generator from a key such as ``(seed, step)``.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .corpora import DataError, atomic_write_bytes, cache_dir, load_corpus, sha256_hex
from .tokenizers import TOKENIZER_KINDS, Tokenizer, make_tokenizer, tokenizer_from_dict

FORMAT_VERSION = 1
DEFAULT_VAL_FRACTION = 0.1
SPLITS = ("train", "val")
META_FILE = "meta.json"
TOKENIZER_FILE = "tokenizer.json"


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id below `vocab_size`."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


class Batcher:
    """Random ``(x, y)`` int64 batches of shape ``(batch_size, block_size)`` from 1-D ids.

    Row i of ``x`` is ``tokens[s_i : s_i + block_size]`` and of ``y`` the same window one
    token later, with the offsets ``s_i`` drawn uniformly from `rng`.
    """

    def __init__(self, tokens: np.ndarray, batch_size: int, block_size: int,
                 rng: np.random.Generator, name: str = "tokens"):
        if not isinstance(rng, np.random.Generator):
            raise DataError(f"Batcher needs a numpy.random.Generator, got {type(rng).__name__}")
        for label, value in (("batch_size", batch_size), ("block_size", block_size)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise DataError(f"Batcher: {label} must be a positive integer, got {value!r}")
        if tokens.ndim != 1:
            raise DataError(f"Batcher: tokens must be 1-D, got shape {tokens.shape}")
        if len(tokens) < block_size + 1:
            raise DataError(f"the {name} split has {len(tokens)} tokens, fewer than "
                            f"block_size + 1 = {block_size + 1}; use a smaller block size or "
                            "a longer corpus")
        self.tokens, self.name = tokens, name
        self.batch_size, self.block_size = int(batch_size), int(block_size)
        self.rng = rng
        self._window = np.arange(self.block_size + 1)

    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """Draw one batch: ``x`` and ``y``, both int64 of shape (batch_size, block_size)."""
        starts = self.rng.integers(0, len(self.tokens) - self.block_size, size=self.batch_size)
        rows = self.tokens[starts[:, None] + self._window].astype(np.int64)  # (B, T + 1)
        return rows[:, :-1], rows[:, 1:]

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        return self.next_batch()

    def state_dict(self) -> dict[str, Any]:
        """The generator's state (as a JSON string, since it holds 128-bit integers) and the
        batch shape; only strings and ints, so a checkpoint can store it."""
        state = json.dumps(self.rng.bit_generator.state,
                           default=lambda a: a.tolist() if isinstance(a, np.ndarray) else a)
        return {"rng_state": state, "batch_size": self.batch_size, "block_size": self.block_size}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the generator so the next batches are those that followed `state_dict`."""
        shape = (int(state["batch_size"]), int(state["block_size"]))
        if shape != (self.batch_size, self.block_size):
            raise DataError(f"Batcher state is for batches of {shape}, but this batcher draws "
                            f"{(self.batch_size, self.block_size)}")
        rng_state = json.loads(state["rng_state"])
        if rng_state.get("bit_generator") != type(self.rng.bit_generator).__name__:
            raise DataError(f"Batcher state holds a {rng_state.get('bit_generator')} generator, "
                            f"this batcher uses {type(self.rng.bit_generator).__name__}")
        self.rng.bit_generator.state = rng_state


class TokenDataset:
    """A prepared data directory: the tokenizer and the memory-mapped train/val ids."""

    def __init__(self, directory: Path, tokenizer: Tokenizer, splits: dict[str, np.ndarray],
                 meta: dict[str, Any]):
        self.directory, self.tokenizer, self.splits, self.meta = directory, tokenizer, splits, meta

    @property
    def train(self) -> np.ndarray:
        """The training ids (a read-only memmap)."""
        return self.splits["train"]

    @property
    def val(self) -> np.ndarray:
        """The validation ids (a read-only memmap; empty when val_fraction was 0)."""
        return self.splits["val"]

    @classmethod
    def open(cls, directory: str | os.PathLike[str]) -> TokenDataset:
        """Open a directory written by `prepare_dataset`, checking that its files agree."""
        directory = Path(directory)
        meta = _read_json(directory / META_FILE)
        if meta.get("format_version") != FORMAT_VERSION:
            raise DataError(f"{directory / META_FILE} has format version "
                            f"{meta.get('format_version')!r}, expected {FORMAT_VERSION}")
        tokenizer = tokenizer_from_dict(_read_json(directory / TOKENIZER_FILE))
        if tokenizer.vocab_size != meta["vocab_size"]:
            raise DataError(f"{directory}: tokenizer has {tokenizer.vocab_size} tokens, "
                            f"meta.json says {meta['vocab_size']}")
        dtype = np.dtype(meta["dtype"])
        splits = {s: _open_tokens(directory / f"{s}.bin", dtype, meta["tokens"][s])
                  for s in SPLITS}
        return cls(directory, tokenizer, splits, meta)

    def batcher(self, split: str, batch_size: int, block_size: int,
                rng: np.random.Generator) -> Batcher:
        """A `Batcher` over the "train" or "val" split."""
        if split not in self.splits:
            raise DataError(f"unknown split {split!r}; choose one of {SPLITS}")
        return Batcher(self.splits[split], batch_size, block_size, rng, name=split)

    def batch_at(self, split: str, batch_size: int, block_size: int,
                 key: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """The batch drawn by a generator seeded with ``key`` (e.g. ``(seed, step)``): the
        batch of a given step is the same whatever ran before, so resumed runs repeat it."""
        rng = np.random.default_rng([int(k) for k in key])
        return self.batcher(split, batch_size, block_size, rng).next_batch()

    def __repr__(self) -> str:
        return (f"TokenDataset({str(self.directory)!r}, {self.tokenizer!r}, "
                f"train={len(self.train)}, val={len(self.val)})")


def dataset_key(text: str, tokenizer: str | Tokenizer, vocab_size: int | None,
                val_fraction: float) -> tuple[str, str]:
    """The corpus SHA-256 and a hash of it with every setting that shapes the token files
    (for a given tokenizer, such as GPT-2's, a hash of the whole tokenizer)."""
    corpus_hash = sha256_hex(text.encode("utf-8", "surrogatepass"))
    if isinstance(tokenizer, Tokenizer):
        tokenizer = f"{tokenizer.kind}:{sha256_hex(_tokenizer_json(tokenizer).encode())}"
    settings = json.dumps({"format_version": FORMAT_VERSION, "corpus_sha256": corpus_hash,
                           "tokenizer": tokenizer, "vocab_size": vocab_size,
                           "val_fraction": val_fraction}, sort_keys=True)
    return corpus_hash, sha256_hex(settings.encode())


def _tokenizer_json(tokenizer: Tokenizer) -> str:
    """`Tokenizer.to_dict` as JSON text, arrays as lists."""
    return json.dumps({k: v.tolist() if isinstance(v, np.ndarray) else v
                       for k, v in tokenizer.to_dict().items()}, sort_keys=True)


def prepare_dataset(text: str, data_dir: str | os.PathLike[str] | None = None,
                    tokenizer: str | Tokenizer = "char", vocab_size: int | None = None,
                    val_fraction: float = DEFAULT_VAL_FRACTION,
                    source: str | None = None) -> TokenDataset:
    """Tokenize `text` into `data_dir` (default: a directory in the cache named by the key),
    or reuse it when it already holds this text prepared with these settings.

    `tokenizer` is "char" or "bpe", learned from `text`, or a ready `Tokenizer` (such as
    GPT-2's, to fine-tune pretrained weights); `vocab_size` is the BPE target (ignored
    otherwise).
    `source` (e.g. the corpus spec) is recorded in meta.json for people reading it.
    """
    given = isinstance(tokenizer, Tokenizer)
    if not given and tokenizer not in TOKENIZER_KINDS:
        raise DataError(f"unknown tokenizer kind {tokenizer!r}; choose one of {TOKENIZER_KINDS}")
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    if not text:
        raise DataError("cannot prepare an empty corpus")
    if given or tokenizer == "char":
        vocab_size = None
    corpus_hash, key = dataset_key(text, tokenizer, vocab_size, val_fraction)
    directory = Path(data_dir) if data_dir is not None else cache_dir() / "datasets" / key[:16]
    existing = _reusable(directory, key)
    if existing is not None:
        return existing

    tok = tokenizer if given else make_tokenizer(tokenizer, text, vocab_size)
    ids = np.asarray(tok.encode(text), dtype=np.int64)
    n_val = int(round(len(ids) * val_fraction))
    parts = {"train": ids[:len(ids) - n_val], "val": ids[len(ids) - n_val:]}
    dtype = token_dtype(tok.vocab_size)
    directory.mkdir(parents=True, exist_ok=True)
    # Drop the old meta first: until the new one is written the directory counts as unprepared.
    (directory / META_FILE).unlink(missing_ok=True)
    for split, part in parts.items():
        atomic_write_bytes(directory / f"{split}.bin", part.astype(dtype).tobytes())
    atomic_write_bytes(directory / TOKENIZER_FILE, _tokenizer_json(tok).encode())
    meta = {"format_version": FORMAT_VERSION, "key": key, "corpus_sha256": corpus_hash,
            "source": source, "corpus_chars": len(text), "tokenizer": tok.kind,
            "requested_vocab_size": vocab_size, "vocab_size": tok.vocab_size,
            "val_fraction": val_fraction, "dtype": dtype.name,
            "tokens": {s: int(len(p)) for s, p in parts.items()}}
    atomic_write_bytes(directory / META_FILE, json.dumps(meta, indent=1).encode())
    return TokenDataset.open(directory)


def prepare_corpus(spec: str, data_dir: str | os.PathLike[str] | None = None,
                   tokenizer: str | Tokenizer = "char", vocab_size: int | None = None,
                   val_fraction: float = DEFAULT_VAL_FRACTION) -> TokenDataset:
    """`load_corpus(spec)` followed by `prepare_dataset`, recording `spec` as the source."""
    return prepare_dataset(load_corpus(spec), data_dir, tokenizer, vocab_size, val_fraction,
                           source=spec)


def _reusable(directory: Path, key: str) -> TokenDataset | None:
    """The dataset in `directory` if it was prepared with `key` and its files are intact."""
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        return None
    try:
        if _read_json(meta_path).get("key") != key:
            return None
        return TokenDataset.open(directory)
    except (DataError, KeyError, TypeError):
        return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataError(f"{path} is missing; prepare the data directory again") from exc
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path} does not hold a JSON object")
    return data


def _open_tokens(path: Path, dtype: np.dtype, count: int) -> np.ndarray:
    """Memory-map `count` ids of `dtype` from `path`, checking the file's size first."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DataError(f"cannot open token file {path}: {exc}") from exc
    if size != count * dtype.itemsize:
        raise DataError(f"token file {path} has {size} bytes, expected {count} {dtype.name} ids "
                        f"({count * dtype.itemsize} bytes); prepare the data directory again")
    if count == 0:
        return np.zeros(0, dtype=dtype)  # mmap cannot map an empty file
    return np.memmap(path, dtype=dtype, mode="r", shape=(count,))
