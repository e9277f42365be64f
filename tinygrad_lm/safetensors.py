"""The safetensors file format, read and written with NumPy alone (never pickle).

Hugging Face stores model weights this way. File layout::

    header length N (u64, little-endian) | header: N bytes of UTF-8 JSON | data bytes

The header maps each tensor's name to ``{"dtype": "F32", "shape": [768, 2304],
"data_offsets": [begin, end]}``, byte offsets into the data that follows the header; an
optional ``"__metadata__"`` entry maps strings to strings. Arrays are C-ordered and
little-endian. Reading validates every entry against the file's size before touching the
data, so a truncated or corrupt file raises `SafetensorsError` naming the file and tensor.
"""
from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_writer

# The dtypes read and written. BF16 has no NumPy dtype: it is stored as the top 16 bits
# of a float32, so reading widens it to float32 exactly (the low 16 bits become zero).
_DTYPES = {"F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
           "BF16": np.dtype("<u2"), "I64": np.dtype("<i8"), "I32": np.dtype("<i4")}
_NAMES = {np.dtype(np.float64): "F64", np.dtype(np.float32): "F32",
          np.dtype(np.float16): "F16", np.dtype(np.int64): "I64", np.dtype(np.int32): "I32"}
_LENGTH = struct.Struct("<Q")
_MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's limit: a sane JSON header


class SafetensorsError(ValueError):
    """A file that is not a readable safetensors file (truncated, corrupt, unsupported)."""


def load_file(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every tensor of the file at ``path`` as a NumPy array in native byte order.

    Dtypes are kept (F64, F32, F16, I64, I32) except BF16, which becomes float32.
    """
    path = Path(path)
    size = path.stat().st_size
    if size < _LENGTH.size:
        raise SafetensorsError(f"{path}: {size} bytes, too short for a safetensors header")
    with open(path, "rb") as f:
        (header_len,) = _LENGTH.unpack(f.read(_LENGTH.size))
        if header_len > min(_MAX_HEADER, size - _LENGTH.size):
            raise SafetensorsError(f"{path}: header length {header_len} does not fit in a file of "
                                   f"{size} bytes: the file is truncated or not safetensors")
        raw_header = f.read(header_len)
    try:
        header = json.loads(raw_header.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SafetensorsError(f"{path}: the header is not valid UTF-8 JSON ({exc})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: the header is not a JSON object")
    _check_metadata(header.pop("__metadata__", {}), path)
    data_start, data_size = _LENGTH.size + header_len, size - _LENGTH.size - header_len
    specs = {name: _parse_entry(name, entry, data_size, path) for name, entry in header.items()}
    if not specs:
        return {}
    # a plain ndarray view of the mapped data (np.memmap's subclass mangles 0-d results)
    data = (np.asarray(np.memmap(path, dtype=np.uint8, mode="r", offset=data_start,
                                 shape=(data_size,)))
            if data_size else np.zeros(0, dtype=np.uint8))  # an empty file cannot be mapped
    return {name: _decode(data[begin:end], dtype, shape)
            for name, (dtype, shape, begin, end) in specs.items()}


def _check_metadata(metadata: Any, path: Path) -> None:
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise SafetensorsError(f"{path}: __metadata__ must map strings to strings")


def _parse_entry(name: str, entry: Any, data_size: int,
                 path: Path) -> tuple[str, tuple[int, ...], int, int]:
    """Check one header entry; return (dtype name, shape, begin, end)."""
    where = f"{path}: tensor {name!r}"
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        raise SafetensorsError(f"{where}: entry must have dtype, shape and data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in _DTYPES:
        raise SafetensorsError(f"{where}: unsupported dtype {dtype!r} "
                               f"(supported: {', '.join(_DTYPES)})")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise SafetensorsError(f"{where}: shape must be a list of non-negative ints, got {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2
            and all(type(o) is int for o in offsets) and 0 <= offsets[0] <= offsets[1]):
        raise SafetensorsError(f"{where}: data_offsets must be [begin, end] with "
                               f"0 <= begin <= end, got {offsets!r}")
    begin, end = offsets
    expected = math.prod(shape) * _DTYPES[dtype].itemsize
    if end - begin != expected:
        raise SafetensorsError(f"{where}: {end - begin} bytes of data for {dtype} {shape}, "
                               f"which needs {expected}")
    if end > data_size:
        raise SafetensorsError(f"{where}: its data ends at byte {end} but the file holds only "
                               f"{data_size} bytes of data: the file is truncated")
    return dtype, tuple(shape), begin, end


def _decode(raw: np.ndarray, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    array = raw.view(_DTYPES[dtype]).reshape(shape)
    if dtype == "BF16":  # bfloat16 bits are the high half of a float32's bits
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(array.dtype.newbyteorder("="))  # a writable, native-order copy


def save_file(tensors: Mapping[str, Any], path: str | os.PathLike[str],
              metadata: Mapping[str, str] | None = None) -> None:
    """Write ``tensors`` (name -> NumPy array) to ``path`` in the safetensors format.

    Written through ``atomic.atomic_writer`` (streamed, then renamed over ``path``), so an
    interrupted save never leaves a partial file under ``path``.
    """
    arrays, header, offset = [], {}, 0
    if metadata:
        header["__metadata__"] = dict(metadata)
    for name, value in tensors.items():
        array = np.asarray(value)
        dtype = array.dtype.newbyteorder("=")
        if dtype not in _NAMES:
            raise SafetensorsError(f"save_file: tensor {name!r} has dtype {array.dtype}; "
                                   f"supported: {', '.join(str(d) for d in _NAMES)}")
        header[name] = {"dtype": _NAMES[dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        arrays.append(array.astype(dtype.newbyteorder("<"), order="C", copy=False))
        offset += array.nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # pad so the data starts 8-byte aligned
    with atomic_writer(path) as f:
        f.write(_LENGTH.pack(len(encoded)))
        f.write(encoded)
        for array in arrays:
            f.write(array.data)
