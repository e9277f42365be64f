"""``tl.save`` / ``tl.load``: nested dicts and lists of arrays, tensors, numbers and strings,
in a small documented format that never unpickles.

File layout (all integers little-endian)::

    b"TGLM" | version u32 | header length u64 | header (UTF-8 JSON) | array bytes ... | sha256

The header is the object tree in JSON, with each array replaced by
``{"__array__": index, "dtype": "<f4", "shape": [..], "offset": o, "nbytes": n}`` (and
``"tensor": true`` when it was a Tensor). The last 32 bytes are the SHA-256 of everything
before them, so truncation and corruption are detected before anything is interpreted.
Saving writes a temporary file beside the target, fsyncs it and renames it over the target
(``atomic.py``): an interrupted save leaves the previous file intact.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from . import backend
from .atomic import atomic_writer
from .tensor import Tensor

MAGIC = b"TGLM"
VERSION = 1
_PREFIX = struct.Struct("<4sIQ")
_DIGEST = 32


class CheckpointError(ValueError):
    """A file that is not a readable tinygrad_lm checkpoint (truncated, corrupt, foreign)."""


def _encode(obj: Any, arrays: list[np.ndarray], where: str) -> Any:
    if isinstance(obj, Tensor) or backend.is_array(obj) or isinstance(obj, np.generic):
        array = backend.to_host(obj.data if isinstance(obj, Tensor) else np.asarray(obj)
                                if isinstance(obj, np.generic) else obj)
        if array.dtype.kind not in "biufc":
            raise TypeError(f"save: {where} has dtype {array.dtype}, which is not numeric")
        arrays.append(np.ascontiguousarray(array))
        node = {"__array__": len(arrays) - 1, "dtype": array.dtype.newbyteorder("<").str,
                "shape": list(array.shape)}
        if isinstance(obj, Tensor):
            node["tensor"] = True
        return node
    if isinstance(obj, dict):
        for key in obj:
            if not isinstance(key, str):
                raise TypeError(f"save: {where} has a key {key!r} that is not a string")
        return {"__dict__": {k: _encode(v, arrays, f"{where}[{k!r}]") for k, v in obj.items()}}
    if isinstance(obj, (list, tuple)):
        return {"__list__": [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)],
                "tuple": isinstance(obj, tuple)}
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return {"__float__": repr(obj)}  # keeps nan and inf, which JSON cannot
    raise TypeError(f"save: {where} is a {type(obj).__name__}; only dicts, lists, arrays, "
                    "tensors, numbers, strings, bools and None can be saved")


def save(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write ``obj`` to ``path`` atomically (see the module docstring for the format)."""
    arrays: list[np.ndarray] = []
    tree = _encode(obj, arrays, "obj")
    offset, layout = 0, []
    for array in arrays:
        layout.append({"offset": offset, "nbytes": array.nbytes})
        offset += array.nbytes
    header = json.dumps({"tree": tree, "arrays": layout}).encode("utf-8")
    with atomic_writer(path) as f:
        digest = hashlib.sha256()
        for chunk in [_PREFIX.pack(MAGIC, VERSION, len(header)), header] + \
                     [a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes() for a in arrays]:
            f.write(chunk)
            digest.update(chunk)
        f.write(digest.digest())


def load(path: str | os.PathLike[str]) -> Any:
    """Read what ``save`` wrote. Arrays come back as NumPy arrays, tensors as cpu Tensors."""
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) < _PREFIX.size + _DIGEST:
        raise CheckpointError(f"{path}: too short to be a tinygrad_lm checkpoint ({len(raw)} bytes)")
    magic, version, header_len = _PREFIX.unpack_from(raw)
    if magic != MAGIC:
        raise CheckpointError(f"{path}: not a tinygrad_lm checkpoint (bad magic {magic!r})")
    if version != VERSION:
        raise CheckpointError(f"{path}: format version {version}, this library reads {VERSION}")
    body, digest = raw[:-_DIGEST], raw[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise CheckpointError(f"{path}: checksum mismatch: the file is truncated or corrupt")
    start = _PREFIX.size + header_len
    try:
        header = json.loads(body[_PREFIX.size:start].decode("utf-8"))
        data = memoryview(body)[start:]
        arrays = []
        for spec in header["arrays"]:
            if spec["offset"] + spec["nbytes"] > len(data):
                raise CheckpointError(f"{path}: array data runs past the end of the file")
            arrays.append(data[spec["offset"]:spec["offset"] + spec["nbytes"]])
        return _decode(header["tree"], arrays, path)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{path}: malformed header: {exc}") from None


def _decode(node: Any, buffers: list[memoryview], path: Path) -> Any:
    if not isinstance(node, dict):
        return node
    if "__array__" in node:
        dtype = np.dtype(node["dtype"])
        if dtype.kind not in "biufc" or dtype.hasobject:
            raise CheckpointError(f"{path}: refusing array dtype {dtype}")
        array = np.frombuffer(buffers[node["__array__"]], dtype=dtype).reshape(node["shape"])
        array = array.astype(dtype.newbyteorder("="))  # a writable, native-order copy
        return Tensor(array) if node.get("tensor") else array
    if "__dict__" in node:
        return {k: _decode(v, buffers, path) for k, v in node["__dict__"].items()}
    if "__list__" in node:
        items = [_decode(v, buffers, path) for v in node["__list__"]]
        return tuple(items) if node.get("tuple") else items
    if "__float__" in node:
        return float(node["__float__"])
    raise CheckpointError(f"{path}: unknown node in header: {sorted(node)}")
