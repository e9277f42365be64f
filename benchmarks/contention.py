"""Busy processes for a contention run: the step timed while other CPU-bound work runs,
as on a shared machine."""
from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from typing import Iterator

BUSY_LOOP = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\n" \
            "while time.monotonic() < end:\n    pass\n"
"""One core's worth of pure-Python work that stops by itself after ``argv[1]`` seconds."""


@contextmanager
def busy_processes(count: int, limit_s: float = 3600.0) -> Iterator[list[int]]:
    """Run ``count`` CPU-bound processes (a pure-Python loop each) while the block runs;
    yields their pids. They are killed when the block ends, and end by themselves after
    ``limit_s`` in any case (should this process die without killing them)."""
    processes = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(limit_s)])
                 for _ in range(count)]
    try:
        yield [p.pid for p in processes]
    finally:
        for p in processes:
            p.kill()
            p.wait()
