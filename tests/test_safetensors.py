"""The safetensors reader and writer: files built byte by byte in the test decode exactly,
round trips keep every dtype, saves are atomic, and broken files fail naming file and tensor."""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from tinygrad_lm.safetensors import SafetensorsError, load_file, save_file


def build_file(path: Path, header: dict, data: bytes) -> Path:
    """A safetensors file written by hand: u64 header length, JSON header, data."""
    encoded = json.dumps(header).encode("utf-8")
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)
    return path


def test_hand_built_file_decodes_every_dtype(tmp_path):
    f32 = np.array([[1.5, -2.0, 3.25], [0.0, 1e-3, -7.0]], dtype="<f4")
    f64 = np.array([np.pi, -np.e], dtype="<f8")
    f16 = np.array([0.5, -65504.0, 2.0 ** -14], dtype="<f2")
    i64 = np.array([-(2 ** 40), 7], dtype="<i8")
    i32 = np.array([[1], [-2]], dtype="<i4")
    bf16_values = np.array([1.5, -2.0, 3.140625, 2.0 ** 100], dtype=np.float32)  # exact in bf16
    bf16 = (bf16_values.view(np.uint32) >> 16).astype("<u2")
    parts = [("i32", "I32", i32), ("bf16", "BF16", bf16), ("f32", "F32", f32),
             ("f64", "F64", f64), ("f16", "F16", f16), ("i64", "I64", i64)]
    header, data = {"__metadata__": {"format": "pt"}}, b""
    for name, dtype, array in parts:  # the data in the reverse order of the header
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [-len(data) - array.nbytes, -len(data)]}
        data = array.tobytes() + data
    for entry in list(header.values())[1:]:
        entry["data_offsets"] = [o + len(data) for o in entry["data_offsets"]]
    loaded = load_file(build_file(tmp_path / "m.safetensors", header, data))
    assert sorted(loaded) == sorted(name for name, _, _ in parts)
    np.testing.assert_array_equal(loaded["bf16"], bf16_values)
    assert loaded["bf16"].dtype == np.float32
    for name, array in [("f32", f32), ("f64", f64), ("f16", f16), ("i64", i64), ("i32", i32)]:
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape, name
        np.testing.assert_array_equal(loaded[name], array, err_msg=name)
    loaded["f32"][0, 0] = 9.0  # arrays are independent, writable copies


@pytest.mark.parametrize("dtype, name", [(np.float64, "F64"), (np.float32, "F32"),
                                         (np.float16, "F16"), (np.int64, "I64"),
                                         (np.int32, "I32")])
def test_round_trip_keeps_values_dtypes_and_layout(tmp_path, dtype, name):
    rng = np.random.default_rng(0)
    tensors = {"a.weight": (rng.standard_normal((3, 5)) * 100).astype(dtype),
               "scalar": np.array(4, dtype=dtype), "empty": np.zeros((0, 2), dtype=dtype),
               "strided": (rng.standard_normal((4, 6)) * 10).astype(dtype)[:, ::2].T}
    path = tmp_path / "x.safetensors"
    save_file(tensors, path, metadata={"format": "pt"})
    loaded = load_file(path)
    assert list(loaded) == list(tensors)
    for key, array in tensors.items():
        assert loaded[key].dtype == array.dtype and loaded[key].shape == array.shape
        np.testing.assert_array_equal(loaded[key], array)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    assert n % 8 == 0 and header["__metadata__"] == {"format": "pt"}  # aligned data
    assert header["a.weight"] == {"dtype": name, "shape": [3, 5],
                                  "data_offsets": [0, 15 * np.dtype(dtype).itemsize]}


def test_writer_stores_little_endian_whatever_the_input_order(tmp_path):
    big = np.arange(6, dtype=">f4").reshape(2, 3)
    path = tmp_path / "be.safetensors"
    save_file({"w": big}, path)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert json.loads(raw[8:8 + n])["w"]["dtype"] == "F32"
    np.testing.assert_array_equal(np.frombuffer(raw[8 + n:], dtype="<f4").reshape(2, 3), big)
    np.testing.assert_array_equal(load_file(path)["w"], big)


def test_writer_refuses_unsupported_dtypes(tmp_path):
    with pytest.raises(SafetensorsError, match="'mask'.*bool"):
        save_file({"mask": np.ones(3, dtype=bool)}, tmp_path / "b.safetensors")
    assert not (tmp_path / "b.safetensors").exists()


def test_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save_file({"w": np.ones(4, dtype=np.float32)}, path)
    before = path.read_bytes()

    def interrupt(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_file({"w": np.zeros(8, dtype=np.float32)}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.safetensors"]  # no temporary file left behind


def _valid(tmp_path: Path) -> Path:
    path = tmp_path / "ok.safetensors"
    save_file({"wte": np.ones((4, 2), dtype=np.float32), "bias": np.ones(3, dtype=np.float32)},
              path)
    return path


def _header_of(raw: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def _write(tmp_path: Path, raw: bytes) -> Path:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(raw)
    return path


def _with_entry(tmp_path: Path, **entry) -> Path:
    header, data = _header_of(_valid(tmp_path).read_bytes())
    header["wte"].update(entry)
    return build_file(tmp_path / "bad.safetensors", header, data)


@pytest.mark.parametrize("make, message", [
    (lambda p: _write(p, b"\x01\x02"), "too short"),
    (lambda p: _write(p, _valid(p).read_bytes()[:-4]), "'bias'.*truncated"),
    (lambda p: _write(p, _valid(p).read_bytes()[:20]), "header length .* does not fit"),
    (lambda p: _write(p, b"PK\x03\x04" + bytes(60)), "header length"),  # PyTorch's zip+pickle
    (lambda p: _write(p, struct.pack("<Q", 5) + b"{oops"), "not valid UTF-8 JSON"),
    (lambda p: build_file(p / "bad.safetensors", [1, 2], b""), "not a JSON object"),
    (lambda p: build_file(p / "bad.safetensors", {"__metadata__": {"a": 1}}, b""),
     "__metadata__"),
    (lambda p: _with_entry(p, dtype="F8_E4M3"), "'wte'.*unsupported dtype 'F8_E4M3'"),
    (lambda p: _with_entry(p, shape=[4, -2]), "'wte'.*shape"),
    (lambda p: _with_entry(p, shape=[4, 3]), "'wte'.*32 bytes of data for F32 \\[4, 3\\]"),
    (lambda p: _with_entry(p, data_offsets=[8, 4]), "'wte'.*data_offsets"),
    (lambda p: _with_entry(p, data_offsets=[40, 72]), "'wte'.*truncated"),
    (lambda p: build_file(p / "bad.safetensors", {"w": {"dtype": "F32"}}, b""),
     "'w'.*dtype, shape and data_offsets"),
])
def test_broken_files_fail_naming_file_and_tensor(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(SafetensorsError, match=message) as info:
        load_file(path)
    assert str(path) in str(info.value)
