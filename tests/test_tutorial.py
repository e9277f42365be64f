"""The tutorial stays runnable and true: every step runs as a learner runs it (``--quick``,
in a subprocess, from another directory) and its own checks pass; every step has its page,
listed in order in the index; the pages' links resolve and their code excerpts exist in the
scripts they explain."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from test_docs import _blocks, _broken_links

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS_DIR = ROOT / "examples" / "tutorial"
PAGES_DIR = ROOT / "docs" / "tutorial"
INDEX = PAGES_DIR / "README.md"
SCRIPTS = sorted(SCRIPTS_DIR.glob("[0-9][0-9]_*.py"))

# Lines each step must print in its quick mode: its final checks, passed.
EXPECTED = {
    "01_scalar_engine": ["ok: df/dx at (1.5, -0.8) matches central differences",
                         "ok: backward through a chain deeper than the recursion limit",
                         "ok: every point classified correctly"],
    "02_array_engine": ["ok: b.grad is w * a summed over the broadcast axis",
                        "ok: sum_to from (2, 3, 4) to (3, 1)",
                        "ok: backward through a chain of 5000 adds",
                        "ok: loss and gradients equal tinygrad_lm's"],
    "03_tensors": ["ok: b.grad is dout summed over the broadcast axis",
                   "ok: gradcheck catches the backward that forgot the factor 2",
                   "ok: second derivative of tanh is -2 tanh (1 - tanh^2)",
                   "ok: under no_grad nothing is recorded"],
    "04_mlp": ["ok: the MLP's test accuracy is at least 95%",
               "ok: the MLP beats the linear model by 5 points or more"],
    "05_attention": ["ok: the fused gradient for k equals the composition's",
                     "ok: only the last position sees the last position",
                     "ok: CausalSelfAttention equals the hand-written one"],
    "06_bigram": ["ok: the all-zero table starts at exactly ln V",
                  "ok: the learned bigram comes within 0.25 nats of counting"],
    "07_transformer_block": ["ok: d wte is d out scatter-added to the rows of the tokens used",
                             "ok: layer_norm equals nn.LayerNorm",
                             "ok: and so do the gradients for x and every parameter",
                             "ok: the residual connections carry over 1000 times more gradient",
                             "ok: the scaled projections keep the stream's growth well below"],
    "08_gpt": ["ok: training lowered the validation loss by over 1 nat",
               "ok: greedy generation with and without the key/value cache writes the same text"],
    "09_sampling": ["ok: the cross-entropy is the mean negative log-likelihood of the text",
                    "ok: a higher temperature spreads the choice",
                    "ok: sample_next with top-p 0.9 draws from our distribution",
                    "ok: our draw() matches the probabilities"],
}
IMAGES_DIR = ROOT / "docs" / "images"
IMAGE_SCRIPT = ROOT / "scripts" / "make_tutorial_images.py"


def test_every_step_is_listed_here() -> None:
    """A new step cannot slip in without the output lines that prove it ran."""
    assert [s.stem for s in SCRIPTS] == sorted(EXPECTED), \
        "add the new tutorial script's expected output lines to EXPECTED"


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_step_runs_quick_and_its_checks_pass(script: Path, tmp_path: Path) -> None:
    """Run from another directory, as a script: exit status 0 and the checks printed. The
    package is importable as after `pip install -e .` (which the tutorial asks for)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                                     os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, str(script), "--quick"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{script.name} failed:\n{result.stdout}\n{result.stderr}"
    for line in EXPECTED[script.stem]:
        assert line in result.stdout, f"{script.name} did not print {line!r}:\n{result.stdout}"
    assert "FAILED" not in result.stdout + result.stderr


def _load(script: Path) -> ModuleType:
    """Import a step as a module (its name starts with a digit, so not by import)."""
    spec = importlib.util.spec_from_file_location(f"tutorial_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_wrong_derivative_makes_step_1_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    """The steps' checks can fail: give the scalar engine a wrong tanh derivative (1 - t
    instead of 1 - t^2) and its comparison with central differences must exit non-zero."""
    engine = _load(SCRIPTS_DIR / "01_scalar_engine.py")
    engine.check_derivatives()  # the real engine passes

    def wrong_tanh(self: Any) -> Any:
        t = engine.math.tanh(self.data)
        return engine.Value(t, ((self, 1.0 - t),))

    monkeypatch.setattr(engine.Value, "tanh", wrong_tanh)
    with pytest.raises(SystemExit) as exit_info:
        engine.check_derivatives()
    assert "central differences" in str(exit_info.value.code)


def test_a_wrong_backward_makes_step_2_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    """Step 2's comparison with tinygrad_lm can fail: give its Tanh the derivative 1 - t
    instead of 1 - t^2."""
    monkeypatch.syspath_prepend(str(SCRIPTS_DIR))  # for its `from _tutorial import check`
    engine = _load(SCRIPTS_DIR / "02_array_engine.py")
    engine.compare_with_tinygrad_lm(trials=3)  # the real engine passes
    monkeypatch.setattr(engine.Tanh, "backward", lambda self, dout: (dout * (1 - self.out),))
    with pytest.raises(SystemExit) as exit_info:
        engine.compare_with_tinygrad_lm(trials=3)
    assert "equal tinygrad_lm's" in str(exit_info.value.code)


def test_every_step_has_a_page_listed_in_order_in_the_index() -> None:
    """Script NN_x.py has docs/tutorial/NN_x.md, which links the script and the next step;
    the index lists the pages in the scripts' order."""
    index = INDEX.read_text(encoding="utf-8")
    linked = re.findall(r"\]\((\d\d_[\w]+\.md)\)", index)
    pages = list(dict.fromkeys(linked))  # first mention of each, in order
    assert pages == [f"{s.stem}.md" for s in SCRIPTS], pages
    for script in SCRIPTS:
        page = PAGES_DIR / f"{script.stem}.md"
        assert page.is_file(), f"{script.name} has no page {page}"
        assert f"`{script.name}`" in index, f"the index does not name {script.name}"
        text = page.read_text(encoding="utf-8")
        assert f"examples/tutorial/{script.name}" in text, f"{page.name} does not link its script"
    for earlier, later in zip(SCRIPTS, SCRIPTS[1:]):
        text = (PAGES_DIR / f"{earlier.stem}.md").read_text(encoding="utf-8")
        assert f"]({later.stem}.md)" in text, f"{earlier.stem}.md does not link to the next step"


def test_tutorial_links_resolve() -> None:
    """tests/test_docs.py checks docs/*.md only; the same checker runs here on the tutorial."""
    pages = sorted(PAGES_DIR.glob("*.md"))
    assert INDEX in pages and len(pages) == len(SCRIPTS) + 1
    broken = {p.name: _broken_links(p) for p in pages}
    assert not any(broken.values()), f"broken links: { {k: v for k, v in broken.items() if v} }"


def _stripped_lines(code: str) -> list[str]:
    return [line.strip() for line in code.splitlines() if line.strip()]


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_page_code_excerpts_exist_in_the_script(script: Path) -> None:
    """Every Python block of a page is lines of its script, in the script's order (leading
    indentation aside), so the explanation cannot drift from the code."""
    source = _stripped_lines(script.read_text(encoding="utf-8"))
    page = PAGES_DIR / f"{script.stem}.md"
    blocks = [(line, code) for info, line, code in _blocks(page.read_text(encoding="utf-8"))
              if info == "python"]
    assert blocks, f"{page.name} shows no code from {script.name}"
    for line, code in blocks:
        position = 0
        for wanted in _stripped_lines(code):
            try:
                position = source.index(wanted, position) + 1
            except ValueError:
                pytest.fail(f"{page.name}, block at line {line}: {wanted!r} is not in "
                            f"{script.name} (or not in this order)")


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_every_page_shows_its_picture_and_links_its_exercise(script: Path) -> None:
    """Page NN_x.md embeds docs/images/tutorial_NN_*.svg (small enough to load fast) and
    links the exercise file of its step."""
    text = (PAGES_DIR / f"{script.stem}.md").read_text(encoding="utf-8")
    number = script.stem[:2]
    pictures = re.findall(rf"!\[[^\]]+\]\(\.\./images/(tutorial_{number}_\w+\.svg)\)", text)
    assert len(pictures) == 1, f"{script.stem}.md must show one picture tutorial_{number}_*.svg"
    assert (IMAGES_DIR / pictures[0]).stat().st_size < 200_000
    exercises = list((ROOT / "examples" / "exercises").glob(f"{number}_*.py"))
    assert len(exercises) == 1, f"step {number} has no exercise file (or several)"
    assert f"examples/exercises/{exercises[0].name}" in text, \
        f"{script.stem}.md does not link its exercise {exercises[0].name}"


def test_pictures_are_reproducible(tmp_path: Path) -> None:
    """Redrawing every picture gives the committed files byte for byte, and there is no
    committed tutorial picture that the script does not draw."""
    result = subprocess.run([sys.executable, str(IMAGE_SCRIPT), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    drawn = sorted(p.name for p in tmp_path.glob("*.svg"))
    assert drawn == sorted(p.name for p in IMAGES_DIR.glob("tutorial_*.svg"))
    assert len(drawn) == len(SCRIPTS)
    stale = [name for name in drawn
             if (tmp_path / name).read_bytes() != (IMAGES_DIR / name).read_bytes()]
    assert not stale, (f"{stale} differ from what scripts/make_tutorial_images.py draws now: "
                       "run it and commit the pictures")
