"""The CPU thread pool: blocks cover every row once, errors surface, and the blocked fused
ops give the same numbers however the rows are cut and however many threads run them."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import tinygrad_lm as tl
import tinygrad_lm.nn.functional as F
from tinygrad_lm import parallel


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request, monkeypatch):
    before = parallel.num_threads()
    parallel.set_num_threads(request.param)
    yield request.param
    parallel.set_num_threads(before)


@pytest.mark.parametrize("n, rows", [(0, 3), (1, 3), (10, 3), (10, 10), (10, 1)])
def test_blocks_cover_every_row_once(threads, n, rows):
    seen = np.zeros(n, int)
    names = set()

    def fn(block: slice) -> None:
        seen[block] += 1
        names.add(threading.current_thread().name)

    parallel.for_blocks(n, rows, fn)
    assert seen.tolist() == [1] * n
    blocks = -(-n // rows)
    if threads == 1 or blocks < 2:
        assert names == ({threading.current_thread().name} if n else set())
    else:  # the calling thread and a pool thread share the blocks
        assert len(names) == 2


def test_an_error_in_a_block_is_raised_by_the_caller(threads):
    def fn(block: slice) -> None:
        if block.start == 6:
            raise ValueError("block 6 failed")

    with pytest.raises(ValueError, match="block 6 failed"):
        parallel.for_blocks(10, 2, fn)


def _threads_in_a_fresh_process(code: str, **env: str) -> list[str]:
    """What ``code`` prints, run in a new interpreter with ``env`` added to the environment."""
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items()
             if k not in ("OPENBLAS_THREAD_TIMEOUT", "TINYGRAD_LM_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, check=True,
                         capture_output=True, text=True).stdout
    return out.split()


_REPORT = ("from tinygrad_lm import parallel; import os; "
           "print(parallel.num_threads(), os.environ.get('OPENBLAS_THREAD_TIMEOUT'), "
           "parallel._BLAS[1]() if parallel._BLAS else 1)")


def test_imported_before_numpy_the_pool_uses_blas_threads():
    threads, timeout, blas = _threads_in_a_fresh_process(_REPORT)
    assert timeout == "18"
    if parallel._BLAS is not None:
        assert threads == blas


def test_imported_after_numpy_the_pool_keeps_to_one_thread():
    threads, timeout, _ = _threads_in_a_fresh_process("import numpy; " + _REPORT)
    assert (threads, timeout) == ("1", "None")


def test_the_thread_count_can_be_chosen():
    threads, _, _ = _threads_in_a_fresh_process("import numpy; " + _REPORT,
                                                TINYGRAD_LM_NUM_THREADS="3")
    assert threads == "3"


def test_set_num_threads_checks_its_argument():
    with pytest.raises(ValueError, match="at least 1 thread"):
        parallel.set_num_threads(0)


def test_blas_threads_restores_the_thread_count():
    if parallel._BLAS is None:
        pytest.skip("this BLAS cannot be told its thread count")
    _, get = parallel._BLAS
    before = get()
    with parallel.blas_threads(1):
        assert get() == 1
    assert get() == before


def test_rows_per_block_shares_the_work_in_bounded_blocks(threads):
    big, small = parallel.BLOCK_ELEMENTS, parallel.MIN_BLOCK_ELEMENTS
    assert parallel.rows_per_block(10 ** 9, 5) == 1  # at least one row
    assert parallel.rows_per_block(1, 100 * big) == big  # never above the largest block
    assert parallel.rows_per_block(1, 10) == small  # never below the smallest
    assert parallel.rows_per_block(4, big // 4) == max(small, big // threads) // 4


def _grads(fn, *arrays):
    tensors = [tl.Tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    out.backward(tl.Tensor(np.random.default_rng(5).standard_normal(out.shape).astype(out.dtype)))
    return [out.numpy()] + [t.grad.numpy() for t in tensors]


def _same_blocked_and_whole(fn, *arrays, monkeypatch):
    whole = _grads(fn, *arrays)
    monkeypatch.setattr(parallel, "BLOCK_ELEMENTS", 7)
    monkeypatch.setattr(parallel, "MIN_BLOCK_ELEMENTS", 7)
    blocked = _grads(fn, *arrays)
    for a, b in zip(whole, blocked):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_blocked_gelu_matches_one_block(threads, monkeypatch):
    x = np.random.default_rng(0).standard_normal((3, 5, 7)).astype(np.float32)
    _same_blocked_and_whole(F.gelu, x, monkeypatch=monkeypatch)


@pytest.mark.parametrize("mask_kind", ["causal", "batched", "dropout"])
def test_blocked_attention_matches_one_block(threads, monkeypatch, mask_kind):
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((5, 2, 4, 3)).astype(np.float32) for _ in range(3))
    batched = rng.random((5, 1, 4, 4)) > 0.3
    batched[..., 0] = True  # every query sees at least one key

    def attention(q, k, v):
        if mask_kind == "causal":
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        if mask_kind == "batched":
            return F.scaled_dot_product_attention(q, k, v, attn_mask=batched)
        tl.manual_seed(3)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)

    _same_blocked_and_whole(attention, q, k, v, monkeypatch=monkeypatch)


def test_malloc_is_tuned_on_glibc_unless_asked_not_to(monkeypatch):
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert parallel.MALLOC_TUNED
    monkeypatch.setenv("TINYGRAD_LM_MALLOC", "system")
    assert parallel.tune_malloc() is False
