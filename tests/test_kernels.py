"""The kernel layer: every fast CPU kernel equals its reference kernel, and the setting
that chooses between them works (``tl.set_kernels``, ``TINYGRAD_LM_KERNELS``, the fallback
without Numba). The CUDA kernels are checked in test_cuda_kernels.py."""
from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_lm as tl
from tinygrad_lm import Tensor, kernels
from tinygrad_lm.kernels import reference

import kernel_cases

cpu = pytest.importorskip("tinygrad_lm.kernels.cpu", reason="the fast CPU kernels need Numba")


@pytest.mark.parametrize("case", sorted(kernel_cases.CASES))
@given(rows=st.sampled_from([0, 1, 2, 3, 7, 33]), width=st.integers(1, 70),
       dtype=st.sampled_from([np.float32, np.float64]), extreme=st.booleans(),
       seed=st.integers(0, 2 ** 16))
def test_cpu_kernel_equals_reference(case: str, rows: int, width: int, dtype: Any,
                                     extreme: bool, seed: int) -> None:
    expected, actual = kernel_cases.run_both(case, cpu, np.random.default_rng(seed), dtype,
                                             rows, width, extreme)
    kernel_cases.assert_close(expected, actual, dtype, extreme, case)


@pytest.mark.parametrize("case", ["gelu", "layer_norm_backward", "cross_entropy_backward",
                                  "attention_backward", "adam_step", "bias_backward",
                                  "sum_of_squares"])
def test_parallel_variants_equal_reference(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parallel variant of each kernel (the threshold lowered so that these inputs take
    it; float32 sums over thousands of rows: tolerances scaled to the largest value)."""
    monkeypatch.setattr(cpu, "PARALLEL_MIN_ELEMENTS", 1024)
    for dtype in (np.float32, np.float64):
        expected, actual = kernel_cases.run_both(case, cpu, np.random.default_rng(1), dtype,
                                                 2003, 67, False)
        kernel_cases.assert_close(expected, actual, dtype, dtype == np.float32, case)


@pytest.mark.parametrize("case", ["attention", "attention_backward"])
@pytest.mark.parametrize("width", [7, 12, 20])  # no mask, a causal mask, dropout: all kinds
def test_attention_in_chunks_of_the_batch_equals_reference(case: str, width: int,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """Scores made, used and dropped a few batch entries at a time (here: one, or three)."""
    for chunk_bytes in (1, 3 * 2 * 8 * 16 * 8):
        monkeypatch.setattr(cpu, "SCORES_CHUNK_BYTES", chunk_bytes)
        expected, actual = kernel_cases.run_both(case, cpu, np.random.default_rng(width),
                                                 np.float64, 10, width, False)
        kernel_cases.assert_close(expected, actual, np.float64, False, case)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_attention_skips_the_keys_a_mask_hides_and_a_row_that_sees_none_is_nan(dtype: Any
                                                                             ) -> None:
    """The passes stop at each row's last visible key (padding on the right, a causal
    diagonal); a row whose mask hides every key gives NaN, as reference.py's 0/0 does."""
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 3, 5, 4)).astype(dtype) for _ in range(3))
    mask = np.triu(np.full((5, 5), -np.inf, dtype), k=1)
    mask[:, 3:] = -np.inf  # padded keys 3 and 4: rows 3 and 4 see keys 0..2 only
    mask[1] = -np.inf      # row 1 sees nothing
    dout = rng.standard_normal(q.shape).astype(dtype)
    results = []
    for implementation in (reference, cpu):
        out = np.zeros_like(q)
        log_sum_exp = implementation.attention(q, k, v, mask, 0.5, None, out)
        grads = [np.zeros_like(q) for _ in range(3)]
        implementation.attention_backward(q, k, v, mask, 0.5, None, log_sum_exp, out, dout,
                                          *grads)
        results.append([out, log_sum_exp, *grads])
    for expected, actual in zip(*results):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6, equal_nan=True)
    assert np.isnan(results[1][0][:, :, 1]).all() and np.isfinite(results[1][0][:, :, 0]).all()


def test_every_reference_kernel_has_a_cpu_and_a_cuda_twin_and_a_case() -> None:
    from tinygrad_lm.kernels import cuda

    names = {n for n, f in vars(reference).items()
             if callable(f) and not n.startswith("_") and f.__module__ == reference.__name__}
    assert names == {function for function, _ in kernel_cases.CASES.values()}
    for name in names:
        assert callable(getattr(cpu, name)) and callable(getattr(cuda, name)), name


def test_fast_float32_exp_and_gaussian_cdf_are_accurate() -> None:
    """The inline float32 exp (arguments <= 0) to a few ulps; Phi to A&S's 1.5e-7."""
    x = np.concatenate([-np.geomspace(1e-8, 87, 4000), [0.0]]).astype(np.float32)
    wide = x.astype(np.float64)
    probs = cpu.softmax(np.stack([x, np.zeros_like(x)], axis=1), -1)[:, 0]  # 1 / (1 + e^-x)
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-wide)), rtol=1e-6, atol=0)
    both = np.concatenate([x, -x])
    exact = both.astype(np.float64) * 0.5 * (1 + np.vectorize(math.erf)(both / np.sqrt(2)))
    assert np.all(np.abs(cpu.gelu(both, "none") - exact) <= 3e-7 * np.abs(both) + 1e-37)
    assert cpu.softmax(np.array([[0.0, -87.4, -1e4, -np.inf]], np.float32), -1).tolist() == \
        [[1.0, 0.0, 0.0, 0.0]]


@pytest.fixture
def restore_kernels() -> Any:
    before = tl.get_kernels()
    yield
    tl.set_kernels(before)


def test_set_kernels_chooses_the_module(restore_kernels: Any) -> None:
    x = np.zeros(3, np.float32)
    tl.set_kernels("fast")
    assert tl.get_kernels() == "fast" and kernels.for_array(x) is cpu
    tl.set_kernels("reference")
    assert tl.get_kernels() == "reference" and kernels.for_array(x) is reference
    with pytest.raises(ValueError, match="'reference' or 'fast'"):
        tl.set_kernels("slow")
    assert tl.get_kernels() == "reference"


def test_both_settings_train_the_same_model(restore_kernels: Any) -> None:
    from tinygrad_lm.models import GPT, GPTConfig

    def losses() -> list[float]:
        tl.manual_seed(0)
        model = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=1, n_head=2, n_embd=8))
        opt = tl.optim.AdamW(model.parameters(), lr=1e-2)
        idx = Tensor(np.random.default_rng(0).integers(0, 11, (3, 8)))
        out = []
        for _ in range(3):
            _, loss = model(idx, idx)
            opt.zero_grad()
            loss.backward()
            tl.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            out.append(loss.item())
        return out

    fast = losses()
    tl.set_kernels("reference")
    np.testing.assert_allclose(losses(), fast, rtol=1e-5)


def _python(code: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_environment_variable_sets_the_default_and_set_kernels_overrides_it() -> None:
    code = ("import tinygrad_lm as tl; print(tl.get_kernels()); tl.set_kernels('fast'); "
            "print(tl.get_kernels())")
    out = _python(code, TINYGRAD_LM_KERNELS="reference")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["reference", "fast"]
    bad = _python("import tinygrad_lm", TINYGRAD_LM_KERNELS="quick")
    assert bad.returncode != 0 and "TINYGRAD_LM_KERNELS must be 'reference' or 'fast'" in bad.stderr


def test_without_numba_the_cpu_runs_the_reference_kernels_with_one_notice() -> None:
    code = """
import sys, warnings
sys.modules['numba'] = None  # importing it now fails, as when it is not installed
import tinygrad_lm as tl
from tinygrad_lm import kernels
from tinygrad_lm.kernels import reference
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    x = tl.randn(4, 5, requires_grad=True)
    for _ in range(3):
        x.gelu().softmax(-1).sum().backward()
print(kernels.for_array(x.data) is reference, len(caught), caught[0].message)
"""
    out = _python(code, TINYGRAD_LM_KERNELS="fast")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("True 1 tinygrad_lm: the compiled CPU kernels need Numba")


def test_big_kernels_from_two_threads_at_once_do_not_abort(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Numba's workqueue pool serves one caller at a time; a second thread runs serially."""
    import threading

    monkeypatch.setattr(cpu, "PARALLEL_MIN_ELEMENTS", 1024)
    x = np.random.default_rng(0).standard_normal(1 << 16).astype(np.float32)
    expected = cpu.gelu(x, "none")
    results: list[Any] = []

    def work() -> None:
        for _ in range(5):
            results.append(cpu.gelu(x, "none"))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 10
    for r in results:
        np.testing.assert_array_equal(r, expected)


def test_the_serial_and_parallel_variants_are_cached_apart(tmp_path) -> None:
    """Numba's disk cache knows a function by its name and line, not by ``parallel=``: under
    one name, the variant compiled first was loaded for both, and every kernel ran on one
    thread (or every one, however small, woke the pool). A fresh process that finds only the
    serial variant cached must compile the parallel one anew."""
    code = """
import sys
import numpy as np
from tinygrad_lm.kernels import cpu
x = np.ones(8, np.float32)
variant = cpu._GELU[int(sys.argv[1])]
variant(x, np.empty_like(x), False)
print(sum(variant.stats.cache_hits.values()))
"""
    cache = {"NUMBA_CACHE_DIR": str(tmp_path)}
    serial = _python(code, "0", **cache)
    parallel = _python(code, "1", **cache)
    assert serial.returncode == parallel.returncode == 0, serial.stderr + parallel.stderr
    assert (serial.stdout.strip(), parallel.stdout.strip()) == ("0", "0")
    assert _python(code, "1", **cache).stdout.strip() == "1"  # now cached, and found
