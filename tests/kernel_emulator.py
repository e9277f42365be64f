"""Run the CUDA kernel sources of tinygrad_lm.kernels.cuda on the CPU.

Each kernel body is compiled with the machine's C++ compiler inside a plain loop, the way
CuPy wraps it in a CUDA kernel: array inputs are read into ``const`` values, scalar inputs
are arguments in scope everywhere (a reduction's ``post_map_expr`` may use them, as
CuPy's own variance kernel does), outputs are references into their arrays, ``T`` is the
float type and ``S`` the integer type. NumPy does the broadcasting. This checks the
kernels' math (and, through ``run``, the functions of kernels/cuda.py that call them) where
there is no GPU; CuPy's own launch machinery is exercised only on a GPU.
"""
from __future__ import annotations

import ctypes
import hashlib
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from tinygrad_lm.kernels.cuda import Elementwise, Reduction

COMPILER = shutil.which("g++") or shutil.which("c++")
_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
_INT = np.dtype(np.int64)
_PRELUDE = """#include <cmath>
using std::erf; using std::exp; using std::log; using std::sqrt;
typedef {ctype} T;
typedef long long S;
"""


def params(spec: str) -> list[tuple[str, str]]:
    """``"T x, S t"`` -> [("T", "x"), ("S", "t")]."""
    return [tuple(p.split()) for p in spec.split(",")]  # type: ignore[misc]


def _reads(names: list[tuple[str, str]], scalars: frozenset[str], index: str) -> str:
    return " ".join(f"const {t} {n} = _in_{n}[{index}];" for t, n in names if n not in scalars)


def _signature(inputs: list[tuple[str, str]], outputs: list[tuple[str, str]],
               scalars: frozenset[str]) -> str:
    return ", ".join([f"const {t} {n}" if n in scalars else f"const {t}* _in_{n}"
                      for t, n in inputs] + [f"{t}* _out_{n}" for t, n in outputs])


def source(kernel: "Elementwise | Reduction", ctype: str, scalars: frozenset[str]) -> str:
    """C++ for ``kernel`` with ``T`` = ``ctype``, exported as ``extern "C" run``; the inputs
    named in ``scalars`` are passed by value."""
    inputs, outputs = params(kernel.in_params), params(kernel.out_params)
    signature = _signature(inputs, outputs, scalars)
    refs = " ".join(f"{t}& {n} = _out_{n}[_k];" for t, n in outputs)
    if isinstance(kernel, Elementwise):
        body = f"""extern "C" void run(long _n, {signature}) {{
  for (long _k = 0; _k < _n; ++_k) {{ {_reads(inputs, scalars, "_k")} {refs} {kernel.operation} }}
}}"""
    else:
        body = f"""extern "C" void run(long _rows, long _width, {signature}) {{
  for (long _k = 0; _k < _rows; ++_k) {{
    T a = (T)({kernel.identity});
    for (long _j = 0; _j < _width; ++_j) {{
      {_reads(inputs, scalars, "_k * _width + _j")}
      T b = ({kernel.map_expr});
      a = ({kernel.reduce_expr});
    }}
    {refs} {kernel.post_map_expr};
  }}
}}"""
    return _PRELUDE.format(ctype=ctype) + body


class Emulator:
    """Compiles kernels on first use into ``build_dir`` and runs them on NumPy arrays with
    the calling convention of ``kernels.cuda.run``."""

    def __init__(self, build_dir: Path) -> None:
        self.build_dir = build_dir
        self._libraries: dict[str, Any] = {}

    def _function(self, kernel: "Elementwise | Reduction", dtype: np.dtype,
                  scalars: frozenset[str]) -> Any:
        code = source(kernel, _CTYPES[dtype], scalars)
        key = hashlib.sha256(code.encode()).hexdigest()[:16]
        if key not in self._libraries:
            src, lib = self.build_dir / f"{key}.cpp", self.build_dir / f"{key}.so"
            src.write_text(code)
            subprocess.run([COMPILER, "-O1", "-shared", "-fPIC", "-o", str(lib), str(src)],
                           check=True, capture_output=True, text=True)
            self._libraries[key] = ctypes.CDLL(str(lib)).run
        return self._libraries[key]

    def __call__(self, kernel: "Elementwise | Reduction", *args: Any, axis: int | None = None,
                 keepdims: bool = False) -> Any:
        inputs, outputs = params(kernel.in_params), params(kernel.out_params)
        assert len(args) in (len(inputs), len(inputs) + len(outputs)), \
            f"{kernel.name} takes {len(inputs)} inputs (and optionally {len(outputs)} outputs)"
        dtype = next(a.dtype for a in args if isinstance(a, np.ndarray) and a.dtype.kind == "f")
        types = {"T": dtype, "S": _INT}
        scalars = frozenset(n for a, (_, n) in zip(args, inputs) if not isinstance(a, np.ndarray))
        arrays = [a for a, (_, n) in zip(args, inputs) if n not in scalars]
        for a, (t, n) in zip(args, inputs):
            if n not in scalars:
                assert a.dtype == types[t], f"{kernel.name}: {n} is {a.dtype}, wants {types[t]}"
        arrays = [np.ascontiguousarray(a) for a in np.broadcast_arrays(*arrays)]
        scalar_args = {n: (ctypes.c_float if types[t] == np.float32 else
                           ctypes.c_double if types[t] == np.float64 else ctypes.c_longlong)(a)
                       for a, (t, n) in zip(args, inputs) if n in scalars}
        run = self._function(kernel, dtype, scalars)

        def call(*sizes: int, outs: list[np.ndarray], data: list[np.ndarray]) -> None:
            pointers = iter(ctypes.c_void_p(a.ctypes.data) for a in data)
            run(*[ctypes.c_long(s) for s in sizes],
                *[scalar_args[n] if n in scalars else next(pointers) for _, n in inputs],
                *[ctypes.c_void_p(o.ctypes.data) for o in outs])

        if isinstance(kernel, Elementwise):
            given = list(args[len(inputs):])
            shape = np.broadcast_shapes(*[a.shape for a in arrays + given])
            arrays = [np.ascontiguousarray(np.broadcast_to(a, shape)) for a in arrays]
            if given:  # outputs passed in are read and written in place
                assert all(o.flags.c_contiguous and o.shape == shape for o in given)
            outs = given or [np.empty(shape, types[t]) for t, _ in outputs]
            call(int(np.prod(shape)), outs=outs, data=arrays)
            return outs[0] if len(outs) == 1 else tuple(outs)
        assert len(outputs) == 1 and axis is not None
        moved = [np.ascontiguousarray(np.moveaxis(a, axis, -1)) for a in arrays]
        out = np.empty(moved[0].shape[:-1], types[outputs[0][0]])
        call(out.size, moved[0].shape[-1], outs=[out], data=moved)
        return np.expand_dims(out, axis) if keepdims else out


def cuda_source(kernels: "list[Elementwise | Reduction]") -> str:
    """One CUDA translation unit with each kernel's body in a ``__global__`` loop, for T =
    float and T = double: nvcc accepting it shows the bodies are valid CUDA C++ (the same
    functions, overloads and literals that NVRTC sees when CuPy compiles them)."""
    units = []
    for ctype in ("float", "double"):
        for number, kernel in enumerate(kernels):
            scalars = frozenset(n for _, n in params(kernel.in_params)
                                if isinstance(kernel, Reduction) and
                                re.search(rf"\b{n}\b", kernel.post_map_expr))
            cpu = source(kernel, ctype, scalars).split("\n", 2)[2]  # without the #include
            cpu = cpu.replace('extern "C" void run', "__global__ void run")
            units.append(f"namespace k{number}_{ctype} {{\n{cpu}\n}}")
    return "\n".join(units)
