"""``tl.save`` / ``tl.load``: exact round trips, no unpickling, atomic saves, and clear
errors for truncated, corrupt or foreign files and for objects that cannot be saved."""
from __future__ import annotations

import math
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_lm as tl
from tinygrad_lm import Tensor, nn
from tinygrad_lm.serialization import CheckpointError

DTYPES = [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
          np.uint64, np.float16, np.float32, np.float64, np.complex64, np.complex128]


def _assert_same(a: Any, b: Any, where: str = "obj") -> None:
    """Deep equality that also checks types, dtypes and shapes, and treats nan as equal."""
    if isinstance(a, Tensor):
        assert isinstance(b, Tensor), where
        assert b.dtype == a.dtype and b.device == "cpu", where
        np.testing.assert_array_equal(b.numpy(), a.numpy(), err_msg=where)
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and b.dtype == a.dtype and b.shape == a.shape, where
        np.testing.assert_array_equal(b, a, err_msg=where)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(b) == list(a), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(b) is type(a) and len(b) == len(a), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), where
    else:
        assert type(b) is type(a) and b == a, where


def _round_trip(obj: Any, path: Path) -> Any:
    tl.save(obj, path)
    return tl.load(path)


def test_nested_round_trip(tmp_path: Path) -> None:
    obj = {
        "model": {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": Tensor([1.0, 2.0])},
        "steps": [1, 2, {"deep": (3, "three", None)}],
        "pair": (0.5, -7),
        "flags": [True, False],
        "name": "tiny ✓ gpt",
        "empty": {"list": [], "dict": {}, "tuple": ()},
        "specials": [math.nan, math.inf, -math.inf, -0.0, 1e-310, 0.1],
        "big": 2 ** 62,
    }
    _assert_same(obj, _round_trip(obj, tmp_path / "a.ckpt"))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_every_numeric_dtype(dtype: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    raw = rng.standard_normal((3, 4)) * 50
    array = (raw + 1j * raw[::-1]).astype(dtype) if np.dtype(dtype).kind == "c" \
        else raw.astype(dtype)
    scalar = array.reshape(-1)[5]  # a NumPy scalar comes back as a 0-d array
    obj = {"a": array, "zero_d": np.array(array.reshape(-1)[0]), "empty": np.zeros((0, 3), dtype),
           "transposed": array.T, "scalar": scalar}
    back = _round_trip(obj, tmp_path / "d.ckpt")
    for key in ("a", "zero_d", "empty", "transposed"):
        _assert_same(obj[key], back[key], key)
        assert back[key].flags.writeable
    assert back["scalar"].dtype == array.dtype and back["scalar"].shape == ()
    assert back["scalar"] == scalar


def test_tensors_come_back_as_tensors(tmp_path: Path) -> None:
    obj = {"f": tl.randn(2, 3), "i": Tensor([1, 2, 3]), "d": tl.randn(4, dtype=np.float64),
           "zero_d": Tensor(3.5), "p": nn.Parameter(tl.ones(2))}
    back = _round_trip(obj, tmp_path / "t.ckpt")
    for key in ("f", "i", "d", "zero_d", "p"):
        _assert_same(Tensor._make(obj[key].data), back[key], key)
        assert not back[key].requires_grad


def test_nan_and_inf_inside_arrays(tmp_path: Path) -> None:
    array = np.array([np.nan, np.inf, -np.inf, 0.0], np.float32)
    _assert_same(array, _round_trip({"x": array}, tmp_path / "n.ckpt")["x"])


def test_model_state_dict_round_trip(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    tl.save({"model": model.state_dict()}, tmp_path / "m.ckpt")
    fresh = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    fresh.load_state_dict(tl.load(tmp_path / "m.ckpt")["model"])
    x = tl.randn(5, 3)
    np.testing.assert_array_equal(fresh(x).numpy(), model(x).numpy())


@given(st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 63 - 1) | st.floats()
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=12))
def test_round_trip_property(tmp_path_factory: pytest.TempPathFactory, obj: Any) -> None:
    path = tmp_path_factory.mktemp("prop") / "p.ckpt"
    _assert_same(obj, _round_trip(obj, path))


# ----------------------------------------------------------------------------- safety


class _Payload:
    """Unpickling this would create a marker file: the attack a pickle-based format allows."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def test_pickle_file_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.ckpt"
    bad.write_bytes(pickle.dumps({"weights": _Payload(marker)}))
    with pytest.raises(CheckpointError, match="not a tinygrad_lm checkpoint|too short"):
        tl.load(bad)
    assert not marker.exists()
    # the same bytes behind a valid magic number still never reach pickle
    good = tmp_path / "good.ckpt"
    tl.save({"x": np.ones(2)}, good)
    raw = good.read_bytes()
    spliced = tmp_path / "spliced.ckpt"
    spliced.write_bytes(raw[:16] + pickle.dumps(_Payload(marker)) + raw[16:])
    with pytest.raises(CheckpointError):
        tl.load(spliced)
    assert not marker.exists()


def test_saving_an_arbitrary_object_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"obj\['a'\]\[1\].*_Payload"):
        tl.save({"a": [1, _Payload(tmp_path / "x")]}, tmp_path / "o.ckpt")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("obj, needle", [
    ({1: 2}, "key 1"),
    ({"outer": {("a", "b"): 1}}, r"obj\['outer'\].*key \('a', 'b'\)"),
    ({"s": {1, 2}}, r"obj\['s'\] is a set"),
    ({"b": b"bytes"}, "bytes"),
    ({"o": np.array(["text"], dtype=object)}, "not numeric"),
    ({"u": np.array(["text"])}, "not numeric"),
])
def test_unsupported_values_name_where(obj: Any, needle: str, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=needle):
        tl.save(obj, tmp_path / "u.ckpt")


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, bytes]:
    path = tmp_path / "ckpt.bin"
    tl.save({"w": np.arange(40, dtype=np.float32), "meta": {"step": 7, "lr": 0.1}}, path)
    return path, path.read_bytes()


def test_truncation_at_every_offset_raises(saved: tuple[Path, bytes], tmp_path: Path) -> None:
    _, raw = saved
    cut = tmp_path / "cut.bin"
    for length in range(len(raw)):
        cut.write_bytes(raw[:length])
        with pytest.raises(CheckpointError):
            tl.load(cut)


def test_flipped_byte_anywhere_raises(saved: tuple[Path, bytes], tmp_path: Path) -> None:
    _, raw = saved
    bad = tmp_path / "flip.bin"
    for offset in range(0, len(raw), 7):
        corrupt = bytearray(raw)
        corrupt[offset] ^= 0x10
        bad.write_bytes(bytes(corrupt))
        with pytest.raises(CheckpointError):
            tl.load(bad)


def test_foreign_and_future_files(saved: tuple[Path, bytes], tmp_path: Path) -> None:
    _, raw = saved
    other = tmp_path / "other.bin"
    other.write_bytes(b"PK\x03\x04" + raw[4:])  # a zip file's magic
    with pytest.raises(CheckpointError, match="not a tinygrad_lm checkpoint"):
        tl.load(other)
    other.write_bytes(raw[:4] + (99).to_bytes(4, "little") + raw[8:])
    with pytest.raises(CheckpointError, match="version 99"):
        tl.load(other)
    with pytest.raises(FileNotFoundError):
        tl.load(tmp_path / "missing.bin")


def test_failed_save_keeps_previous_file_and_leaves_no_temp(
        saved: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    path, raw = saved

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        tl.save({"w": np.zeros(1000)}, path)
    assert path.read_bytes() == raw
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_save_interrupted_while_writing_keeps_previous_file(
        saved: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    path, raw = saved

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tl.save({"w": np.zeros(1000)}, path)
    assert path.read_bytes() == raw
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    np.testing.assert_array_equal(tl.load(path)["w"], np.arange(40, dtype=np.float32))


def test_save_overwrites_and_creates_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "c.ckpt"
    tl.save({"v": 1}, path)
    tl.save({"v": 2}, str(path))
    assert tl.load(str(path)) == {"v": 2}
    assert sorted(p.name for p in path.parent.iterdir()) == ["c.ckpt"]
