"""CPU threads for the hot paths: big arrays processed in cache-sized blocks on a thread pool.

NumPy runs one elementwise op on one core, and a pass over a 100 MB array mostly waits for
memory. Cutting the rows of such an array into blocks of a few hundred KB helps twice: each
block's chain of ops (GELU's dozen passes, softmax's five) stays in the cache, and the blocks
run on all cores at once, because NumPy releases the GIL inside its loops.

Blocks whose work includes matmuls (attention) run with BLAS limited to one thread, so the
threads do not fight over the cores with BLAS's own threads; where the BLAS library cannot
be told that, those blocks run one after another on the calling thread.

After each matmul OpenBLAS's threads spin, waiting for the next one, for about 2^28 cycles
(a tenth of a second): long enough to take the cores away from the pool's threads. Imported
before NumPy, this module shortens the spin to about 2^18 cycles
(``OPENBLAS_THREAD_TIMEOUT=18``, unless the variable is already set): back-to-back matmuls
still find the threads awake, and the pool then uses as many threads as BLAS does. When
NumPy was loaded first the spin cannot be changed any more, and the pool keeps to one
thread. ``TINYGRAD_LM_NUM_THREADS`` overrides the choice. CuPy arrays never come here.

``tune_malloc`` keeps freed memory in the process: without it glibc hands big arrays back to
the system on every free and page-faults them in again on the next step, which cost a fifth
of a GPT training step.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator


def _shorten_blas_spin() -> bool:
    """Set OpenBLAS's spin time if OpenBLAS is not loaded yet; True when its threads will go
    to sleep soon after each call (our setting, or one the user made)."""
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "18")
    value = os.environ.get("OPENBLAS_THREAD_TIMEOUT", "")
    return value.isdigit() and 1 <= int(value) <= 20


BLAS_SPIN_IS_SHORT = _shorten_blas_spin()

from . import backend  # noqa: E402,F401  (loads NumPy, and with it the BLAS library found below)

BLOCK_ELEMENTS = 1 << 19
"""The largest block (2 MiB of float32). Smaller blocks kept in L2 were no faster on one
thread, and on two they spent their time passing the GIL back and forth between NumPy calls
(layer norm forward and backward on 16384 x 384: 34 ms in blocks of 2^15 elements, 12.7 ms
in blocks of 2^19, 22 ms on one thread)."""

MIN_BLOCK_ELEMENTS = 1 << 17
"""The smallest block worth handing to another thread: below it, the hand-over costs more
than the work."""


def _default_threads() -> int:
    """``TINYGRAD_LM_NUM_THREADS``; else BLAS's thread count when its spin is short; else 1."""
    value = os.environ.get("TINYGRAD_LM_NUM_THREADS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    return max(1, int(_BLAS[1]())) if BLAS_SPIN_IS_SHORT and _BLAS is not None else 1


_pool: ThreadPoolExecutor | None = None


def num_threads() -> int:
    """Threads the CPU hot paths use."""
    return _threads


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for the CPU hot paths (1: everything on the calling thread)."""
    global _threads, _pool
    if n < 1:
        raise ValueError(f"set_num_threads: need at least 1 thread, not {n}")
    if _pool is not None and n != _threads:
        _pool.shutdown()
        _pool = None
    _threads = int(n)


def rows_per_block(row_elements: int, rows: int) -> int:
    """Rows per block when ``rows`` rows of ``row_elements`` elements are shared among the
    threads: blocks of at most BLOCK_ELEMENTS, at least MIN_BLOCK_ELEMENTS (and one row)."""
    share = -(-rows * row_elements // _threads)
    block = min(BLOCK_ELEMENTS, max(MIN_BLOCK_ELEMENTS, share))
    return max(1, block // max(1, row_elements))


def for_blocks(n: int, rows: int, fn: Callable[[slice], None], uses_blas: bool = False) -> None:
    """Call ``fn(block)`` for the slices ``[0:rows], [rows:2 rows], ...`` of ``range(n)``.

    ``fn`` must only write its own block of its outputs. With more than one thread the blocks
    are shared out among the pool's threads (in order, so each thread walks through memory);
    an exception in any block is raised here.
    """
    blocks = [slice(start, min(start + rows, n)) for start in range(0, n, rows)]
    threads = min(_threads, len(blocks))
    if threads > 1 and uses_blas and _BLAS is None:
        threads = 1
    if threads <= 1:
        for block in blocks:
            fn(block)
        return
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(_threads, thread_name_prefix="tinygrad_lm")
    share = [blocks[i::threads] for i in range(threads)]

    def run(mine: list[slice]) -> None:
        for block in mine:
            fn(block)

    with blas_threads(1) if uses_blas else contextlib.nullcontext():
        futures = [_pool.submit(run, mine) for mine in share[1:]]
        run(share[0])  # the calling thread takes a share too
        for future in futures:
            future.result()


# ----------------------------------------------------------------------------- BLAS threads

_BLAS_SETTERS = ("openblas_set_num_threads", "openblas_set_num_threads64_",
                 "scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads")


def _find_blas() -> tuple[Any, Any] | None:
    """OpenBLAS's ``set_num_threads`` and ``get_num_threads`` from the library NumPy loaded."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:  # not Linux: no control, blocks with matmuls run on one thread
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for setter in _BLAS_SETTERS:
            getter = setter.replace("set_", "get_")
            if hasattr(lib, setter) and hasattr(lib, getter):
                return getattr(lib, setter), getattr(lib, getter)
    return None


_BLAS = _find_blas()
_threads = _default_threads()


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Run the block with BLAS using ``n`` threads (a no-op where BLAS cannot be told)."""
    if _BLAS is None:
        yield
        return
    set_threads, get_threads = _BLAS
    previous = get_threads()
    set_threads(n)
    try:
        yield
    finally:
        set_threads(previous)


# ----------------------------------------------------------------------------- malloc

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters


def tune_malloc() -> bool:
    """Ask glibc to serve big arrays from its heap (not fresh ``mmap``s) and to keep freed
    memory for reuse; True when it took. ``TINYGRAD_LM_MALLOC=system`` leaves malloc alone."""
    if os.environ.get("TINYGRAD_LM_MALLOC", "") == "system":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))


MALLOC_TUNED = tune_malloc()
