"""Text corpora: a built-in one that needs no download, tiny-shakespeare, and any text file.

`load_corpus(spec)` is the single entry point; `spec` is a built-in name or a file path:

- ``"stdlib"`` (the default): the Python standard library's own top-level ``.py`` modules,
  read in sorted file-name order and concatenated until about 1 MB. Every machine that runs
  the project has them, so training works offline with no arguments. Modules whose name
  starts with ``_`` are left out because some of them are generated per platform
  (``_sysconfigdata_*``); line endings are normalised to ``\\n``. The same Python version
  therefore gives the same text on every machine; another version gives a similar text.
- ``"shakespeare"``: tiny-shakespeare (about 1.1 MB), downloaded once from its public URL,
  verified by SHA-256 and cached in the user cache directory (see `cache_dir`). The
  environment variable ``TINYGRAD_LM_SHAKESPEARE`` may name a local copy instead.
- anything else is read as a UTF-8 text file.

A built-in name wins over a file of the same name in the working directory; write
``./stdlib`` to read such a file.
"""
from __future__ import annotations

import hashlib
import os
import sysconfig
import urllib.error
import urllib.request
from pathlib import Path

from ..atomic import atomic_write_bytes

DEFAULT_CORPUS = "stdlib"

STDLIB_MAX_CHARS = 1_000_000

SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
SHAKESPEARE_FILENAME = "tinyshakespeare.txt"

BUILTIN_CORPORA = ("stdlib", "shakespeare")

_DOWNLOAD_TIMEOUT_S = 30.0


class DataError(ValueError):
    """A corpus, tokenizer or dataset problem the user can fix (bad path, bad text, ...)."""


def cache_dir() -> Path:
    """The directory for downloads and prepared datasets.

    ``$TINYGRAD_LM_CACHE`` if set, else ``$XDG_CACHE_HOME/tinygrad_lm``, else
    ``~/.cache/tinygrad_lm``. It is not created here.
    """
    override = os.environ.get("TINYGRAD_LM_CACHE")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "tinygrad_lm"


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of `data` as lowercase hex."""
    return hashlib.sha256(data).hexdigest()


def load_corpus(spec: str = DEFAULT_CORPUS) -> str:
    """Return the text named by `spec`: a built-in corpus name or a text file path."""
    if spec == "stdlib":
        return stdlib_corpus()
    if spec == "shakespeare":
        return shakespeare_corpus()
    return read_text_file(spec)


def stdlib_files() -> list[Path]:
    """The standard-library modules the ``stdlib`` corpus draws from, in sorted order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.glob("*.py") if not p.name.startswith("_") and p.is_file())
    if not files:
        raise DataError(f"no Python standard-library sources found in {root}; "
                        "pass a text file path instead of the 'stdlib' corpus")
    return files


def stdlib_corpus(max_chars: int = STDLIB_MAX_CHARS) -> str:
    """Concatenate whole stdlib modules, each after a one-line header, up to `max_chars`.

    Whole files only (the first one always), so the text never ends mid-file.
    """
    parts: list[str] = []
    total = 0
    for path in stdlib_files():
        source = path.read_bytes().decode("utf-8", errors="replace")
        chunk = f"# ===== {path.name} =====\n" + source.replace("\r\n", "\n")
        if parts and total + len(chunk) > max_chars:
            break
        parts.append(chunk)
        total += len(chunk)
    return "".join(parts)


def read_text_file(path: str | os.PathLike[str]) -> str:
    """Read a UTF-8 text file, with an error naming the path when it is unusable."""
    p = Path(path).expanduser()
    if not p.exists():
        builtins = ", ".join(repr(n) for n in BUILTIN_CORPORA)
        raise DataError(f"corpus file {str(p)!r} does not exist "
                        f"(built-in corpora: {builtins})")
    if not p.is_file():
        raise DataError(f"corpus path {str(p)!r} is not a regular file")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read corpus file {str(p)!r}: {exc}") from exc
    return decode_text(raw, str(p))


def decode_text(raw: bytes, name: str) -> str:
    """Decode UTF-8 bytes (a leading BOM is dropped); `name` is used in error messages."""
    if not raw:
        raise DataError(f"corpus file {name!r} is empty")
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise DataError(f"corpus file {name!r} contains a NUL byte at offset {nul}; "
                        "it looks binary, not text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"corpus file {name!r} is not UTF-8 text: invalid byte "
                        f"0x{raw[exc.start]:02x} at offset {exc.start}") from exc
    text = text.removeprefix("\ufeff")
    if not text:
        raise DataError(f"corpus file {name!r} is empty")
    return text


def fetch_url(url: str) -> bytes:
    """Download `url` and return its bytes (tests replace this to stay offline)."""
    with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
        return response.read()


def shakespeare_corpus(local_path: str | os.PathLike[str] | None = None,
                       cache: str | os.PathLike[str] | None = None) -> str:
    """Return tiny-shakespeare, from `local_path`, ``$TINYGRAD_LM_SHAKESPEARE``, the cache,
    or a download into the cache (in that order), always verified by SHA-256."""
    local = local_path if local_path is not None else os.environ.get("TINYGRAD_LM_SHAKESPEARE")
    if local:
        path = Path(local).expanduser()
        if not path.is_file():
            raise DataError(f"tiny-shakespeare copy {str(path)!r} does not exist or is not a "
                            "file (set by argument or TINYGRAD_LM_SHAKESPEARE)")
        raw = path.read_bytes()
        _check_shakespeare(raw, str(path))
        return decode_text(raw, str(path))
    return decode_text(ensure_shakespeare(cache).read_bytes(), "shakespeare")


def ensure_shakespeare(cache: str | os.PathLike[str] | None = None) -> Path:
    """Return the path of a verified cached tiny-shakespeare, downloading it if needed.

    A cached file whose hash does not match (truncated, edited) is replaced. The download
    is written to a temporary file in the cache directory and renamed into place, so an
    interrupted download never leaves a partial file under the final name.
    """
    directory = Path(cache).expanduser() if cache is not None else cache_dir()
    target = directory / SHAKESPEARE_FILENAME
    if target.is_file() and sha256_hex(target.read_bytes()) == SHAKESPEARE_SHA256:
        return target
    try:
        raw = fetch_url(SHAKESPEARE_URL)
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(
            f"could not download tiny-shakespeare from {SHAKESPEARE_URL} ({exc}). Without "
            "network access, download that file on another machine and pass its path "
            "instead (for example --data /path/to/input.txt), or set "
            f"TINYGRAD_LM_SHAKESPEARE=/path/to/input.txt, or copy it to {target}"
        ) from exc
    _check_shakespeare(raw, SHAKESPEARE_URL)
    atomic_write_bytes(target, raw)
    return target


def _check_shakespeare(raw: bytes, origin: str) -> None:
    digest = sha256_hex(raw)
    if digest != SHAKESPEARE_SHA256:
        raise DataError(f"tiny-shakespeare from {origin} has SHA-256 {digest}, expected "
                        f"{SHAKESPEARE_SHA256}: the file is corrupt or a different text "
                        "(to train on another text, pass its path as the corpus)")
