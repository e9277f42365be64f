"""The backend boundary: only a few modules touch NumPy, CuPy is optional with a clear error,
and the array helpers (erf, scatter-add) are exact enough."""
from __future__ import annotations

import ast
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_lm as tl
from tinygrad_lm import backend

PACKAGE = Path(tl.__file__).resolve().parent
# Modules allowed to import NumPy: the backend and global config; the Tensor's host-side
# conversions; the float64 gradient checker and its table of checks (host-side inputs);
# the file format; the data package (tokenizers, batches on the host); the MPI transport,
# which sends host buffers; and the package __init__, which only re-exports NumPy's dtype
# objects as tl.float32 etc.
NUMPY_ALLOWED = {"backend.py", "config.py", "tensor.py", "gradcheck.py", "serialization.py",
                 "checks.py", "distributed.py", "__init__.py", "safetensors.py",
                 "models/pretrained.py",  # host arrays to and from files
                 "kernels/cpu.py"}  # (the compiled CPU kernels are NumPy-only by design)


def _imports_numpy(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import) and \
                any(a.name.split(".")[0] == "numpy" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and \
                (node.module or "").split(".")[0] == "numpy":
            return True
    return False


def test_only_the_backend_boundary_imports_numpy() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "data" or str(relative) in NUMPY_ALLOWED:
            continue
        if _imports_numpy(path):
            offenders.append(str(relative))
    assert not offenders, f"import numpy outside the backend boundary (use backend xp): {offenders}"


def test_the_numpy_import_check_sees_imports() -> None:
    assert _imports_numpy(PACKAGE / "backend.py")
    assert not _imports_numpy(PACKAGE / "autograd.py")


def test_cuda_without_cupy_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    monkeypatch.setattr(backend, "_devices", {"cpu": backend.CPU})
    for spec in ("cuda", "cuda:1"):
        with pytest.raises(RuntimeError, match=r"CuPy.*pip install"):
            backend.get_device(spec)
    with pytest.raises(RuntimeError, match="pip install"):
        tl.zeros(2, device="cuda")


def test_unknown_device_is_a_clear_error() -> None:
    for spec in ("tpu", "cuda:x", "cuda:"):
        with pytest.raises(ValueError, match=f"unknown device '{spec}'"):
            backend.get_device(spec)


def test_get_device_resolves_names_and_devices(device: str) -> None:
    dev = backend.get_device(device)
    assert dev.name == device and backend.get_device(dev) is dev
    assert backend.get_device("cpu") is backend.CPU and backend.CPU.xp is np
    assert backend.get_device(None).name == tl.ones(1).device  # the default device
    if device != "cpu":
        assert backend.get_device("cuda") is backend.get_device("cuda:0")


def test_device_of_and_same_device(device: str) -> None:
    dev = backend.get_device(device)
    a, b = dev.xp.ones(3), dev.xp.zeros((2, 2))
    assert backend.device_of(a) is dev and backend.device_of(b.T) is dev
    assert backend.device_of(a.sum()) is dev  # NumPy reductions return scalars, not arrays
    assert backend.device_of(tl.ones(2, device=device).data) is dev
    assert backend.is_array(a) and not backend.is_array(1.0) and not backend.is_array([1.0])
    assert backend.same_device([a]) and backend.same_device((a, b, a[1:], b.T))
    host = backend.to_host(a)
    assert type(host) is np.ndarray and host.tolist() == [1.0, 1.0, 1.0]
    host[0] = 5.0  # a copy, even on cpu
    assert float(a[0]) == 1.0
    if device != "cpu":
        assert not backend.same_device([a, host]) and not backend.same_device([host, a])


ERF_POINTS = np.concatenate([np.linspace(-6.5, 6.5, 4001), [0.0, 1e-300, -1e-12, 2.5, -2.5,
                                                             2.4999999, 2.5000001, 30.0]])


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-13), (np.float32, 1e-6)])
def test_erf_matches_math_erf(dtype: type, tolerance: float) -> None:
    x = ERF_POINTS.astype(dtype)
    got = backend.erf(x)
    assert got.dtype == dtype and got.shape == x.shape
    expected = np.array([math.erf(float(v)) for v in x])
    assert np.max(np.abs(got.astype(np.float64) - expected)) < tolerance


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_fast_erf_is_odd_and_fills_out_from_a_strided_input(dtype: type) -> None:
    x = ERF_POINTS.astype(dtype)[::2]  # a strided view
    out = np.empty(x.shape, dtype)
    got = backend.erf(x, out=out)
    assert np.shares_memory(got, out) and got.dtype == dtype
    np.testing.assert_array_equal(backend.erf(-x), -got)  # the sign is x's, bit for bit
    assert np.all(np.signbit(got) == np.signbit(x))


def test_erf_of_a_zero_dim_array() -> None:
    assert abs(float(backend.erf(np.array(0.5))) - math.erf(0.5)) < 1e-15


@given(rows=st.integers(1, 6), cols=st.integers(1, 3), data=st.data())
def test_row_scatter_add_equals_np_add_at(rows: int, cols: int, data: st.DataObject) -> None:
    index = data.draw(hnp.arrays(np.int64, st.integers(0, 8),
                                 elements=st.integers(-rows, rows - 1)))
    values = data.draw(hnp.arrays(np.float64, index.shape + (cols,),
                                  elements=st.floats(-10, 10, allow_nan=False)))
    start = data.draw(hnp.arrays(np.float64, (rows, cols), elements=st.floats(-10, 10)))
    got, expected = start.copy(), start.copy()
    backend.index_add(got, (index,), values)
    np.add.at(expected, (index,), values)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_scatter_add_repeats_accumulate_in_2d_index() -> None:
    target = np.zeros((3, 2))
    backend.index_add(target, (np.array([[0, 0], [-1, 0]]),), np.ones((2, 2, 2)))
    np.testing.assert_array_equal(target, [[3, 3], [0, 0], [1, 1]])


def test_malloc_is_tuned_on_glibc_unless_asked_not_to(monkeypatch: pytest.MonkeyPatch) -> None:
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert backend.MALLOC_TUNED
    monkeypatch.setenv("TINYGRAD_LM_MALLOC", "system")
    assert backend.tune_malloc() is False
