"""Tokenizers: characters, and byte-level BPE trained on the corpus.

Both turn a string into a 1-D ``int64`` NumPy array of token ids and back, report
`vocab_size`, and serialise to a dict of strings, numbers and arrays (`to_dict`) that a
checkpoint can hold; `tokenizer_from_dict` rebuilds either kind (and GPT-2's).

Byte-level BPE works on the UTF-8 bytes of the text, so every string is encodable. Training
starts from the 256 single-byte tokens and repeatedly merges the most frequent adjacent pair
of tokens into a new token; encoding replays those merges in the order they were learned.
Both loops are vectorised over the whole sequence: one merge step is a handful of NumPy
passes, not a Python loop over the text.
"""
from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..progress import format_duration
from .corpora import DataError

log = logging.getLogger(__name__)

TOKENIZER_KINDS = ("char", "bpe")
DEFAULT_BPE_VOCAB_SIZE = 512

# Above this many possible pairs (vocab_size ** 2) pair statistics use sorting instead of a
# dense table, whose memory and clearing cost would grow with the square of the vocabulary.
_DENSE_PAIR_LIMIT = 1 << 22
_REPORT_EVERY_S = 5.0  # BPE training says how far it is at most this often (logging, INFO)


class UnknownCharacterError(DataError):
    """Text holds characters outside a `CharTokenizer`'s vocabulary; `chars` lists them."""

    def __init__(self, chars: list[str], vocab_size: int):
        self.chars = chars
        shown = ", ".join(repr(c) for c in chars[:20])
        more = f" and {len(chars) - 20} more" if len(chars) > 20 else ""
        super().__init__(f"{len(chars)} character(s) not in the char tokenizer's vocabulary "
                         f"of {vocab_size}: {shown}{more}")


class Tokenizer(ABC):
    """The interface shared by every tokenizer: characters and BPE here, GPT-2's in
    ``gpt2_tokenizer.py``. Each kind registers itself by its ``kind`` name, which its
    `to_dict` records, so `tokenizer_from_dict` can rebuild it."""

    kind: str
    kinds: dict[str, type[Tokenizer]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Tokenizer.kinds[cls.kind] = cls

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of distinct token ids; ids are ``0 .. vocab_size - 1``."""

    @abstractmethod
    def encode(self, text: str) -> np.ndarray:
        """Token ids of `text` as a 1-D int64 array."""

    @abstractmethod
    def decode(self, ids: Any) -> str:
        """The text of a sequence of token ids (a list or a 1-D integer array)."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """A dict of strings, numbers and arrays that `tokenizer_from_dict` turns back."""

    @classmethod
    @abstractmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Tokenizer:
        """The tokenizer that `to_dict` described."""

    def _check_ids(self, ids: Any) -> np.ndarray:
        arr = np.asarray(ids)
        if arr.size == 0:
            return np.zeros(0, dtype=np.int64)
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise DataError(f"{type(self).__name__}.decode expects a 1-D sequence of integer "
                            f"ids, got shape {arr.shape} dtype {arr.dtype}")
        bad = (arr < 0) | (arr >= self.vocab_size)
        if bad.any():
            raise DataError(f"{type(self).__name__}.decode: ids outside 0..{self.vocab_size - 1}:"
                            f" {np.unique(arr[bad])[:10].tolist()}")
        return arr.astype(np.int64, copy=False)


def _codepoints(text: str) -> np.ndarray:
    # UTF-32 gives one fixed-width unit per character; surrogatepass keeps lone surrogates
    # (which Python strings may hold) instead of failing.
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


class CharTokenizer(Tokenizer):
    """One token per character; the vocabulary is the corpus's characters in sorted order."""

    kind = "char"

    def __init__(self, chars: str | Sequence[str]):
        codes = sorted({ord(c) for c in chars})
        if not codes:
            raise DataError("CharTokenizer needs at least one character")
        self._codes = np.array(codes, dtype=np.int64)
        # A dense code point -> id table, one slot past the largest code point as the "unknown"
        # sentinel, makes encoding a single gather.
        self._table = np.full(codes[-1] + 2, -1, dtype=np.int64)
        self._table[self._codes] = np.arange(len(codes))

    @classmethod
    def train(cls, text: str) -> CharTokenizer:
        """The tokenizer whose vocabulary is the set of characters of `text`."""
        if not text:
            raise DataError("cannot build a char tokenizer from empty text")
        return cls(np.unique(_codepoints(text)).astype("<u4").tobytes()
                   .decode("utf-32-le", "surrogatepass"))

    @property
    def vocab_size(self) -> int:
        return len(self._codes)

    @property
    def chars(self) -> str:
        """The vocabulary as one string, in id order."""
        return self._codes.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")

    def encode(self, text: str) -> np.ndarray:
        """Token ids of `text`; raises `UnknownCharacterError` listing unknown characters."""
        cps = _codepoints(text)
        ids = self._table[np.minimum(cps, len(self._table) - 1)]
        unknown = ids < 0
        if unknown.any():
            missing = np.unique(cps[unknown]).astype("<u4").tobytes()
            raise UnknownCharacterError(list(missing.decode("utf-32-le", "surrogatepass")),
                                        self.vocab_size)
        return ids

    def decode(self, ids: Any) -> str:
        return self._codes[self._check_ids(ids)].astype("<u4").tobytes() \
            .decode("utf-32-le", "surrogatepass")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "codepoints": self._codes.copy()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CharTokenizer:
        """Rebuild from `to_dict` output (arrays may have become lists, e.g. via JSON)."""
        _expect_kind(d, cls.kind)
        codes = np.asarray(d["codepoints"])
        if codes.ndim != 1 or codes.dtype.kind not in "iu" or codes.size == 0 or \
                codes.min() < 0 or codes.max() > 0x10FFFF:
            raise DataError("char tokenizer dict: 'codepoints' must be a non-empty 1-D array of "
                            "Unicode code points")
        return cls(codes.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass"))

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


def _pair_codes(seq: np.ndarray, base: int) -> np.ndarray:
    """Each adjacent pair (a, b) as the single integer a * base + b."""
    return seq[:-1].astype(np.int64) * base + seq[1:]


def _non_overlapping(pos: np.ndarray) -> np.ndarray:
    """From sorted match positions of a pair (x, x), keep those a left-to-right scan merges.

    In a run of the same token, "xxx" matches at 0 and 1, but merging at 0 consumes the
    token at 1; a scan keeps every other position of each run of consecutive positions.
    """
    n = len(pos)
    idx = np.arange(n)
    run_start = np.empty(n, dtype=bool)
    run_start[0] = True
    run_start[1:] = np.diff(pos) != 1
    first_of_run = np.maximum.accumulate(np.where(run_start, idx, 0))
    return pos[(idx - first_of_run) % 2 == 0]


def _apply_merge(seq: np.ndarray, pos: np.ndarray, same: bool, new_id: int) -> np.ndarray:
    """Replace the pairs starting at `pos` by `new_id`; `same` means the pair is (x, x)."""
    if same and len(pos) > 1:
        pos = _non_overlapping(pos)
    keep = np.ones(len(seq), dtype=bool)
    keep[pos + 1] = False
    out = seq.copy()
    out[pos] = new_id
    return out[keep]


def _most_frequent_pair(seq: np.ndarray, base: int) -> tuple[int, int]:
    """The most frequent adjacent pair code and its count; ties go to the smallest code.

    Counts every position, so "xxx" counts (x, x) twice.
    """
    codes = _pair_codes(seq, base)
    if base * base <= _DENSE_PAIR_LIMIT:
        counts = np.bincount(codes)
        best = int(counts.argmax())
        return best, int(counts[best])
    uniq, counts = np.unique(codes, return_counts=True)
    i = int(counts.argmax())
    return int(uniq[i]), int(counts[i])


class BPETokenizer(Tokenizer):
    """Byte-level byte-pair encoding: ids 0..255 are bytes, id 256 + k is merge k.

    `merges` is an ``(M, 2)`` integer array; row k holds the two ids that token 256 + k
    joins, each below 256 + k.
    """

    kind = "bpe"

    def __init__(self, merges: Any = ()):
        merges = np.asarray(merges, dtype=np.int64).reshape(-1, 2)
        limit = 256 + np.arange(len(merges))
        if len(merges) and ((merges < 0).any() or (merges >= limit[:, None]).any()):
            bad = int(np.flatnonzero(((merges < 0) | (merges >= limit[:, None])).any(1))[0])
            raise DataError(f"BPE merge {bad} joins {merges[bad].tolist()}, but merge k may "
                            f"only join ids below 256 + k")
        self.merges = merges
        base = self.vocab_size
        codes = merges[:, 0] * base + merges[:, 1]
        if len(np.unique(codes)) != len(codes):
            raise DataError("BPE merges repeat a pair")
        # Pair code -> merge rank, dense when small enough, else sorted for searchsorted.
        self._no_merge = len(merges)
        if base * base <= _DENSE_PAIR_LIMIT:
            self._rank_table = np.full(base * base, self._no_merge, dtype=np.int64)
            self._rank_table[codes] = np.arange(len(merges))
        else:
            self._rank_table = None
            order = np.argsort(codes)
            self._sorted_codes, self._sorted_ranks = codes[order], order
        # Every token's bytes, flat, with offsets and lengths, so decoding is one gather.
        pieces = [bytes([i]) for i in range(256)]
        for a, b in merges.tolist():
            pieces.append(pieces[a] + pieces[b])
        self._lengths = np.array([len(p) for p in pieces], dtype=np.int64)
        self._offsets = np.cumsum(self._lengths) - self._lengths
        self._bytes = np.frombuffer(b"".join(pieces), dtype=np.uint8)

    @classmethod
    def train(cls, text: str, vocab_size: int = DEFAULT_BPE_VOCAB_SIZE) -> BPETokenizer:
        """Learn up to ``vocab_size - 256`` merges from `text`.

        Each step merges the most frequent adjacent pair (ties: the smallest ids). Training
        stops early when no pair occurs twice, so `vocab_size` may come out smaller. Every
        merge passes over the whole text, so a large vocabulary takes long: progress and an
        estimate of the time left go to the ``tinygrad_lm.data.tokenizers`` logger.
        """
        if not isinstance(vocab_size, (int, np.integer)) or vocab_size < 256:
            raise DataError(f"BPE vocab_size must be an integer >= 256 (the byte tokens), "
                            f"got {vocab_size!r}")
        seq = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8) \
            .astype(np.int32)
        merges = []
        began = reported = time.perf_counter()
        for new_id in range(256, int(vocab_size)):
            if time.perf_counter() - reported > _REPORT_EVERY_S:
                reported = time.perf_counter()
                done, total = new_id - 256, int(vocab_size) - 256
                left = (total - done) * (reported - began) / max(done, 1)
                log.info(f"BPE tokenizer: {done:,} of {total:,} merges learned in "
                         f"{format_duration(reported - began)}, about {format_duration(left)} left")
            if len(seq) < 2:
                break
            # ids in use are all below new_id, so new_id is a collision-free pair-code base
            code, count = _most_frequent_pair(seq, new_id)
            if count < 2:
                break
            a, b = divmod(code, new_id)
            pos = np.flatnonzero((seq[:-1] == a) & (seq[1:] == b))
            seq = _apply_merge(seq, pos, a == b, new_id)
            merges.append((a, b))
        return cls(np.array(merges, dtype=np.int64).reshape(-1, 2))

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges)

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes that one token stands for (for inspecting what BPE learned)."""
        i = int(self._check_ids([token_id])[0])
        return self._bytes[self._offsets[i]:self._offsets[i] + self._lengths[i]].tobytes()

    def _ranks(self, codes: np.ndarray) -> np.ndarray:
        if self._rank_table is not None:
            return self._rank_table[codes]
        pos = np.minimum(np.searchsorted(self._sorted_codes, codes), len(self._sorted_codes) - 1)
        return np.where(self._sorted_codes[pos] == codes, self._sorted_ranks[pos], self._no_merge)

    def encode(self, text: str) -> np.ndarray:
        """Token ids of `text` (any string, lone surrogates included).

        Replays the merges in rank order. Merging never creates a pair of lower rank than the
        merge just done (a new token is younger than every earlier merge), so taking the
        lowest-ranked pair present each step equals replaying all merges in order while
        skipping the absent ones.
        """
        seq = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8) \
            .astype(np.int64)
        base = self.vocab_size
        while len(seq) >= 2:
            ranks = self._ranks(_pair_codes(seq, base))
            rank = int(ranks.min())
            if rank == self._no_merge:
                break
            a, b = self.merges[rank]
            seq = _apply_merge(seq, np.flatnonzero(ranks == rank), a == b, 256 + rank)
        return seq

    def decode(self, ids: Any) -> str:
        """The text of `ids`; byte sequences that are not valid UTF-8 (possible for arbitrary
        ids, never for the output of `encode`) become U+FFFD."""
        ids = self._check_ids(ids)
        lengths = self._lengths[ids]
        out_starts = np.cumsum(lengths) - lengths
        gather = np.repeat(self._offsets[ids] - out_starts, lengths) + np.arange(lengths.sum())
        raw = self._bytes[gather].tobytes()
        try:
            return raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return raw.decode("utf-8", "replace")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "merges": self.merges.copy()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BPETokenizer:
        """Rebuild from `to_dict` output (arrays may have become lists, e.g. via JSON)."""
        _expect_kind(d, cls.kind)
        merges = np.asarray(d["merges"])
        if merges.size and (merges.dtype.kind not in "iu" or merges.ndim != 2
                            or merges.shape[1] != 2):
            raise DataError(f"BPE tokenizer dict: 'merges' must be an (M, 2) integer array, got "
                            f"shape {merges.shape} dtype {merges.dtype}")
        return cls(merges)

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"


def _expect_kind(d: Mapping[str, Any], kind: str) -> None:
    if not isinstance(d, Mapping) or d.get("kind") != kind:
        got = d.get("kind") if isinstance(d, Mapping) else type(d).__name__
        raise DataError(f"expected a {kind!r} tokenizer dict, got kind {got!r}")


def make_tokenizer(kind: str, text: str, vocab_size: int | None = None) -> Tokenizer:
    """Build a tokenizer of `kind` ("char" or "bpe") from `text`.

    `vocab_size` is the BPE target (default 512); a char vocabulary is the text's own
    characters, so it is ignored there.
    """
    if kind == "char":
        return CharTokenizer.train(text)
    if kind == "bpe":
        return BPETokenizer.train(text, DEFAULT_BPE_VOCAB_SIZE if vocab_size is None
                                  else vocab_size)
    raise DataError(f"unknown tokenizer kind {kind!r}; choose one of {TOKENIZER_KINDS}")


def tokenizer_from_dict(d: Mapping[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer of any kind (char, bpe, gpt2) from its `to_dict` output."""
    kind = d.get("kind") if isinstance(d, Mapping) else None
    if kind not in Tokenizer.kinds:
        raise DataError(f"tokenizer dict has unknown kind {kind!r}; expected one of "
                        f"{tuple(Tokenizer.kinds)}")
    return Tokenizer.kinds[kind].from_dict(d)
