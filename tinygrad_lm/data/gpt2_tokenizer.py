"""GPT-2's tokenizer: byte-level BPE over pre-tokenised text, from ``vocab.json`` and
``merges.txt``, with the standard library alone.

Encoding runs three steps:

1. **Pre-tokenise**: cut the text into chunks with GPT-2's pattern
   ``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+``
   (a contraction, or a run of letters, of digits or of other symbols with at most one
   space before it, or whitespace). Merges never cross a chunk boundary. `pretokenize`
   scans for it directly, as Python's ``re`` has no ``\\p{L}``.
2. **Bytes to characters**: each chunk's UTF-8 bytes become one printable character each
   (`bytes_to_unicode`), so that tokens are strings without spaces or control characters:
   the space byte becomes ``Ġ``, a newline ``Ċ``.
3. **Merge**: repeatedly join the adjacent pair whose merge comes first in ``merges.txt``
   (its *rank*), until no pair has a rank; look each resulting string up in ``vocab.json``.

Decoding joins the tokens' strings, maps the characters back to bytes and decodes UTF-8
(a byte sequence cut mid-character decodes to U+FFFD, as GPT-2's does). Special tokens
such as ``<|endoftext|>`` are not parsed out of text: they are ids, as in GPT-2's
``encoder.py``.
"""
from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_bytes
from .corpora import DataError
from .tokenizers import Tokenizer

# Unicode's White_Space characters: what ``\s`` matches in the pattern (the `regex`
# module's meaning; str.isspace() also accepts U+001C..U+001F, which are not White_Space)
WHITESPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
                       "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")  # after an apostrophe; case-sensitive
_SPACE, _LETTER, _NUMBER, _OTHER = range(4)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte table: the 188 printable Latin-1 bytes stand for themselves, and the
    other 68 (controls, space, DEL, NBSP, soft hyphen) take the characters from U+0100 on,
    in byte order.

    >>> table = bytes_to_unicode()
    >>> table[ord("a")], table[ord(" ")], table[ord("\\n")], table[0]
    ('a', 'Ġ', 'Ċ', 'Ā')
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    for n, b in enumerate([b for b in range(256) if b not in table]):
        table[b] = chr(256 + n)
    return dict(sorted(table.items()))


def _kind(char: str) -> int:
    if char in WHITESPACE:
        return _SPACE
    category = unicodedata.category(char)[0]
    return _LETTER if category == "L" else _NUMBER if category == "N" else _OTHER


def pretokenize(text: str) -> list[str]:
    """``text`` cut into GPT-2's pre-tokens; ``"".join`` of the result is ``text``.

    The pattern's alternatives, tried in order at each position, become:

    - an apostrophe followed by one of `CONTRACTIONS`;
    - else a run of letters, of digits or of other non-space symbols, taking one space
      (U+0020 only) before it when the text is at a space followed by such a run;
    - else a run of whitespace. ``\\s+(?!\\S)`` backs off by one character when the run is
      followed by a non-space, leaving that last whitespace character to start the next
      chunk (so ``"a   b"`` gives ``"a", "  ", " b"``); a single whitespace character
      before a non-space is matched by the final ``\\s+``.

    >>> pretokenize("I'm   here, 42x\\n")
    ['I', "'m", '  ', ' here', ',', ' 42', 'x', '\\n']
    """
    kinds = [_kind(c) for c in text]
    chunks, i, n = [], 0, len(text)
    while i < n:
        j = _chunk_end(text, kinds, i)
        chunks.append(text[i:j])
        i = j
    return chunks


def _chunk_end(text: str, kinds: list[int], i: int) -> int:
    """Where the pre-token starting at ``i`` ends (see `pretokenize`)."""
    n = len(text)
    if text[i] == "'":
        for suffix in CONTRACTIONS:
            if text.startswith(suffix, i + 1):
                return i + 1 + len(suffix)
    start = i + 1 if text[i] == " " and i + 1 < n and kinds[i + 1] != _SPACE else i
    if kinds[start] != _SPACE:  # ` ?\p{L}+`, ` ?\p{N}+` or ` ?[^\s\p{L}\p{N}]+`
        end = start + 1
        while end < n and kinds[end] == kinds[start]:
            end += 1
        return end
    end = i + 1
    while end < n and kinds[end] == _SPACE:
        end += 1
    # `\s+(?!\S)` backs off one character before a non-space; one character is `\s+`
    return end - 1 if end < n and end - i > 1 else end


class GPT2Tokenizer(Tokenizer):
    """GPT-2's byte-level BPE: ``encode(text) -> list[int]``, ``decode(ids) -> str``."""

    kind = "gpt2"

    def __init__(self, encoder: Mapping[str, int], merges: Sequence[tuple[str, str]]) -> None:
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        self.encoder = dict(encoder)
        self.decoder = {i: token for token, i in self.encoder.items()}
        self.ranks = {pair: rank for rank, pair in enumerate(merges)}
        foreign = [t for t in self.encoder if not set(t) <= self.byte_decoder.keys()]
        if foreign:
            raise DataError(f"GPT2Tokenizer: tokens with characters outside the byte table: "
                            f"{foreign[:5]}")
        self._cache: dict[str, list[int]] = {}  # pre-token -> ids; text repeats its words

    @classmethod
    def from_files(cls, vocab_json: str | os.PathLike[str],
                   merges_txt: str | os.PathLike[str]) -> GPT2Tokenizer:
        """Read GPT-2's ``vocab.json`` (token string -> id) and ``merges.txt`` (one merge
        ``"a b"`` a line, by rank, after an optional ``#version`` line)."""
        vocab_path, merges_path = Path(vocab_json), Path(merges_txt)
        try:
            encoder = json.loads(vocab_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"cannot read GPT-2 vocabulary {vocab_path}: {exc}") from None
        if not isinstance(encoder, dict) or not all(
                isinstance(k, str) and type(v) is int for k, v in encoder.items()):
            raise DataError(f"{vocab_path}: a GPT-2 vocabulary maps token strings to ids")
        try:
            lines = merges_path.read_text(encoding="utf-8").split("\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read GPT-2 merges {merges_path}: {exc}") from None
        first = 2 if lines[0].startswith("#version") else 1
        merges = []
        for number, line in enumerate(lines[first - 1:], start=first):
            line = line.rstrip("\r")
            if not line:
                continue
            pair = tuple(line.split(" "))
            if len(pair) != 2:
                raise DataError(f"{merges_path}: line {number} is not a pair 'a b': {line!r}")
            merges.append(pair)
        return cls(encoder, merges)

    @property
    def vocab_size(self) -> int:
        """Number of ids: one more than the largest (GPT-2's is 50257)."""
        return max(self.encoder.values(), default=-1) + 1

    def encode(self, text: str) -> list[int]:  # type: ignore[override]
        """Token ids of ``text``, a list as in GPT-2's ``encoder.py`` (the other tokenizers
        give an array; ``np.asarray`` takes either)."""
        ids: list[int] = []
        for chunk in pretokenize(text):
            if chunk not in self._cache:
                symbols = "".join(self.byte_encoder[b] for b in chunk.encode("utf-8"))
                self._cache[chunk] = [self._lookup(token) for token in self._merge(symbols)]
            ids.extend(self._cache[chunk])
        return ids

    def _merge(self, symbols: str) -> list[str]:
        """Apply merges to one pre-token's characters, lowest rank first."""
        word = list(symbols)
        while len(word) > 1:
            pair = min(zip(word, word[1:]), key=lambda p: self.ranks.get(p, len(self.ranks)))
            if pair not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):  # every occurrence, left to right, never overlapping
                if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        return word

    def _lookup(self, token: str) -> int:
        if token not in self.encoder:
            raise DataError(f"GPT2Tokenizer: token {token!r} is not in the vocabulary")
        return self.encoder[token]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids`` (a list or a 1-D integer array)."""
        ids = [int(i) for i in ids]
        unknown = sorted({i for i in ids if i not in self.decoder})
        if unknown:
            raise DataError(f"GPT2Tokenizer.decode: ids not in the vocabulary: {unknown[:10]}")
        text = "".join(self.decoder[i] for i in ids)
        return bytes(self.byte_decoder[c] for c in text).decode("utf-8", errors="replace")

    def to_dict(self) -> dict[str, Any]:
        """The vocabulary and the merges by rank, for a checkpoint (`from_dict` reads it)."""
        return {"kind": self.kind, "encoder": dict(self.encoder),
                "merges": [list(pair) for pair in self.ranks]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GPT2Tokenizer:
        """The tokenizer that `to_dict` described."""
        try:
            return cls(d["encoder"], [tuple(pair) for pair in d["merges"]])
        except (KeyError, TypeError) as exc:
            raise DataError(f"not a GPT-2 tokenizer dict: {exc!r}") from None

    def write_files(self, directory: str | os.PathLike[str]) -> None:
        """Write ``vocab.json`` and ``merges.txt`` into ``directory``, as GPT-2's are."""
        directory = Path(directory)
        vocab = json.dumps(self.encoder, ensure_ascii=False)
        merges = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in self.ranks)
        atomic_write_bytes(directory / "vocab.json", vocab.encode("utf-8"))
        atomic_write_bytes(directory / "merges.txt", merges.encode("utf-8"))

    def __repr__(self) -> str:
        return f"GPT2Tokenizer(vocab_size={self.vocab_size}, merges={len(self.ranks)})"
