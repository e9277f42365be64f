"""Docstrings are present and their examples run.

(a) Every module of the ``tinygrad_lm`` package is imported (``pkgutil`` walk) and its
``>>>`` examples are run by ``doctest`` (ELLIPSIS and NORMALIZE_WHITESPACE). Each run starts
from the library defaults (float32, cpu, grad mode on, seed 0), so no state leaking from
other tests, nor ``TINYGRAD_LM_DEVICE``, changes what an example prints. ``__main__``
modules are entry points and are not imported; a module whose import needs CuPy where CuPy
is missing is skipped. The walk must find at least ``MIN_EXAMPLES`` examples, and each of
the main Tensor methods in ``EXAMPLED`` must have one.

(b) The rule for docstrings:

- every module has one;
- every public (no leading underscore) function and class defined in a module has its own;
- every public method, staticmethod, classmethod and property defined in such a class body
  has one, read with ``inspect.getdoc``: an override of a documented base-class method
  inherits that docstring, as ``help()`` shows it.

Exempt: names with a leading underscore (dunders such as ``__init__`` included: the class
docstring documents construction), and ``forward``, ``backward`` and ``reference`` of strict
subclasses of ``autograd.Function`` (op classes: the class docstring states the op and its
derivative). ``ALLOWED_MISSING`` lists known gaps (none today); an entry that
gets documented (or disappears) must be removed from it.
"""
from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
from types import ModuleType
from typing import Iterator

import numpy as np
import pytest

import tinygrad_lm as tl
from tinygrad_lm import config
from tinygrad_lm.autograd import Function
from tinygrad_lm.tensor import Tensor

MIN_EXAMPLES = 100
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
OP_METHODS = {"forward", "backward", "reference"}

# Main Tensor methods (and tensor.py functions) whose docstring must show an example.
EXAMPLED = [
    "zeros", "ones", "full", "arange", "randn", "rand", "matmul", "sum", "mean", "max", "min",
    "var", "reshape", "transpose", "permute", "unsqueeze", "squeeze", "flatten", "expand",
    "__getitem__", "softmax", "log_softmax", "exp", "log", "tanh", "relu", "sigmoid", "gelu",
    "masked_fill", "split", "chunk", "backward", "detach", "requires_grad", "to", "astype",
    "tolist", "item",
]

ALLOWED_MISSING: set[str] = set()  # known gaps; an entry must go once documented


def _module_names() -> list[str]:
    names = ["tinygrad_lm"]
    for info in pkgutil.walk_packages(tl.__path__, "tinygrad_lm."):
        if info.name.rsplit(".", 1)[-1] != "__main__":  # importing it would run the CLI
            names.append(info.name)
    return sorted(names)


MODULES = _module_names()


def _load(name: str) -> ModuleType | None:
    """The module, or None when importing it needs CuPy and CuPy is missing."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in ("cupy", "cupyx"):
            return None
        raise


def _loaded() -> Iterator[ModuleType]:
    """Every module of the package that imports here."""
    for name in MODULES:
        module = _load(name)
        if module is not None:
            yield module


@pytest.fixture(autouse=True)
def _library_defaults(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Examples print what they say only under the defaults: float32, cpu, grad on, seed 0."""
    monkeypatch.setattr(config, "DEFAULT_FLOAT", np.dtype(np.float32))
    monkeypatch.setattr(config, "DEFAULT_DEVICE", "cpu")
    tl.manual_seed(0)
    with tl.enable_grad():
        yield


def _doctests(module: ModuleType) -> list[doctest.DocTest]:
    # only objects defined in the module: re-exports are run where they are defined
    return [t for t in doctest.DocTestFinder(exclude_empty=True).find(module) if t.examples]


@pytest.mark.parametrize("name", MODULES)
def test_doctests_pass(name: str) -> None:
    module = _load(name)
    if module is None:
        pytest.skip(f"{name} needs CuPy, which is missing")
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    report: list[str] = []
    for test in _doctests(module):
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


def test_enough_examples_are_found() -> None:
    """The doctest walk cannot pass on nothing."""
    found = sum(len(t.examples) for module in _loaded() for t in _doctests(module))
    assert found >= MIN_EXAMPLES, f"only {found} doctest examples in tinygrad_lm"


@pytest.mark.parametrize("name", EXAMPLED)
def test_main_tensor_methods_have_examples(name: str) -> None:
    doc = inspect.getdoc(getattr(Tensor, name)) or ""
    assert ">>>" in doc, f"Tensor.{name} has no runnable example in its docstring"


def _is_op_method(cls: type, name: str) -> bool:
    return name in OP_METHODS and issubclass(cls, Function) and cls is not Function


def _undocumented(module: ModuleType) -> Iterator[str]:
    """Qualified names that break the rule in this file's docstring."""
    if not (module.__doc__ or "").strip():
        yield module.__name__
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(obj):
            if not (obj.__doc__ or "").strip():  # a class's own docstring, not a base's
                yield f"{module.__name__}.{name}"
            for attr, value in vars(obj).items():
                if attr.startswith("_") or _is_op_method(obj, attr):
                    continue
                if isinstance(value, (staticmethod, classmethod, property)) or \
                        inspect.isfunction(value):
                    if not (inspect.getdoc(getattr(obj, attr)) or "").strip():
                        yield f"{module.__name__}.{name}.{attr}"
        elif inspect.isfunction(obj) and not (inspect.getdoc(obj) or "").strip():
            yield f"{module.__name__}.{name}"


def _all_undocumented() -> set[str]:
    return {name for module in _loaded() for name in _undocumented(module)}


def test_every_public_name_has_a_docstring() -> None:
    missing = sorted(_all_undocumented() - ALLOWED_MISSING)
    assert not missing, "public names without a docstring:\n  " + "\n  ".join(missing)


def test_allow_list_has_no_stale_entries() -> None:
    stale = sorted(ALLOWED_MISSING - _all_undocumented())
    assert not stale, ("documented or gone, remove from ALLOWED_MISSING:\n  "
                       + "\n  ".join(stale))


def test_the_rule_catches_a_missing_docstring() -> None:
    """The checker is not vacuous: it reports an undocumented function, class and method,
    but neither private names nor the forward/backward of an op class."""
    module = ModuleType("tinygrad_lm_probe", "A probe module.")

    def public() -> None:
        pass

    class Plain:
        def method(self) -> None:
            pass

        def _private(self) -> None:
            pass

    class Op(Function):
        """An op."""

        @staticmethod
        def forward(ctx: object, x: object) -> object:
            return x

    for obj in (public, Plain, Op):
        obj.__module__ = module.__name__
        setattr(module, obj.__name__, obj)
    assert sorted(_undocumented(module)) == [
        "tinygrad_lm_probe.Plain", "tinygrad_lm_probe.Plain.method", "tinygrad_lm_probe.public"]
