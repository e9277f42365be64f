"""The learners' docs stay true to the code.

- every primitive in ``ops.py`` has its own section in ``docs/autograd.md``, in file order;
- every differentiable Tensor method is mentioned there, and the composed ones have a
  section; a new public Tensor method must be documented or declared non-differentiable;
- relative links (and their ``#anchors``) in ``docs/*.md`` and ``README.md`` resolve;
- the examples in the engine docs run, and the ``>>>`` ones print what the page says.
"""
from __future__ import annotations

import doctest
import inspect
import re
from pathlib import Path

import pytest

import tinygrad_lm as tl
from tinygrad_lm import backend, ops
from tinygrad_lm.autograd import Function

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
AUTOGRAD_MD = DOCS / "autograd.md"
ENGINE_DOCS = ["architecture.md", "autograd.md", "backends.md"]

# The differentiable public Tensor API (methods, properties and tl.* functions).
API_DIFFERENTIABLE = [
    "matmul", "exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu", "gelu", "maximum",
    "minimum", "clip", "sum", "mean", "max", "min", "var", "std", "logsumexp", "softmax",
    "log_softmax", "reshape", "transpose", "permute", "unsqueeze", "squeeze", "flatten",
    "expand", "split", "chunk", "masked_fill", "astype", "to", "cpu", "cuda", "T", "cat",
    "stack", "where",
]
# Methods built from several primitives: each gets its own derivation section.
COMPOSED = [
    "minimum", "min", "mean", "var", "std", "logsumexp", "softmax", "log_softmax", "gelu",
    "transpose", "unsqueeze", "squeeze", "flatten", "split", "chunk", "stack", "masked_fill",
    "matmul",
]
# Public Tensor members that are not differentiable ops: attributes, conversions to host
# values, autograd controls, factories and integer-valued reductions.
NOT_DIFFERENTIABLE = {
    "data", "grad", "requires_grad", "requires_grad_", "shape", "ndim", "dtype", "size",
    "device", "device_obj", "is_leaf", "grad_fn", "numpy", "item", "tolist", "detach",
    "backward", "retain_grad", "register_hook", "zeros", "ones", "full", "zeros_like",
    "ones_like", "randn", "rand", "arange", "argmax", "argmin", "numel", "dim", "long", "int",
    "bool",
}


# ----------------------------------------------------------------------------- markdown


def _blocks(text: str) -> list[tuple[str, int, str]]:
    """Fenced code blocks as (info string, line number of the first code line, code)."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if lines[i].startswith("```"):
            info, start, i = lines[i][3:].strip(), i + 1, i + 1
            while not lines[i].startswith("```"):
                i += 1
            blocks.append((info, start + 1, "\n".join(lines[start:i]) + "\n"))
        i += 1
    return blocks


def _prose(text: str) -> str:
    """The text outside fenced code blocks (links and headings in code are not real)."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            out.append(line)
    return "\n".join(out)


def _headings(text: str) -> list[str]:
    return [m.group(2).strip() for m in re.finditer(r"^(#{1,6})\s+(.*)$", _prose(text), re.M)]


def _code_spans(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", _prose(text))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: rendered text, lower case, punctuation dropped,
    spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for heading in _headings(text):
        slug = _slug(heading)
        count = seen.get(slug, 0)
        anchors.add(slug if count == 0 else f"{slug}-{count}")
        seen[slug] = count + 1
    return anchors


def _broken_links(path: Path) -> list[str]:
    """Relative links of a Markdown file whose file or #anchor does not exist."""
    prose = re.sub(r"`[^`\n]*`", "", _prose(path.read_text(encoding="utf-8")))
    targets = re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", prose)
    targets += re.findall(r"^\s*\[[^\]]+\]:\s*(\S+)", prose, re.M)
    broken = []
    for target in targets:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{target} (no file {dest})")
        elif dest.suffix == ".md" and anchor and \
                anchor not in _anchors(dest.read_text(encoding="utf-8")):
            broken.append(f"{target} (no heading with anchor #{anchor} in {dest.name})")
    return broken


def _mentioned(name: str, spans: list[str]) -> bool:
    pattern = re.compile(rf"(?<![\w]){re.escape(name)}(?!\w)")
    return any(pattern.search(span) for span in spans)


# ----------------------------------------------------------------------------- (a) ops


def _op_classes() -> list[type]:
    """Every Function subclass defined in ops.py, in the order of the file."""
    classes = [c for c in vars(ops).values()
               if inspect.isclass(c) and issubclass(c, Function) and c.__module__ == ops.__name__]
    return sorted(classes, key=lambda c: inspect.getsourcelines(c)[1])


def test_every_primitive_has_a_section_in_file_order() -> None:
    classes = _op_classes()
    assert len(classes) >= 20 and classes[0].__name__ == "Add"  # the discovery works
    headings = _headings(AUTOGRAD_MD.read_text(encoding="utf-8"))
    positions = []
    for cls in classes:
        matches = [i for i, h in enumerate(headings) if re.search(rf"`{cls.__name__}`", h)]
        assert matches, f"docs/autograd.md has no section for the op {cls.__name__} (ops.py)"
        positions.append(matches[0])
    assert positions == sorted(positions), \
        "docs/autograd.md: the op sections are not in the order of ops.py"


# ----------------------------------------------------------------------------- (b) methods


def test_every_differentiable_method_is_mentioned() -> None:
    spans = _code_spans(AUTOGRAD_MD.read_text(encoding="utf-8"))
    public = {n for n in dir(tl.Tensor) if not n.startswith("_")}
    functions = {"cat", "stack", "where"}
    assert set(API_DIFFERENTIABLE) <= public | functions  # the list names real methods
    assert all(callable(getattr(tl, f)) for f in functions)
    wanted = set(API_DIFFERENTIABLE) | (public - NOT_DIFFERENTIABLE)
    missing = sorted(n for n in wanted if not _mentioned(n, spans))
    assert not missing, (f"docs/autograd.md does not mention {missing}; document their "
                         "gradient (or add a non-differentiable method to NOT_DIFFERENTIABLE)")


def test_every_composed_method_has_a_derivation() -> None:
    headings = _headings(AUTOGRAD_MD.read_text(encoding="utf-8"))
    missing = [n for n in COMPOSED if not any(re.search(rf"`{n}`", h) for h in headings)]
    assert not missing, f"docs/autograd.md has no section for the composed methods {missing}"


# ----------------------------------------------------------------------------- (c) links


def test_relative_links_resolve() -> None:
    pages = sorted(DOCS.rglob("*.md")) + [ROOT / "README.md"]
    assert {p.name for p in pages} >= {*ENGINE_DOCS, "README.md"}
    broken = {p.name: _broken_links(p) for p in pages}
    assert not any(broken.values()), f"broken links: { {k: v for k, v in broken.items() if v} }"


def test_link_checker_catches_missing_files_and_anchors(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# A `code` heading: yes\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#a-code-heading-yes) [web](https://example.com)\n"
                    "[gone](missing.md) [bad](other.md#nope) `[not](a-link.md)`\n"
                    "```text\n[in code](ignored.md)\n```\n", encoding="utf-8")
    broken = _broken_links(page)
    assert len(broken) == 2
    assert broken[0].startswith("missing.md") and broken[1].startswith("other.md#nope")


# ----------------------------------------------------------------------------- (d) examples


def _cuda_available() -> bool:
    try:
        backend.get_device("cuda")
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize("name", ENGINE_DOCS)
def test_examples_run(name: str) -> None:
    """``>>>`` blocks are doctests; other Python blocks must run; a block that starts with
    ``# needs a GPU`` runs only where CUDA is available. Blocks share one namespace."""
    path = DOCS / name
    namespace: dict = {"__name__": f"docs_{path.stem}"}
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    ran = 0
    for info, line, code in _blocks(path.read_text(encoding="utf-8")):
        if info != "python" or (code.startswith("# needs a GPU") and not _cuda_available()):
            continue
        if code.lstrip().startswith(">>>"):
            test = parser.get_doctest(code, namespace, f"{name}:{line}", str(path), line - 1)
            result = runner.run(test, clear_globs=False)
            namespace.update(test.globs)  # DocTest works on a copy of the namespace
            assert result.failed == 0, f"{name}, the example at line {line} printed something else"
        else:
            exec(compile(code, f"{path}:{line}", "exec"), namespace)
        ran += 1
    assert ran > 0
