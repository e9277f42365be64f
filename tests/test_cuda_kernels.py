"""The fused CUDA kernels (tinygrad_lm/cuda_kernels.py), checked with and without a GPU.

Without a GPU, ``kernel_emulator`` compiles each kernel's body for the CPU, and the ops in
fused.py and the Adam update run their GPU branches on NumPy arrays through it: the kernels'
math and the code that calls them (argument order, broadcasting, reductions' axes) are
checked against the NumPy path, the reference compositions and central differences. nvcc,
when the machine has it, checks that the bodies are valid CUDA. On a GPU, the real kernels
are compared with the cpu.
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
import tinygrad_lm.nn.functional as F
from tinygrad_lm import Tensor, cuda_kernels, nn, optim

import kernel_emulator
from test_fused import CASES, _fresh, _over_tensors, test_fused_equals_reference_forward_and_backward

KERNELS = [k for k in vars(cuda_kernels).values()
           if isinstance(k, (cuda_kernels.Elementwise, cuda_kernels.Reduction))]
KERNEL_CASES = [c for c in CASES if c.name in
                ("cross_entropy", "layer_norm", "layer_norm_no_bias", "layer_norm_plain", "gelu")]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> kernel_emulator.Emulator:
    if kernel_emulator.COMPILER is None:
        pytest.skip("no C++ compiler to build the kernels for the cpu")
    return kernel_emulator.Emulator(tmp_path_factory.mktemp("kernels"))


@pytest.fixture
def kernels_on_cpu(monkeypatch: pytest.MonkeyPatch, emulator: kernel_emulator.Emulator) -> None:
    """NumPy arrays take the GPU branches, with each kernel run by the emulator."""
    monkeypatch.setattr(cuda_kernels, "applies_to", lambda xp: True)
    monkeypatch.setattr(cuda_kernels, "run", emulator)


def test_every_kernel_is_used_and_the_emulator_is_switched_in(
        kernels_on_cpu: None, emulator: kernel_emulator.Emulator) -> None:
    source = "".join(Path(tl.__file__).parent.joinpath(f).read_text()
                     for f in ("fused.py", "optim/adam.py"))
    names = [name for name, value in vars(cuda_kernels).items() if value in KERNELS]
    assert len(names) == len(KERNELS) >= 10
    for name in names:
        assert f"cuda_kernels.{name}" in source, f"{name} is defined but never run"
    assert cuda_kernels.applies_to(np) and cuda_kernels.run is emulator


@pytest.mark.parametrize("case", KERNEL_CASES, ids=repr)
def test_kernels_equal_reference_forward_and_backward(kernels_on_cpu: None, case: Any) -> None:
    test_fused_equals_reference_forward_and_backward(case)


@pytest.mark.parametrize("case", KERNEL_CASES, ids=repr)
def test_kernels_pass_gradcheck(kernels_on_cpu: None, case: Any) -> None:
    inputs = case.make(np.random.default_rng(1))
    assert tl.gradcheck(*_over_tensors(case.fused_fn, _fresh(inputs)))


def _forward_backward(fn: Any, arrays: list[np.ndarray], seed: int) -> list[np.ndarray]:
    tensors = [Tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    out = fn(*tensors)
    out.backward(Tensor(np.random.default_rng(seed).standard_normal(out.shape)
                        .astype(out.dtype)))
    return [out.numpy()] + [t.grad.numpy() for t in tensors if t.requires_grad]


_OPS = {
    "gelu": (lambda x: F.gelu(x), lambda r, n, c: [r.standard_normal((n, c)) * 3]),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, (x.shape[-1],), w, b),
                   lambda r, n, c: [r.standard_normal((n, c)) * 2 + 1,
                                    r.standard_normal(c), r.standard_normal(c)]),
    "cross_entropy": (lambda z, t: F.cross_entropy(z, t, ignore_index=1, reduction="sum"),
                      lambda r, n, c: [r.standard_normal((n, c)) * 4,
                                       r.integers(0, c, n).astype(np.int64)]),
}


@given(op=st.sampled_from(sorted(_OPS)), rows=st.integers(1, 9), cols=st.integers(2, 17),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_kernels_match_the_numpy_path(emulator: kernel_emulator.Emulator, op: str, rows: int,
                                      cols: int, dtype: Any, seed: int) -> None:
    fn, make = _OPS[op]
    arrays = [a.astype(dtype) if a.dtype.kind == "f" else a
              for a in make(np.random.default_rng(seed), rows, cols)]
    expected = _forward_backward(fn, arrays, seed)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cuda_kernels, "applies_to", lambda xp: True)
        patch.setattr(cuda_kernels, "run", emulator)
        actual = _forward_backward(fn, arrays, seed)
    tolerance = 2e-5 if dtype == np.float32 else 1e-12
    for a, e in zip(actual, expected):
        assert a.dtype == e.dtype == dtype
        np.testing.assert_allclose(a, e, rtol=tolerance, atol=tolerance)


def _train(optimizer: Any, steps: int = 4) -> list[np.ndarray]:
    tl.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.GELU(), nn.Linear(7, 3))
    opt = optimizer(model.parameters())
    x = tl.randn(6, 5)
    for _ in range(steps):
        opt.zero_grad()
        (model(x) ** 2).mean().backward()
        opt.step()
    return [p.numpy() for p in model.parameters()]


@pytest.mark.parametrize("optimizer", [
    lambda ps: optim.Adam(ps, lr=0.05),
    lambda ps: optim.Adam(ps, lr=0.05, betas=(0.8, 0.9), weight_decay=0.1),
    lambda ps: optim.AdamW(ps, lr=0.05, weight_decay=0.3, eps=1e-6),
], ids=["adam", "adam_l2", "adamw"])
def test_adam_kernel_matches_the_flat_update(kernels_on_cpu: None, optimizer: Any) -> None:
    with_kernel = _train(optimizer)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cuda_kernels, "applies_to", lambda xp: False)
        flat = _train(optimizer)
    for a, b in zip(with_kernel, flat):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(with_kernel[0], _train(optimizer, steps=0)[0])


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
def test_kernel_bodies_compile_as_cuda(tmp_path: Path) -> None:
    source = tmp_path / "kernels.cu"
    source.write_text(kernel_emulator.cuda_source(KERNELS))
    result = subprocess.run(["nvcc", "-c", "-o", str(tmp_path / "kernels.o"), str(source)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_cuda_kernels_match_the_cpu(device: str) -> None:
    if device == "cpu":
        pytest.skip("compares the GPU with the cpu")
    for name, (fn, make) in sorted(_OPS.items()):
        arrays = [a.astype(np.float32) if a.dtype.kind == "f" else a
                  for a in make(np.random.default_rng(3), 37, 65)]
        on_cpu = _forward_backward(fn, arrays, 4)
        tensors = [Tensor(a, device=device, requires_grad=a.dtype.kind == "f") for a in arrays]
        out = fn(*tensors)
        out.backward(Tensor(np.random.default_rng(4).standard_normal(out.shape)
                            .astype(out.dtype), device=device))
        on_gpu = [out.numpy()] + [t.grad.numpy() for t in tensors if t.requires_grad]
        for a, b in zip(on_gpu, on_cpu):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=name)
