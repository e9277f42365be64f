"""The tutorial's exercises and their checker: ``tinygrad-lm exercises [check N [FILE]]``.

Each step of docs/tutorial/ has an exercise: a file ``examples/exercises/NN_name.py`` with
a function (or a backward) left to write, and its solution in
``examples/exercises/solutions/NN_name.py``. ``tinygrad-lm exercises`` lists them;
``tinygrad-lm exercises check N`` loads the learner's file and runs exercise N's checks,
printing for each whether it passes and, when not, what was expected and what came; the
exit status is 0 only when every check passes. ``check N FILE`` checks another file (a
solution, or a copy kept elsewhere).

The exercise files are not part of the installed package: without FILE the checker looks
for ``examples/exercises/`` in the current directory and its parents (a checkout of the
repository), then beside the package itself (an editable install or a run from the
checkout), and says so when it finds none.
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator

from .backend import get_device

np = get_device("cpu").xp  # NumPy: the checks run on the host, as the exercises do
# A check: its description, and a function of the learner's module that returns
# (passed, expected, actual); expected and actual are shown only when it fails.
Check = tuple[str, Callable[[ModuleType], tuple[bool, Any, Any]]]


@dataclass(frozen=True)
class Exercise:
    number: int
    name: str  # the file is NN_name.py
    title: str
    needs: tuple[str, ...]  # what the file must define
    checks: Callable[[], Iterator[Check]]

    @property
    def filename(self) -> str:
        """The exercise's file name, the same for the learner's file and the solution."""
        return f"{self.number:02d}_{self.name}.py"


def _close(expected: Any, actual: Any, tol: float = 1e-6) -> tuple[bool, Any, Any]:
    """Arrays (or numbers) equal in shape and within ``tol`` (relative and absolute)."""
    expected = np.asarray(expected, dtype=np.float64)
    try:
        got = np.asarray(actual, dtype=np.float64)
    except (TypeError, ValueError):
        return False, _show(expected), repr(actual)
    ok = got.shape == expected.shape and bool(np.allclose(got, expected, rtol=tol, atol=tol))
    return ok, _show(expected), _show(got)


def _show(a: np.ndarray) -> str:
    text = np.array2string(np.asarray(a), precision=6, threshold=12, edgeitems=3)
    return text.replace("\n", " ") + (f" (shape {a.shape})" if np.ndim(a) else "")


def _array(module_value: Any) -> np.ndarray:
    """A learner's result as a float64 array, whether a NumPy array or a Tensor."""
    return np.asarray(module_value.numpy() if hasattr(module_value, "numpy") else module_value,
                      dtype=np.float64)


# ----------------------------------------------------------------------------- 1 backward


def _scalar_checks() -> Iterator[Check]:
    def square(m: ModuleType) -> tuple[bool, Any, Any]:
        x = m.Value(3.0)
        y = x * x
        m.backward(y)
        return _close(6.0, x.grad)

    def neuron(m: ModuleType) -> tuple[bool, Any, Any]:
        values = (1.5, -0.8, 0.5, 2.0, 1.0)

        def f(x1: float, w1: float, x2: float, w2: float, b: float) -> float:
            return math.tanh(x1 * w1 + x2 * w2 + b)

        h = 1e-6
        expected = [(f(*[v + h * (i == j) for j, v in enumerate(values)])
                     - f(*[v - h * (i == j) for j, v in enumerate(values)])) / (2 * h)
                    for i in range(5)]
        x1, w1, x2, w2, b = (m.Value(v) for v in values)
        m.backward((x1 * w1 + x2 * w2 + b).tanh())
        return _close(expected, [v.grad for v in (x1, w1, x2, w2, b)], 1e-5)

    def deep(m: ModuleType) -> tuple[bool, Any, Any]:
        x, y = m.Value(0.5), m.Value(0.0)
        for _ in range(5000):
            y = y + x
        m.backward(y)
        return _close(5000.0, x.grad)

    yield "x * x: both uses of x add to its grad (d/dx = 2x = 6 at 3)", square
    yield "tanh(x1 w1 + x2 w2 + b): the five gradients against central differences", neuron
    yield "a chain of 5000 additions (deeper than Python's recursion limit)", deep


# ----------------------------------------------------------------------------- 2 sum_to


def _sum_to_checks() -> Iterator[Check]:
    g = np.arange(24.0).reshape(2, 3, 4)
    cases = [((4,), g.sum(axis=(0, 1))), ((3, 1), g.sum(axis=(0, 2))[:, None]),
             ((1, 3, 4), g.sum(axis=0, keepdims=True)), ((2, 1, 4), g.sum(axis=1, keepdims=True)),
             ((), g.sum()), ((2, 3, 4), g)]
    for shape, wanted in cases:
        yield (f"sum_to from (2, 3, 4) to {shape}",
               lambda m, shape=shape, wanted=wanted: _close(wanted, m.sum_to(g.copy(), shape)))


# ----------------------------------------------------------------------------- 3 softmax


def _softmax_checks() -> Iterator[Check]:
    from . import Tensor, float64, grad, gradcheck
    from .gradcheck import GradcheckError

    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 5))
    dout = rng.standard_normal((4, 5))

    def against_library(m: ModuleType) -> tuple[bool, Any, Any]:
        a = Tensor(x, dtype=float64, requires_grad=True)
        (expected,) = grad((a.softmax(axis=-1) * Tensor(dout)).sum(), a)
        b = Tensor(x, dtype=float64, requires_grad=True)
        (actual,) = grad((m.Softmax.apply(b) * Tensor(dout)).sum(), b)
        return _close(expected.numpy(), actual.numpy(), 1e-9)

    def numerically(m: ModuleType) -> tuple[bool, Any, Any]:
        a = Tensor(x[:2, :3], dtype=float64, requires_grad=True)
        try:
            return gradcheck(m.Softmax.apply, a), "gradcheck passes", "it passes"
        except GradcheckError as err:
            return False, "gradcheck passes", str(err)

    yield "the gradient equals tinygrad_lm's softmax's, for an upstream gradient not all ones", \
        against_library
    yield "tl.gradcheck (central differences, float64)", numerically


# ----------------------------------------------------------------------------- 4 adam


def _adam_checks() -> Iterator[Check]:
    from . import Tensor, optim
    from .nn import Parameter

    def against_library(lr: float, wd: float) -> Callable[[ModuleType], tuple[bool, Any, Any]]:
        def run(m: ModuleType) -> tuple[bool, Any, Any]:
            rng = np.random.default_rng(4)
            start = rng.standard_normal((3, 4))
            p = Parameter(start.copy())
            opt = optim.AdamW([p], lr=lr, betas=(0.9, 0.99), eps=1e-8, weight_decay=wd)
            ours, m1, v1 = start.copy(), np.zeros_like(start), np.zeros_like(start)
            for t in range(1, 6):
                g = rng.standard_normal((3, 4))
                p.grad = Tensor(g.astype(p.dtype))
                opt.step()
                ours, m1, v1 = m.adam_step(ours, g, m1, v1, t, lr, 0.9, 0.99, 1e-8, wd)
            return _close(p.numpy(), ours, 1e-5)
        return run

    yield "five steps equal tinygrad_lm's AdamW without weight decay", against_library(0.1, 0.0)
    yield "five steps equal tinygrad_lm's AdamW with weight decay 0.5", against_library(0.1, 0.5)


# ----------------------------------------------------------------------------- 5 attention


def _attention_checks() -> Iterator[Check]:
    from . import Tensor, float64
    from .nn import functional as F

    def against_library(shape: tuple[int, ...]) -> Callable[[ModuleType], tuple[bool, Any, Any]]:
        def run(m: ModuleType) -> tuple[bool, Any, Any]:
            rng = np.random.default_rng(5)
            q, k, v = (rng.standard_normal(shape) for _ in range(3))
            wanted = F.scaled_dot_product_attention(*(Tensor(a, dtype=float64) for a in (q, k, v)),
                                                    is_causal=True)
            return _close(wanted.numpy(), _array(m.causal_attention(q, k, v)), 1e-9)
        return run

    def first_row(m: ModuleType) -> tuple[bool, Any, Any]:
        v = np.random.default_rng(6).standard_normal((1, 5, 3))
        out = _array(m.causal_attention(np.ones((1, 5, 3)), np.ones((1, 5, 3)), v))
        return _close(v[0, 0], out[0, 0])

    yield "position 0 sees only itself: its output is v[0]", first_row
    yield "equals F.scaled_dot_product_attention(is_causal=True), shape (2, 6, 4)", \
        against_library((2, 6, 4))
    yield "and with batch and head axes, shape (2, 3, 7, 5)", against_library((2, 3, 7, 5))


# ----------------------------------------------------------------------------- 6 bigram


def _bigram_checks() -> Iterator[Check]:
    ids = np.array([0, 1, 0, 1, 2, 0, 1])  # pairs 01 10 01 12 20 01

    def table(m: ModuleType) -> tuple[bool, Any, Any]:
        counts = np.array([[0, 3, 0], [1, 0, 1], [1, 0, 0]]) + 1.0  # and add-one smoothing
        return _close(counts / counts.sum(axis=1, keepdims=True), m.bigram_probs(ids, 3))

    def loss(m: ModuleType) -> tuple[bool, Any, Any]:
        probs = np.array([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25], [0.2, 0.2, 0.6]])
        return _close(-np.mean(np.log([0.6, 0.5, 0.6, 0.25, 0.2, 0.6])), m.nll(probs, ids))

    def rows(m: ModuleType) -> tuple[bool, Any, Any]:
        big = np.random.default_rng(6).integers(0, 7, size=500)
        return _close(np.ones(7), m.bigram_probs(big, 7).sum(axis=1))

    yield "bigram_probs of [0, 1, 0, 1, 2, 0, 1] with add-one smoothing, V = 3", table
    yield "every row of bigram_probs sums to 1", rows
    yield "nll: the mean of -log P(next | current) over the pairs", loss


# ----------------------------------------------------------------------------- 7 layer norm


def _layer_norm_checks() -> Iterator[Check]:
    from . import Tensor, float64, grad
    from .nn import functional as F

    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 6)) * 2 + 1
    w, b, dout = rng.standard_normal(6), rng.standard_normal(6), rng.standard_normal((4, 6))
    tensors = [Tensor(a, dtype=float64, requires_grad=True) for a in (x, w, b)]
    out = F.layer_norm(tensors[0], 6, tensors[1], tensors[2], 1e-5)
    expected = [g.numpy() for g in grad((out * Tensor(dout)).sum(), tensors)]

    def part(i: int) -> Callable[[ModuleType], tuple[bool, Any, Any]]:
        return lambda m: _close(expected[i], m.layer_norm_backward(dout, x, w, 1e-5)[i], 1e-8)

    yield "dx equals tinygrad_lm's layer_norm gradient", part(0)
    yield "dweight", part(1)
    yield "dbias", part(2)


# ----------------------------------------------------------------------------- 8 schedule


def _schedule_checks() -> Iterator[Check]:
    from . import Tensor
    from .optim import SGD
    from .optim.lr_scheduler import CosineWarmup

    def against_library(warmup: int, max_iters: int) -> Callable[[ModuleType],
                                                                 tuple[bool, Any, Any]]:
        sched = CosineWarmup(SGD([Tensor([0.0], requires_grad=True)], lr=1.0), warmup,
                             max_iters, 0.1)
        steps = range(max_iters + 3)
        expected = [sched.lr_at(1.0, s) for s in steps]
        return lambda m: _close(expected, [m.lr_at(s, 1.0, warmup, max_iters, 0.1)
                                           for s in steps], 1e-9)

    yield "lr 1, warm-up 10, 100 steps, min_lr 0.1: equals CosineWarmup at every step", \
        against_library(10, 100)
    yield "no warm-up, 7 steps", against_library(0, 7)


# ----------------------------------------------------------------------------- 9 top-p


def _top_p_checks() -> Iterator[Check]:
    from . import Tensor, manual_seed
    from .models.gpt import sample_next

    def case(probs: list[float], p: float, wanted: list[float]) -> Check:
        return (f"top_p_filter({probs}, {p})",
                lambda m: _close(wanted, m.top_p_filter(np.array(probs), p)))

    def draws(m: ModuleType) -> tuple[bool, Any, Any]:
        probs = np.array([0.2, 0.5, 0.3])
        us = [0.0, 0.19, 0.2, 0.69, 0.7, 0.999]
        return _close([0, 0, 1, 1, 2, 2], [m.draw(probs, u) for u in us])

    def library(m: ModuleType) -> tuple[bool, Any, Any]:
        rng = np.random.default_rng(9)
        probs = rng.dirichlet(np.ones(12) * 0.5)
        nucleus = m.top_p_filter(probs, 0.8)
        manual_seed(0)
        logits = Tensor(np.repeat(np.log(probs)[None], 4000, axis=0))
        drawn = sample_next(logits, 1.0, top_p=0.8).numpy()[:, 0]
        freq = np.bincount(drawn, minlength=12) / len(drawn)
        ok = bool(np.all(nucleus[drawn] > 0)) and float(np.abs(freq - nucleus).max()) < 0.04
        return ok, "frequencies of 4000 draws by sample_next(top_p=0.8)", \
            f"your nucleus {np.round(nucleus, 3).tolist()}, frequencies " \
            f"{np.round(freq, 3).tolist()}"

    yield case([0.5, 0.3, 0.15, 0.05], 0.7, [0.625, 0.375, 0, 0])
    yield case([0.15, 0.5, 0.05, 0.3], 0.7, [0, 0.625, 0, 0.375])
    yield case([0.5, 0.3, 0.15, 0.05], 0.5, [1, 0, 0, 0])
    yield case([0.5, 0.3, 0.15, 0.05], 1.0, [0.5, 0.3, 0.15, 0.05])
    yield "draw(probs, u): the token whose cumulative interval holds u", draws
    yield "top_p_filter agrees with the library's sampler", library


EXERCISES = [
    Exercise(1, "backward", "the scalar engine's backward: topological order, += fan-out",
             ("Value", "backward"), _scalar_checks),
    Exercise(2, "sum_to", "sum_to: undo broadcasting in a gradient", ("sum_to",), _sum_to_checks),
    Exercise(3, "softmax_backward", "a tl.Function's backward: softmax", ("Softmax",),
             _softmax_checks),
    Exercise(4, "adam", "the AdamW update, as the optimizer does it", ("adam_step",),
             _adam_checks),
    Exercise(5, "attention", "causal attention in NumPy", ("causal_attention",),
             _attention_checks),
    Exercise(6, "bigram", "bigram probabilities by counting, and their loss",
             ("bigram_probs", "nll"), _bigram_checks),
    Exercise(7, "layer_norm_backward", "LayerNorm's backward, by hand",
             ("layer_norm_backward",), _layer_norm_checks),
    Exercise(8, "lr_schedule", "warm-up then cosine decay of the learning rate", ("lr_at",),
             _schedule_checks),
    Exercise(9, "top_p", "top-p filtering and the inverse-CDF draw", ("top_p_filter", "draw"),
             _top_p_checks),
]


def exercises_dir() -> Path | None:
    """``examples/exercises`` of the repository checkout: in the current directory or one of
    its parents, else beside the package; None when neither has one."""
    here = Path.cwd().resolve()
    for base in (here, *here.parents, Path(__file__).resolve().parents[1]):
        folder = base / "examples" / "exercises"
        if folder.is_dir():
            return folder
    return None


def _load(path: Path, exercise: Exercise) -> ModuleType | str:
    """The learner's file as a module, or a one-line reason why it cannot be checked."""
    if not path.is_file():
        return f"no file {path}"
    if not path.read_text(encoding="utf-8").strip():
        return f"{path} is empty"
    spec = importlib.util.spec_from_file_location(f"exercise_{exercise.number:02d}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the learner's file: any error is a message, not a traceback
        where = f" (line {err.lineno})" if isinstance(err, SyntaxError) else ""
        return f"{path} could not be loaded: {type(err).__name__}: {err}{where}"
    missing = [name for name in exercise.needs if not hasattr(module, name)]
    if missing:
        return f"{path} does not define {', '.join(missing)}"
    return module


def check(number: int, file: str | Path | None = None) -> int:
    """Run exercise ``number``'s checks on ``file`` (default: the learner's file); print one
    line per check; return 0 when all pass, 1 when some fail, 2 when there is nothing to
    check."""
    exercise = next((e for e in EXERCISES if e.number == number), None)
    if exercise is None:
        print(f"tinygrad-lm exercises: no exercise {number} (there are 1 to {len(EXERCISES)})",
              file=sys.stderr)
        return 2
    if file is None:
        folder = exercises_dir()
        if folder is None:
            print("tinygrad-lm exercises: no examples/exercises/ folder here or above, nor "
                  "beside the package: run from a checkout of the repository, or name the "
                  "file: tinygrad-lm exercises check N FILE", file=sys.stderr)
            return 2
        file = folder / exercise.filename
    module = _load(Path(file), exercise)
    if isinstance(module, str):
        print(f"exercise {number}: {module}", file=sys.stderr)
        return 2
    print(f"exercise {number}, {exercise.title}: {file}")
    passed = total = 0
    for what, run in exercise.checks():
        total += 1
        try:
            ok, expected, actual = run(module)
        except NotImplementedError:
            print(f"  FAIL  {what}: not written yet (NotImplementedError)")
            continue
        except Exception as err:  # the learner's code raised: say what, without a traceback
            print(f"  FAIL  {what}: raised {type(err).__name__}: {err}")
            continue
        if ok:
            passed += 1
            print(f"  pass  {what}")
        else:
            print(f"  FAIL  {what}\n          expected {expected}\n          got      {actual}")
    print(f"{passed} of {total} checks pass" + ("" if passed < total else ": well done"))
    return 0 if passed == total else 1


def list_exercises() -> int:
    """One line per exercise, starting with its number."""
    folder = exercises_dir()
    for e in EXERCISES:
        print(f"{e.number}  {e.title}  (step {e.number}; examples/exercises/{e.filename})")
    if folder is None:
        print("(no examples/exercises/ folder found: run from a checkout of the repository)")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``exercises`` as a sub-command of ``tinygrad-lm``."""
    p = sub.add_parser("exercises", help="list the tutorial's exercises, or check one",
                       description="Without arguments, list the exercises. `check N` checks "
                       "examples/exercises/NN_*.py (found in the current directory or above); "
                       "`check N FILE` checks FILE.")
    p.add_argument("action", nargs="?", choices=["check"])
    p.add_argument("number", nargs="?", type=int, help="the exercise's number")
    p.add_argument("file", nargs="?", help="the file to check (default: the learner's)")


def run(args: argparse.Namespace) -> int:
    """``tinygrad-lm exercises``: list, or check one."""
    if args.action is None:
        return list_exercises()
    if args.number is None:
        print("tinygrad-lm exercises check: which exercise? e.g. tinygrad-lm exercises check 2",
              file=sys.stderr)
        return 2
    return check(args.number, args.file)
