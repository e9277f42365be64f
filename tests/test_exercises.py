"""The tutorial's exercises: every solution passes its checks, every untouched stub fails
them, and the checker reports a missing, empty or broken file in one line (no traceback)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinygrad_lm import exercises

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "examples" / "exercises"
NUMBERS = [e.number for e in exercises.EXERCISES]


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tinygrad_lm", "exercises", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)


def test_one_exercise_per_tutorial_step_with_a_stub_and_a_solution() -> None:
    steps = sorted((ROOT / "examples" / "tutorial").glob("[0-9][0-9]_*.py"))
    assert NUMBERS == list(range(1, len(steps) + 1))
    for e in exercises.EXERCISES:
        assert (FOLDER / e.filename).is_file() and (FOLDER / "solutions" / e.filename).is_file()
    assert sorted(p.name for p in FOLDER.glob("*.py")) == [e.filename for e in exercises.EXERCISES]


def test_the_list_has_one_line_per_exercise_starting_with_its_number() -> None:
    result = _cli()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [str(n) for n in NUMBERS]


@pytest.mark.parametrize("number", NUMBERS)
def test_the_solution_passes(number: int, capsys: pytest.CaptureFixture) -> None:
    solution = FOLDER / "solutions" / exercises.EXERCISES[number - 1].filename
    status = exercises.check(number, solution)
    out = capsys.readouterr().out
    assert status == 0, out
    assert "FAIL" not in out and out.count("  pass  ") >= 2


@pytest.mark.parametrize("number", NUMBERS)
def test_the_untouched_stub_fails_every_check(number: int,
                                              capsys: pytest.CaptureFixture) -> None:
    status = exercises.check(number, FOLDER / exercises.EXERCISES[number - 1].filename)
    out = capsys.readouterr().out
    assert status == 1, out
    assert "  pass  " not in out and "not written yet" in out


def test_check_without_file_finds_the_learners_file_from_a_subdirectory() -> None:
    result = _cli("check", "2", cwd=ROOT / "docs")
    assert result.returncode == 1 and str(FOLDER / "02_sum_to.py") in result.stdout
    assert "Traceback" not in result.stderr


def test_a_wrong_answer_shows_expected_and_actual(tmp_path: Path) -> None:
    wrong = tmp_path / "sum_to.py"
    wrong.write_text("def sum_to(grad, shape):\n    return grad.sum(axis=0)\n", encoding="utf-8")
    result = _cli("check", "2", str(wrong))
    assert result.returncode == 1
    assert "  FAIL  sum_to from (2, 3, 4) to (4,)\n          expected [60. 66. 72. 78.]" \
        in result.stdout
    assert "got      [[12. 14. 16. 18.]" in result.stdout and "0 of 6 checks pass" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("content, message", [
    (None, "no file"),
    ("", "is empty"),
    ("def sum_to(grad, shape)\n    return grad\n", "SyntaxError"),
    ("import not_a_module_anywhere\n", "ModuleNotFoundError"),
    ("def something_else():\n    pass\n", "does not define sum_to"),
])
def test_an_unusable_file_is_one_line_without_traceback(tmp_path: Path, content: str | None,
                                                         message: str) -> None:
    path = tmp_path / "mine.py"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    result = _cli("check", "2", str(path))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr + result.stdout


def test_bad_numbers_and_no_checkout(monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture) -> None:
    assert exercises.check(99) == 2
    assert "no exercise 99" in capsys.readouterr().err
    monkeypatch.setattr(exercises, "exercises_dir", lambda: None)
    assert exercises.check(2) == 2
    assert "checkout of the repository" in capsys.readouterr().err
    missing = _cli("check")
    assert missing.returncode == 2 and "which exercise" in missing.stderr
