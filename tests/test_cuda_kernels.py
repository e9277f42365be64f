"""The CUDA kernels (tinygrad_lm/kernels/cuda.py), checked with and without a GPU.

Without a GPU, ``kernel_emulator`` compiles each kernel's body for the CPU, and the
functions of cuda.py run on NumPy arrays through it: the kernels' math and the code that
calls them (argument order, broadcasting, reductions' axes) are checked against the
reference kernels, and the fused ops running on them against central differences. nvcc,
when the machine has it, checks that the bodies are valid CUDA. On a GPU, the real kernels
are compared with the reference kernels on the same arrays.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_lm as tl
from tinygrad_lm import kernels
from tinygrad_lm.kernels import cuda

import kernel_cases
import kernel_emulator
from test_fused import CASES, _fresh, _over_tensors

KERNELS = [k for k in vars(cuda).values() if isinstance(k, (cuda.Elementwise, cuda.Reduction))]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> kernel_emulator.Emulator:
    if kernel_emulator.COMPILER is None:
        pytest.skip("no C++ compiler to build the kernels for the cpu")
    return kernel_emulator.Emulator(tmp_path_factory.mktemp("kernels"))


@pytest.fixture
def emulated(monkeypatch: pytest.MonkeyPatch, emulator: kernel_emulator.Emulator) -> None:
    """cuda.py's kernels run by the emulator."""
    monkeypatch.setattr(cuda, "run", emulator)


def test_every_kernel_is_used(emulated: None, emulator: kernel_emulator.Emulator) -> None:
    source = Path(cuda.__file__).read_text()
    names = [name for name, value in vars(cuda).items() if value in KERNELS]
    assert len(names) == len(KERNELS) >= 10
    for name in names:
        assert f"run({name}," in source, f"{name} is defined but never run"
    assert cuda.run is emulator


@pytest.mark.parametrize("case", sorted(kernel_cases.CASES))
@given(rows=st.sampled_from([0, 1, 2, 5]), width=st.integers(1, 40),
       dtype=st.sampled_from([np.float32, np.float64]), extreme=st.booleans(),
       seed=st.integers(0, 2 ** 16))
def test_cuda_kernel_equals_reference(emulated: None, case: str, rows: int, width: int,
                                      dtype: Any, extreme: bool, seed: int) -> None:
    expected, actual = kernel_cases.run_both(case, cuda, np.random.default_rng(seed), dtype,
                                             rows, width, extreme)
    kernel_cases.assert_close(expected, actual, dtype, extreme, case)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_fused_ops_on_the_cuda_kernels_pass_gradcheck(emulated: None,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      case: Any) -> None:
    monkeypatch.setattr(kernels, "for_array", lambda array: cuda)
    inputs = case.make(np.random.default_rng(1))
    assert tl.gradcheck(*_over_tensors(case.fused_fn, _fresh(inputs)))


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
def test_kernel_bodies_compile_as_cuda(tmp_path: Path) -> None:
    source = tmp_path / "kernels.cu"
    source.write_text(kernel_emulator.cuda_source(KERNELS))
    result = subprocess.run(["nvcc", "-c", "-o", str(tmp_path / "kernels.o"), str(source)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("case", sorted(kernel_cases.CASES))
def test_cuda_kernels_on_a_gpu_equal_reference(device: str, case: str) -> None:
    if device == "cpu":
        pytest.skip("runs the kernels on a GPU")
    xp = tl.backend.get_device(device).xp
    for dtype in (np.float32, np.float64):
        for rows, width, extreme in ((0, 5, False), (37, 65, False), (9, 33, True)):
            expected, actual = kernel_cases.run_both(
                case, cuda, np.random.default_rng(rows), dtype, rows, width, extreme,
                to_device=xp.asarray, to_host=lambda a: a.get() if hasattr(a, "get") else a)
            kernel_cases.assert_close(expected, actual, dtype, extreme, case)
