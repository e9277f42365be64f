"""Data pipeline: corpora (built-in, shakespeare cache, files), tokenizers, token files, batches.

No test reaches the network: an autouse fixture replaces the downloader with one that fails,
and the shakespeare tests install fakes of their own.
"""
import json
import urllib.error
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_lm.data import batches, corpora, tokenizers
from tinygrad_lm.data import (BPETokenizer, Batcher, CharTokenizer, DataError, TokenDataset,
                              UnknownCharacterError, load_corpus, make_tokenizer,
                              prepare_dataset, token_dtype, tokenizer_from_dict)

SHARED_SHAKESPEARE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" \
    / "tinyshakespeare.txt"

SAMPLE = ("Narrator:\nThe lamp was lit before the ferry left the quay.\n\n"
          "All:\nAway, away.\n\ndef f(x):\n    return x * x  # café, naïve, 日本語 🙂\n") * 8


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(url):
        raise urllib.error.URLError("network disabled in tests")
    monkeypatch.setattr(corpora, "fetch_url", refuse)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    monkeypatch.setenv("TINYGRAD_LM_CACHE", str(directory))
    monkeypatch.delenv("TINYGRAD_LM_SHAKESPEARE", raising=False)
    return directory


# ---------------------------------------------------------------- reference BPE (plain Python)

def reference_bpe_train(text, vocab_size):
    """Most frequent adjacent pair (counting every position), ties to the smallest pair,
    merged by a left-to-right scan; stops when no pair occurs twice."""
    seq = list(text.encode("utf-8"))
    merges = []
    for new_id in range(256, vocab_size):
        counts = Counter(zip(seq, seq[1:]))
        if not counts:
            break
        best = max(counts.values())
        if best < 2:
            break
        pair = min(p for p, c in counts.items() if c == best)
        seq = reference_merge(seq, pair, new_id)
        merges.append(pair)
    return merges, seq


def reference_merge(seq, pair, new_id):
    out, i = [], 0
    while i < len(seq):
        if i + 1 < len(seq) and (seq[i], seq[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(seq[i])
            i += 1
    return out


def reference_bpe_encode(text, merges):
    seq = list(text.encode("utf-8"))
    for k, pair in enumerate(merges):
        seq = reference_merge(seq, tuple(pair), 256 + k)
    return seq


# ---------------------------------------------------------------- char tokenizer

@given(st.text(min_size=1, max_size=200))
def test_char_round_trip_any_text(text):
    tok = CharTokenizer.train(text)
    ids = tok.encode(text)
    assert ids.dtype == np.int64 and ids.shape == (len(text),)
    assert tok.decode(ids) == text
    assert tok.vocab_size == len(set(text))


@given(st.text(alphabet="abcdefgh \n", min_size=1, max_size=50), st.data())
def test_char_round_trip_known_characters(corpus, data):
    tok = CharTokenizer.train(corpus)
    text = data.draw(st.text(alphabet=sorted(set(corpus)), max_size=50))
    assert tok.decode(tok.encode(text)) == text


def test_char_vocab_is_sorted_characters():
    tok = CharTokenizer.train("cab\nb")
    assert tok.chars == "\nabc"
    assert tok.encode("abc\n").tolist() == [1, 2, 3, 0]
    assert tok.decode([3, 2, 1]) == "cba"
    assert tok.encode("").shape == (0,) and tok.decode([]) == ""


def test_char_unknown_characters_are_named():
    tok = CharTokenizer.train("hello world")
    with pytest.raises(UnknownCharacterError) as info:
        tok.encode("hello, wörld!")
    assert info.value.chars == ["!", ",", "ö"]
    assert "','" in str(info.value) and "'ö'" in str(info.value)
    assert isinstance(info.value, DataError)


def test_char_lone_surrogate_round_trip():
    text = "a\ud800b"
    tok = CharTokenizer.train(text)
    assert tok.decode(tok.encode(text)) == text


def test_char_decode_rejects_bad_ids():
    tok = CharTokenizer.train("abc")
    with pytest.raises(DataError, match="outside 0..2"):
        tok.decode([0, 3])
    with pytest.raises(DataError, match="integer ids"):
        tok.decode(np.array([0.0, 1.0]))
    with pytest.raises(DataError, match="empty"):
        CharTokenizer.train("")


# ---------------------------------------------------------------- BPE tokenizer

def test_bpe_known_merges_with_overlapping_runs():
    # "aa" is most frequent (4, counting the overlapping positions in "aaa"); then "ab" ties
    # with "Za" and wins as the smaller pair; then "ZY"; then nothing occurs twice.
    tok = BPETokenizer.train("aaabdaaabac", 300)
    a, b = ord("a"), ord("b")
    assert tok.merges.tolist() == [[a, a], [a, b], [256, 257]]
    assert tok.vocab_size == 259
    assert tok.encode("aaabdaaabac").tolist() == [258, ord("d"), 258, a, ord("c")]
    assert tok.token_bytes(258) == b"aaab"


@pytest.mark.parametrize("text, expected", [
    ("aa", [256]), ("aaa", [256, 97]), ("aaaa", [256, 256]), ("aaaaa", [256, 256, 97]),
    ("baaab", [98, 256, 97, 98]), ("aabaaa", [256, 98, 256, 97]),
])
def test_bpe_overlapping_repeats_merge_left_to_right(text, expected):
    tok = BPETokenizer([[97, 97]])
    assert tok.encode(text).tolist() == expected
    assert tok.decode(tok.encode(text)) == text


def test_bpe_run_of_identical_tokens_trains_like_reference():
    text = "a" * 37 + "b" * 5
    merges, seq = reference_bpe_train(text, 270)
    tok = BPETokenizer.train(text, 270)
    assert tok.merges.tolist() == [list(m) for m in merges]
    assert tok.encode(text).tolist() == seq


@settings(deadline=None, max_examples=60)
@given(st.text(alphabet="ab c\n", max_size=80), st.integers(256, 280))
def test_bpe_train_and_encode_match_reference(text, vocab_size):
    merges, seq = reference_bpe_train(text, vocab_size)
    tok = BPETokenizer.train(text, vocab_size)
    assert tok.merges.tolist() == [list(m) for m in merges]
    assert tok.encode(text).tolist() == seq


@settings(deadline=None, max_examples=30)
@given(st.text(alphabet="abé ", max_size=60), st.text(alphabet="abcé ", max_size=60))
def test_bpe_encode_other_text_matches_reference(corpus, text):
    tok = BPETokenizer.train(corpus, 300)
    assert tok.encode(text).tolist() == reference_bpe_encode(text, tok.merges.tolist())


def test_bpe_sorted_pair_path_matches_dense(monkeypatch):
    dense = BPETokenizer.train(SAMPLE, 320)
    monkeypatch.setattr(tokenizers, "_DENSE_PAIR_LIMIT", 0)
    sparse = BPETokenizer.train(SAMPLE, 320)
    assert sparse._rank_table is None
    assert np.array_equal(sparse.merges, dense.merges)
    assert np.array_equal(sparse.encode(SAMPLE), dense.encode(SAMPLE))


BPE_FIXED = BPETokenizer.train(SAMPLE, 340)


@settings(deadline=None)
@given(st.text())
def test_bpe_round_trip_any_text(text):
    ids = BPE_FIXED.encode(text)
    assert ids.dtype == np.int64 and ids.ndim == 1
    assert ids.min(initial=0) >= 0 and ids.max(initial=0) < BPE_FIXED.vocab_size
    assert BPE_FIXED.decode(ids) == text


@settings(deadline=None, max_examples=40)
@given(st.text(max_size=100), st.integers(256, 300))
def test_bpe_round_trip_trained_on_itself(text, vocab_size):
    tok = BPETokenizer.train(text, vocab_size)
    assert tok.decode(tok.encode(text)) == text


def test_bpe_compresses_and_handles_special_strings():
    ids = BPE_FIXED.encode(SAMPLE)
    assert len(ids) < len(SAMPLE.encode()) / 2
    for text in ["", "a", "\ud800x\udfff", "🙂" * 3, "\x00\x01"]:
        assert BPE_FIXED.decode(BPE_FIXED.encode(text)) == text


def test_bpe_decode_invalid_partial_sequence_is_replaced():
    euro = "€".encode()
    assert BPETokenizer().decode([euro[0], euro[1]]) == "\ufffd"
    assert BPETokenizer().decode(list(euro)) == "€"


def test_bpe_bad_arguments():
    with pytest.raises(DataError, match=">= 256"):
        BPETokenizer.train("abc", 100)
    with pytest.raises(DataError, match="only join ids below"):
        BPETokenizer([[97, 256]])
    with pytest.raises(DataError, match="repeat"):
        BPETokenizer([[97, 98], [97, 98]])
    with pytest.raises(DataError, match="outside"):
        BPETokenizer().decode([256])


def test_bpe_stops_when_no_pair_repeats():
    assert BPETokenizer.train("abcdef", 1000).vocab_size == 256
    assert BPETokenizer.train("", 1000).vocab_size == 256


# ---------------------------------------------------------------- serialisation and factory

@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_tokenizer_dict_round_trip(kind):
    tok = make_tokenizer(kind, SAMPLE, 300)
    d = tok.to_dict()
    assert d["kind"] == kind
    assert all(isinstance(v, (str, int, np.ndarray)) for v in d.values())
    text = SAMPLE[:200]
    for restored in (tokenizer_from_dict(d), tokenizer_from_dict(
            json.loads(json.dumps({k: v.tolist() if isinstance(v, np.ndarray) else v
                                   for k, v in d.items()})))):
        assert type(restored) is type(tok) and restored.vocab_size == tok.vocab_size
        assert np.array_equal(restored.encode(text), tok.encode(text))


def test_factory_and_dict_errors():
    assert make_tokenizer("bpe", SAMPLE).vocab_size <= 512
    assert isinstance(make_tokenizer("char", SAMPLE, 999), CharTokenizer)
    with pytest.raises(DataError, match="unknown tokenizer kind 'word'"):
        make_tokenizer("word", SAMPLE)
    with pytest.raises(DataError, match="unknown kind"):
        tokenizer_from_dict({"kind": "word"})
    with pytest.raises(DataError, match="expected a 'bpe'"):
        BPETokenizer.from_dict({"kind": "char", "codepoints": [97]})
    with pytest.raises(DataError, match="code points"):
        CharTokenizer.from_dict({"kind": "char", "codepoints": [-1]})
    with pytest.raises(DataError, match=r"\(M, 2\)"):
        BPETokenizer.from_dict({"kind": "bpe", "merges": [97, 98, 99]})


# ---------------------------------------------------------------- batches

def test_token_dtype():
    assert token_dtype(65) == np.uint16 and token_dtype(65536) == np.uint16
    assert token_dtype(65537) == np.uint32


@pytest.mark.parametrize("batch_size, block_size", [(1, 1), (3, 5), (8, 16)])
def test_batches_shape_and_shift(batch_size, block_size):
    tokens = np.arange(100, dtype=np.uint16)
    x, y = Batcher(tokens, batch_size, block_size, np.random.default_rng(0)).next_batch()
    assert x.shape == y.shape == (batch_size, block_size)
    assert x.dtype == y.dtype == np.int64
    assert np.array_equal(x[:, 1:], y[:, :-1])
    # windows of consecutive ids: each row starts somewhere and counts up by one
    assert np.array_equal(x, x[:, :1] + np.arange(block_size))
    assert np.array_equal(y, x + 1)


def test_batches_reach_every_offset_and_no_further():
    tokens = np.arange(7, dtype=np.uint16)  # block 4: windows may start at 0, 1, 2
    batcher = Batcher(tokens, 64, 4, np.random.default_rng(1))
    starts = {int(s) for _ in range(5) for s in batcher.next_batch()[0][:, 0]}
    assert starts == {0, 1, 2}
    x, y = Batcher(tokens[:5], 2, 4, np.random.default_rng(0)).next_batch()
    assert x.tolist() == [[0, 1, 2, 3]] * 2 and y.tolist() == [[1, 2, 3, 4]] * 2


def test_batches_reproducible_and_resumable():
    tokens = np.random.default_rng(5).integers(0, 500, size=1000).astype(np.uint16)
    a = Batcher(tokens, 4, 8, np.random.default_rng(42))
    b = Batcher(tokens, 4, 8, np.random.default_rng(42))
    for (xa, ya), (xb, yb) in zip([a.next_batch() for _ in range(3)],
                                  [b.next_batch() for _ in range(3)]):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
    state = json.loads(json.dumps(a.state_dict()))  # survives a JSON/checkpoint trip
    expected = [a.next_batch() for _ in range(3)]
    resumed = Batcher(tokens, 4, 8, np.random.default_rng(999))
    resumed.load_state_dict(state)
    for (xe, ye), (xr, yr) in zip(expected, [next(resumed) for _ in range(3)]):
        assert np.array_equal(xe, xr) and np.array_equal(ye, yr)


def test_batcher_errors():
    tokens = np.arange(10, dtype=np.uint16)
    with pytest.raises(DataError, match="val split has 10 tokens.*block_size \\+ 1 = 11"):
        Batcher(tokens, 2, 10, np.random.default_rng(0), name="val")
    with pytest.raises(DataError, match="batch_size must be a positive integer"):
        Batcher(tokens, 0, 4, np.random.default_rng(0))
    with pytest.raises(DataError, match="Generator"):
        Batcher(tokens, 2, 4, 0)
    state = Batcher(tokens, 2, 4, np.random.default_rng(0)).state_dict()
    with pytest.raises(DataError, match="batches of"):
        Batcher(tokens, 3, 4, np.random.default_rng(0)).load_state_dict(state)
    with pytest.raises(DataError, match="MT19937"):
        Batcher(tokens, 2, 4, np.random.Generator(np.random.MT19937(0))).load_state_dict(state)


# ---------------------------------------------------------------- prepared datasets

@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_prepare_dataset_writes_memmaps(tmp_path, kind):
    ds = prepare_dataset(SAMPLE, tmp_path / "d", tokenizer=kind, vocab_size=300, source="s")
    ids = ds.tokenizer.encode(SAMPLE)
    assert isinstance(ds.train, np.memmap) and ds.train.dtype == np.uint16
    assert np.array_equal(np.concatenate([ds.train, ds.val]), ids)
    assert len(ds.val) == round(0.1 * len(ids))
    assert ds.tokenizer.decode(np.concatenate([ds.train, ds.val])) == SAMPLE
    meta = json.loads((tmp_path / "d" / "meta.json").read_text())
    assert meta["tokens"] == {"train": len(ds.train), "val": len(ds.val)}
    assert meta["vocab_size"] == ds.tokenizer.vocab_size and meta["source"] == "s"
    assert (tmp_path / "d" / "train.bin").stat().st_size == 2 * len(ds.train)
    x, y = ds.batcher("val", 2, 8, np.random.default_rng(0)).next_batch()
    assert x.shape == (2, 8) and np.array_equal(x[:, 1:], y[:, :-1])
    xa, _ = ds.batch_at("train", 2, 8, (1, 7))
    xb, _ = ds.batch_at("train", 2, 8, (1, 7))
    assert np.array_equal(xa, xb)


def test_prepare_dataset_reuses_and_rebuilds(tmp_path, monkeypatch):
    d = tmp_path / "d"
    first = prepare_dataset(SAMPLE, d, tokenizer="bpe", vocab_size=300)
    train_before = np.array(first.train)

    def no_training(*args):
        raise AssertionError("the prepared directory should have been reused")
    monkeypatch.setattr(batches, "make_tokenizer", no_training)
    again = prepare_dataset(SAMPLE, d, tokenizer="bpe", vocab_size=300)
    assert np.array_equal(again.train, train_before)
    assert np.array_equal(again.tokenizer.merges, first.tokenizer.merges)
    monkeypatch.undo()

    # different settings, a truncated token file, an interrupted preparation: all rebuild
    other = prepare_dataset(SAMPLE, d, tokenizer="char")
    assert isinstance(other.tokenizer, CharTokenizer)
    with open(d / "train.bin", "r+b") as f:
        f.truncate(10)
    with pytest.raises(DataError, match="has 10 bytes"):
        TokenDataset.open(d)
    assert len(prepare_dataset(SAMPLE, d, tokenizer="char").train) == len(other.train)
    (d / "meta.json").unlink()
    assert len(prepare_dataset(SAMPLE, d, tokenizer="char").train) == len(other.train)


def test_prepare_dataset_default_dir_is_in_cache(cache):
    ds = prepare_dataset(SAMPLE, tokenizer="char")
    assert ds.directory.parent == cache / "datasets"
    assert prepare_dataset(SAMPLE, tokenizer="char").directory == ds.directory
    assert prepare_dataset(SAMPLE + "x", tokenizer="char").directory != ds.directory


def test_prepare_dataset_uint32_for_large_vocab(tmp_path):
    text = "".join(chr(c) for c in range(1, 70_000) if not 0xD800 <= c < 0xE000)
    ds = prepare_dataset(text, tmp_path / "d", tokenizer="char", val_fraction=0.0)
    assert ds.tokenizer.vocab_size > 65536
    assert ds.train.dtype == np.uint32 and len(ds.val) == 0
    assert ds.tokenizer.decode(ds.train) == text


def test_prepare_dataset_errors(tmp_path):
    with pytest.raises(DataError, match="val_fraction"):
        prepare_dataset(SAMPLE, tmp_path, val_fraction=1.0)
    with pytest.raises(DataError, match="empty"):
        prepare_dataset("", tmp_path)
    with pytest.raises(DataError, match="unknown tokenizer kind"):
        prepare_dataset(SAMPLE, tmp_path, tokenizer="word")
    with pytest.raises(DataError, match="meta.json is missing"):
        TokenDataset.open(tmp_path / "nowhere")
    ds = prepare_dataset("abcdefgh" * 2, tmp_path / "d", tokenizer="char")
    with pytest.raises(DataError, match="val split has 2 tokens"):
        ds.batcher("val", 1, 4, np.random.default_rng(0))
    with pytest.raises(DataError, match="unknown split"):
        ds.batcher("test", 1, 4, np.random.default_rng(0))


# ---------------------------------------------------------------- corpora

def test_stdlib_corpus_deterministic_and_nonempty():
    text = load_corpus("stdlib")
    assert text == load_corpus("stdlib") == load_corpus()
    assert 200_000 < len(text) <= corpora.STDLIB_MAX_CHARS
    first = corpora.stdlib_files()[0].name
    assert text.startswith(f"# ===== {first} =====\n")
    assert "\r\n" not in text and "def " in text
    assert corpora.stdlib_corpus(max_chars=1).startswith(f"# ===== {first} =====\n")
    assert corpora.stdlib_corpus(max_chars=1).count("# ===== ") == 1


def test_text_file_corpus(tmp_path):
    p = tmp_path / "t.txt"
    p.write_bytes("\ufeffhello\nwörld\n".encode())
    assert load_corpus(str(p)) == "hello\nwörld\n"


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"), (b"", "is empty"), (b"\xef\xbb\xbf", "is empty"),
    (b"abc\xff\xfe", "not UTF-8 text: invalid byte 0xff at offset 3"),
    (b"ab\x00cd", "NUL byte at offset 2"),
])
def test_text_file_errors_name_the_path(tmp_path, content, message):
    p = tmp_path / "corpus.txt"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        load_corpus(str(p))
    assert str(p) in str(info.value)


def test_directory_is_not_a_corpus(tmp_path):
    with pytest.raises(DataError, match="not a regular file"):
        load_corpus(str(tmp_path))


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("TINYGRAD_LM_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert corpora.cache_dir() == tmp_path / "xdg" / "tinygrad_lm"
    monkeypatch.setenv("TINYGRAD_LM_CACHE", str(tmp_path / "mine"))
    assert corpora.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("TINYGRAD_LM_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert corpora.cache_dir() == tmp_path / "home" / ".cache" / "tinygrad_lm"


FAKE_PLAY = "ROMEO:\nA fake play for tests.\n".encode()


@pytest.fixture
def fake_download(monkeypatch, cache):
    """A downloader that serves FAKE_PLAY, whose hash becomes the expected one."""
    calls = []

    def fetch(url):
        calls.append(url)
        return FAKE_PLAY
    monkeypatch.setattr(corpora, "fetch_url", fetch)
    monkeypatch.setattr(corpora, "SHAKESPEARE_SHA256", corpora.sha256_hex(FAKE_PLAY))
    return calls


def test_shakespeare_downloads_once_into_cache(fake_download, cache):
    assert load_corpus("shakespeare") == FAKE_PLAY.decode()
    assert fake_download == [corpora.SHAKESPEARE_URL]
    assert (cache / corpora.SHAKESPEARE_FILENAME).read_bytes() == FAKE_PLAY
    assert load_corpus("shakespeare") == FAKE_PLAY.decode()
    assert len(fake_download) == 1
    assert sorted(p.name for p in cache.iterdir()) == [corpora.SHAKESPEARE_FILENAME]


def test_shakespeare_corrupt_cache_is_downloaded_again(fake_download, cache):
    cache.mkdir(parents=True)
    (cache / corpora.SHAKESPEARE_FILENAME).write_bytes(FAKE_PLAY[:10])
    assert load_corpus("shakespeare") == FAKE_PLAY.decode()
    assert len(fake_download) == 1


def test_shakespeare_wrong_download_is_rejected_and_not_cached(fake_download, cache,
                                                               monkeypatch):
    monkeypatch.setattr(corpora, "fetch_url", lambda url: b"not the play")
    with pytest.raises(DataError, match="SHA-256"):
        load_corpus("shakespeare")
    assert not cache.exists() or not any(cache.iterdir())


def test_shakespeare_offline_error_says_what_to_do(cache):
    with pytest.raises(DataError) as info:
        load_corpus("shakespeare")
    message = str(info.value)
    assert corpora.SHAKESPEARE_URL in message and "TINYGRAD_LM_SHAKESPEARE" in message
    assert "--data" in message and "network disabled" in message
    assert not cache.exists() or not any(cache.iterdir())


def test_shakespeare_local_copy(fake_download, tmp_path, monkeypatch):
    local = tmp_path / "input.txt"
    local.write_bytes(FAKE_PLAY)
    monkeypatch.setenv("TINYGRAD_LM_SHAKESPEARE", str(local))
    assert load_corpus("shakespeare") == FAKE_PLAY.decode()
    assert corpora.shakespeare_corpus(local_path=local) == FAKE_PLAY.decode()
    assert fake_download == []
    local.write_bytes(b"edited")
    with pytest.raises(DataError, match=f"{local}.*SHA-256"):
        load_corpus("shakespeare")
    monkeypatch.setenv("TINYGRAD_LM_SHAKESPEARE", str(tmp_path / "missing.txt"))
    with pytest.raises(DataError, match="does not exist"):
        load_corpus("shakespeare")


@pytest.mark.skipif(not SHARED_SHAKESPEARE.is_file(), reason="no local tiny-shakespeare copy")
def test_real_shakespeare_matches_pinned_hash(cache):
    raw = SHARED_SHAKESPEARE.read_bytes()
    assert corpora.sha256_hex(raw) == corpora.SHAKESPEARE_SHA256
    text = corpora.shakespeare_corpus(local_path=SHARED_SHAKESPEARE)
    assert len(text) == 1_115_394
    assert CharTokenizer.train(text).vocab_size == 65
