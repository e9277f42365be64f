"""The examples run as a user runs them (a subprocess from the command line) and learn."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_train_mlp_quick_separates_the_spirals(tmp_path: Path) -> None:
    # run from elsewhere, as a script: the example must find the package by itself
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "train_mlp.py"), "--quick"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    found = dict(re.findall(r"^\s*(\S+): loss .* test accuracy\s+([\d.]+)%", result.stdout,
                            flags=re.MULTILINE))
    assert set(found) == {"sgd+momentum", "adam", "adamw"}, result.stdout
    for name, percent in found.items():
        # a linear model scores about 50% on two spirals; only a trained MLP gets near 100%
        assert float(percent) >= 90.0, f"{name}: {result.stdout}"


def test_train_mlp_options(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "train_mlp.py"), "--quick",
                             "--steps", "3", "--activation", "relu", "--device", "cpu"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "3 full-batch steps on cpu" in result.stdout and "(relu)" in result.stdout
    bad = subprocess.run([sys.executable, str(ROOT / "examples" / "train_mlp.py"),
                          "--activation", "sigmoid"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "activation" in bad.stderr
