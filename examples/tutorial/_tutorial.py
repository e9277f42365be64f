"""What steps 2 to 6 of the tutorial share: a check that stops the script when it fails.

(Step 1 keeps its own copy: it uses nothing outside its own file.)
"""
from __future__ import annotations

import sys


def check(ok: bool, what: str) -> None:
    """Print a passed check; stop with exit status 1 at a failed one."""
    if not ok:
        sys.exit(f"FAILED: {what}")
    print(f"  ok: {what}")
