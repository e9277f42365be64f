"""GPT-2's byte-level BPE: the byte table, hand-computed encodings on a small vocabulary
built here, the pre-tokeniser against GPT-2's pattern, and round trips of any Unicode."""
from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_lm.data import DataError, GPT2Tokenizer
from tinygrad_lm.data.gpt2_tokenizer import bytes_to_unicode, pretokenize

GPT2_PATTERN = (r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+"""
                r"""|\s+(?!\S)|\s+""")
BYTE = bytes_to_unicode()
# merges by rank; "# #" checks that only the first line can be the #version comment
MERGES = ["Ġ t", "h e", "Ġt he", "l l", "a b", "b c", "a a", "aa aa", "# #", "Ġ 1", "1 2"]


def write_tokenizer(directory: Path, merges: list[str] = MERGES) -> tuple[Path, Path]:
    """vocab.json: the 256 byte characters as ids 0..255 in byte order, then one token per
    merge; merges.txt: GPT-2's #version line, then the merges."""
    vocab = {BYTE[b]: b for b in range(256)}
    for merge in merges:
        vocab.setdefault(merge.replace(" ", ""), len(vocab))
    vocab["<|endoftext|>"] = len(vocab)
    vocab_path, merges_path = directory / "vocab.json", directory / "merges.txt"
    vocab_path.write_text(json.dumps(vocab), encoding="utf-8")
    merges_path.write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return vocab_path, merges_path


@pytest.fixture
def tokenizer(tmp_path) -> GPT2Tokenizer:
    return GPT2Tokenizer.from_files(*write_tokenizer(tmp_path))


def test_byte_table_is_gpt2s():
    assert len(set(BYTE.values())) == 256
    assert all(BYTE[b] == chr(b) for b in [*range(0x21, 0x7F), *range(0xA1, 0xAD), 0xAE, 0xFF])
    # the 68 others take U+0100 on, in byte order
    assert BYTE[0] == "\u0100" and BYTE[ord(" ")] == "Ġ" and BYTE[ord("\n")] == "Ċ"
    assert BYTE[0x7F] == "\u0121" and BYTE[0xA0] == "\u0142" and BYTE[0xAD] == "\u0143"


@pytest.mark.parametrize("text, tokens", [
    (" the", ["Ġthe"]),  # Ġ t -> Ġt (rank 0), h e -> he (1), Ġt he -> Ġthe (2)
    (" hello", ["Ġ", "he", "ll", "o"]),  # (h, e) outranks (l, l); (Ġ, he) has no rank
    ("abc", ["ab", "c"]),  # a b (rank 4) before b c (rank 5)
    ("bc", ["bc"]),
    ("aaa", ["aa", "a"]),  # left to right, never overlapping
    ("aaaaa", ["aaaa", "a"]),  # a a everywhere first, then aa aa
    ("##", ["##"]),
    (" 12", ["Ġ1", "2"]),  # Ġ 1 (rank 9) before 1 2 (rank 10)
    ("the the", ["t", "he", "Ġthe"]),  # merges never cross pre-tokens
    ("é", ["\u00c3", "\u00a9"]),  # two UTF-8 bytes, two byte characters
])
def test_hand_computed_encodings(tokenizer, text, tokens):
    ids = tokenizer.encode(text)
    assert ids == [tokenizer.encoder[t] for t in tokens]
    assert tokenizer.decode(ids) == text


def test_merge_order_is_by_rank(tmp_path):
    swapped = GPT2Tokenizer.from_files(*write_tokenizer(tmp_path, ["b c", "a b"]))
    assert [swapped.decoder[i] for i in swapped.encode("abc")] == ["a", "bc"]


def test_vocab_size_special_tokens_and_partial_characters(tokenizer):
    assert tokenizer.vocab_size == 256 + len(MERGES) + 1
    eot = tokenizer.vocab_size - 1
    assert tokenizer.decode([eot]) == "<|endoftext|>"
    assert eot not in tokenizer.encode("<|endoftext|>")  # text, not the special id
    assert tokenizer.decode(tokenizer.encode("€")[:2]) == "\ufffd"  # cut mid-character


def test_errors_name_the_problem(tmp_path, tokenizer):
    with pytest.raises(DataError, match="not in the vocabulary: \\[9999\\]"):
        tokenizer.decode([1, 9999])
    vocab, merges = write_tokenizer(tmp_path)
    merges.write_text("#version: 0.2\nĠ t\nh e x\n", encoding="utf-8")
    with pytest.raises(DataError, match="merges.txt: line 3 is not a pair"):
        GPT2Tokenizer.from_files(vocab, merges)
    vocab.write_text('{"a": "0"}', encoding="utf-8")
    with pytest.raises(DataError, match="maps token strings to ids"):
        GPT2Tokenizer.from_files(vocab, merges)
    with pytest.raises(DataError, match="cannot read GPT-2 vocabulary"):
        GPT2Tokenizer.from_files(tmp_path / "missing.json", merges)
    small = {BYTE[b]: b for b in range(100)}  # most bytes missing: some text cannot encode
    with pytest.raises(DataError, match="token 'Ã' is not in the vocabulary"):
        GPT2Tokenizer(small, []).encode("é")


@pytest.mark.parametrize("text, chunks", [
    ("Hello world", ["Hello", " world"]),
    ("I'm sure they'll say we're done, he's 'S'", ["I", "'m", " sure", " they", "'ll", " say",
                                                   " we", "'re", " done", ",", " he", "'s",
                                                   " '", "S", "'"]),
    ("don't", ["don", "'t"]),
    ("a   b", ["a", "  ", " b"]),  # the last space goes with the word
    ("a \tb", ["a", " ", "\t", "b"]),  # only U+0020 joins a word
    ("x\n\n\ny", ["x", "\n\n", "\n", "y"]),
    ("line\n", ["line", "\n"]),
    ("end   ", ["end", "   "]),  # trailing whitespace stays together
    ("abc123def 45x", ["abc", "123", "def", " 45", "x"]),
    ("3.14!!  ?", ["3", ".", "14", "!!", " ", " ?"]),
    ("café naïve", ["café", " naïve"]),
    ("e\u0301 x", ["e", "\u0301", " x"]),  # a combining mark is neither letter nor digit
    ("日本語 テキスト", ["日本語", " テキスト"]),
    ("hi 😀😀 there", ["hi", " 😀😀", " there"]),
    ("a\u00a0\u00a0b", ["a", "\u00a0", "\u00a0", "b"]),  # NBSP is whitespace, not a space
    ("a\x1cb", ["a", "\x1c", "b"]),  # not Unicode White_Space, though str.isspace() says so
    ("Ⅻ½²", ["Ⅻ½²"]),  # Nl, No: all \p{N}
    ("", []),
])
def test_pretokenizer_on_tricky_cases(text, chunks):
    assert pretokenize(text) == chunks


def _agrees_with_regex(regex) -> st.SearchStrategy[str]:
    """Characters whose classes agree between this Python's Unicode database and the
    ``regex`` module's (newer) one, which is the pattern's only legitimate difference."""
    def same(c: str) -> bool:
        category = unicodedata.category(c)[0]
        return (bool(regex.fullmatch(r"\p{L}", c)) == (category == "L")
                and bool(regex.fullmatch(r"\p{N}", c)) == (category == "N"))
    return st.characters(exclude_categories=["Cs"]).filter(same)


def test_pretokenizer_matches_the_regex_module():
    regex = pytest.importorskip("regex")
    pattern = regex.compile(GPT2_PATTERN)
    tricky = st.sampled_from(list(" \t\n\r\u00a0\u3000'sdtlmrve1²ÉéX\u0301😀日.,!"))

    @given(st.text(st.one_of(tricky, _agrees_with_regex(regex)), max_size=40))
    def check(text: str) -> None:
        assert pretokenize(text) == pattern.findall(text)

    check()


# emoji, combining marks, CJK, whitespace runs, and anything else Unicode holds
TEXT = st.text(st.one_of(
    st.sampled_from(list("😀👍🏽🇫🇷\u200d\u0301\u0308日本語한국어 \t\n\r\u00a0\u3000'sll")),
    st.characters(exclude_categories=["Cs"])), max_size=60)


@given(TEXT)
def test_round_trip_of_any_text(tmp_path_factory, text):
    tokenizer = GPT2Tokenizer.from_files(*write_tokenizer(tmp_path_factory.mktemp("tok")))
    ids = tokenizer.encode(text)
    assert all(isinstance(i, int) for i in ids)
    assert tokenizer.decode(ids) == text
    assert "".join(pretokenize(text)) == text
