"""Writing a file so that a crash, a full disk or Ctrl-C never leaves half of it.

The content goes to a temporary file beside the target, is flushed to the disk, and then
renamed over the target in one step: readers see the old file or the new one, never a mix.
The temporary file is created like any other file (mode 0666 less the umask, so usually
0644), not with ``tempfile.mkstemp``'s private 0600, because the target inherits its mode.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import BinaryIO, Iterator


def _create_beside(path: Path) -> tuple[int, Path]:
    """Open a new, uniquely named hidden file in ``path``'s directory for writing."""
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file whose content replaces ``path`` only if the ``with`` block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through ``atomic_writer``."""
    with atomic_writer(path) as f:
        f.write(data)
