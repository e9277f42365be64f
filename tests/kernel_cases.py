"""Inputs for every kernel of tinygrad_lm/kernels, shared by the cpu and the cuda tests.

Each case builds the arguments of one kernel function from a random generator, a dtype and
two sizes (``rows`` may be 0: an empty batch; ``width`` is often not a multiple of any
vector width), optionally with extreme values (±1e4 logits, constant rows). ``run_both``
calls the reference kernel and another implementation on copies of the same arguments and
returns everything each produced, outputs written in place included, for comparison.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Callable

import numpy as np

from tinygrad_lm.kernels import reference

Make = Callable[[np.random.Generator, Any, int, int, bool], tuple]


def _values(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any, extreme: bool) -> Any:
    """Normal values; ``extreme``: scaled to ±1e4, and the first row made constant (a multiple
    of 1/8, so that its sums and mean are exact in float32 and the row is not ill-posed)."""
    a = rng.standard_normal(shape) * (1e4 if extreme else 3.0)
    if extreme and len(shape) >= 2 and shape[0] > 0:
        a[0] = np.round(a[0, 0] * 8) / 8
    return a.astype(dtype)


def _gelu(approximate: str) -> Make:
    def make(rng, dtype, rows, width, extreme):  # noqa: ANN001, ANN202
        return _values(rng, (rows, width), dtype, extreme), approximate
    return make


def _gelu_backward(approximate: str) -> Make:
    def make(rng, dtype, rows, width, extreme):  # noqa: ANN001, ANN202
        return (_values(rng, (rows, width), dtype, extreme),
                rng.standard_normal((rows, width)).astype(dtype), approximate)
    return make


def _layer_norm(rng, dtype, rows, width, extreme):  # noqa: ANN001, ANN202
    weight = rng.standard_normal(width).astype(dtype) if rng.random() < 0.7 else None
    bias = rng.standard_normal(width).astype(dtype) if rng.random() < 0.7 else None
    return _values(rng, (rows, width), dtype, extreme), weight, bias, 1e-5


def _layer_norm_backward(rng, dtype, rows, width, extreme):  # noqa: ANN001, ANN202
    x, weight, _, eps = _layer_norm(rng, dtype, rows, width, extreme)
    _, mean, rstd = reference.layer_norm(x, weight, None, eps)
    return rng.standard_normal((rows, width)).astype(dtype), x, mean, rstd, weight


def _rms_norm(rng, dtype, rows, width, extreme):  # noqa: ANN001, ANN202
    weight = rng.standard_normal(width).astype(dtype) if rng.random() < 0.7 else None
    return _values(rng, (rows, width), dtype, extreme), weight, 1e-5


def _rms_norm_backward(rng, dtype, rows, width, extreme):  # noqa: ANN001, ANN202
    x, weight, eps = _rms_norm(rng, dtype, rows, width, extreme)
    _, rstd = reference.rms_norm(x, weight, eps)
    return rng.standard_normal((rows, width)).astype(dtype), x, rstd, weight


def _swiglu(rng, dtype, rows, width, extreme):  # noqa: ANN001, ANN202
    return _values(rng, (rows, width), dtype, extreme), _values(rng, (rows, width), dtype, False)


def _swiglu_backward(rng, dtype, rows, width, extreme):  # noqa: ANN001, ANN202
    return (*_swiglu(rng, dtype, rows, width, extreme),
            rng.standard_normal((rows, width)).astype(dtype))


def _rotary(rng, dtype, rows, width, extreme):  # noqa: ANN001, ANN202
    """x (rows, 2 heads, 5 positions, an even width); angles anywhere on the circle."""
    even = 2 * (width // 2 + 1)
    angles = rng.uniform(-10, 10, (5, even // 2))
    return (_values(rng, (rows, 2, 5, even), dtype, extreme), np.cos(angles).astype(dtype),
            np.sin(angles).astype(dtype))


def _softmax(rng, dtype, rows, width, extreme):  # noqa: ANN001, ANN202
    return _values(rng, (rows, width), dtype, extreme), int(rng.choice([-1, 1, 0]))


def _softmax_backward(forward: Callable[..., Any]) -> Make:
    def make(rng, dtype, rows, width, extreme):  # noqa: ANN001, ANN202
        x, axis = _softmax(rng, dtype, rows, width, extreme)
        return forward(x, axis), rng.standard_normal((rows, width)).astype(dtype), axis
    return make


def _targets(rng: np.random.Generator, rows: int, width: int) -> Any:
    targets = rng.integers(0, width, rows)
    targets[rng.random(rows) < 0.2] = -100
    return targets


def _cross_entropy(rng, dtype, rows, width, extreme):  # noqa: ANN001, ANN202
    return _values(rng, (rows, width), dtype, extreme), _targets(rng, rows, width), -100


def _cross_entropy_backward(rng, dtype, rows, width, extreme):  # noqa: ANN001, ANN202
    logits, targets, ignore = _cross_entropy(rng, dtype, rows, width, extreme)
    _, log_norm = reference.cross_entropy(logits, targets, ignore)
    return logits, log_norm, targets, ignore, rng.standard_normal(rows).astype(dtype)


def _attention_inputs(rng: np.random.Generator, dtype: Any, rows: int, width: int,
                      extreme: bool) -> tuple:
    """q (rows, 2, L, d), k and v over S keys, with L and S from ``width``; a causal mask
    (every query sees key 0), no mask, or a dropout keep-mask."""
    length, source, head = 1 + width % 7, 1 + width % 5 + width % 7, 1 + width % 9
    q = rng.standard_normal((rows, 2, length, head)).astype(dtype)
    k = rng.standard_normal((rows, 2, source, head)).astype(dtype)
    v = rng.standard_normal((rows, 2, source, head + 1)).astype(dtype)
    kind = rng.integers(3)
    mask = np.triu(np.full((length, source), -np.inf, dtype), k=max(1, 1 + source - length)) \
        if kind == 1 else None
    keep = ((rng.random((rows, 2, length, source)) >= 0.3) / 0.7).astype(dtype) \
        if kind == 2 else None
    scale = (30.0 if extreme else 1.0) / math.sqrt(head)
    return q, k, v, mask, scale, keep


def _attention(rng, dtype, rows, width, extreme):  # noqa: ANN001, ANN202
    q, k, v, mask, scale, keep = _attention_inputs(rng, dtype, rows, width, extreme)
    return q, k, v, mask, scale, keep, np.zeros(q.shape[:-1] + (v.shape[-1],), dtype)


def _attention_backward(rng, dtype, rows, width, extreme):  # noqa: ANN001, ANN202
    q, k, v, mask, scale, keep, out = _attention(rng, dtype, rows, width, extreme)
    log_sum_exp = reference.attention(q, k, v, mask, scale, keep, out)
    dout = rng.standard_normal(out.shape).astype(dtype)
    return (q, k, v, mask, scale, keep, log_sum_exp, out, dout,
            np.zeros_like(q), np.zeros_like(k), np.zeros_like(v))


def _embedding_backward(rng, dtype, rows, width, extreme):  # noqa: ANN001, ANN202
    num = 1 + width % 11
    return rng.integers(0, num, (rows, 3)), rng.standard_normal((rows, 3, width)).astype(dtype), num


def _adam_step(rng, dtype, rows, width, extreme):  # noqa: ANN001, ANN202
    shape = (rows, width)
    param = rng.standard_normal(shape).astype(dtype)
    grad = _values(rng, shape, dtype, extreme)
    m = rng.standard_normal(shape).astype(dtype) * 0.1
    v = rng.random(shape).astype(dtype) * 0.01
    decoupled = bool(rng.integers(2))
    return (param, grad, m, v, 1e-2, 0.9, 0.99, 1e-8, float(rng.choice([0.0, 0.1])),
            decoupled, int(rng.integers(1, 50)))


def _sum_of_squares(rng, dtype, rows, width, extreme):  # noqa: ANN001, ANN202
    return (_values(rng, (rows, width), dtype, extreme),)


def _bias_backward(rng, dtype, rows, width, extreme):  # noqa: ANN001, ANN202
    return (_values(rng, (rows, width), dtype, extreme),)


CASES: dict[str, tuple[str, Make]] = {
    "gelu": ("gelu", _gelu("none")),
    "gelu_tanh": ("gelu", _gelu("tanh")),
    "gelu_backward": ("gelu_backward", _gelu_backward("none")),
    "gelu_tanh_backward": ("gelu_backward", _gelu_backward("tanh")),
    "layer_norm": ("layer_norm", _layer_norm),
    "layer_norm_backward": ("layer_norm_backward", _layer_norm_backward),
    "rms_norm": ("rms_norm", _rms_norm),
    "rms_norm_backward": ("rms_norm_backward", _rms_norm_backward),
    "swiglu": ("swiglu", _swiglu),
    "swiglu_backward": ("swiglu_backward", _swiglu_backward),
    "rotary": ("rotary", _rotary),
    "softmax": ("softmax", _softmax),
    "softmax_backward": ("softmax_backward", _softmax_backward(reference.softmax)),
    "log_softmax": ("log_softmax", _softmax),
    "log_softmax_backward": ("log_softmax_backward", _softmax_backward(reference.log_softmax)),
    "cross_entropy": ("cross_entropy", _cross_entropy),
    "cross_entropy_backward": ("cross_entropy_backward", _cross_entropy_backward),
    "attention": ("attention", _attention),
    "attention_backward": ("attention_backward", _attention_backward),
    "embedding_backward": ("embedding_backward", _embedding_backward),
    "adam_step": ("adam_step", _adam_step),
    "sum_of_squares": ("sum_of_squares", _sum_of_squares),
    "bias_backward": ("bias_backward", _bias_backward),
}
"""case name -> (kernel function name, argument maker)."""

WRITES_INTO = {"attention": [6], "attention_backward": [9, 10, 11], "adam_step": [0, 2, 3]}
"""Kernels that write results into some of their arguments: those argument positions."""


def _outputs(name: str, result: Any, args: tuple) -> list[Any]:
    produced = list(result) if isinstance(result, tuple) else [result]
    return [r for r in produced if r is not None] + [args[i] for i in WRITES_INTO.get(name, [])]


def run_both(case: str, implementation: Any, rng: np.random.Generator, dtype: Any, rows: int,
             width: int, extreme: bool,
             to_device: Callable[[Any], Any] = lambda a: a,
             to_host: Callable[[Any], Any] = lambda a: a) -> tuple[list[Any], list[Any]]:
    """(reference outputs, ``implementation``'s outputs) for the same arguments."""
    function, make = CASES[case]
    args = make(rng, dtype, rows, width, extreme)
    mine = tuple(to_device(a) if isinstance(a, np.ndarray) else a for a in copy.deepcopy(args))
    theirs = copy.deepcopy(args)
    expected = _outputs(function, getattr(reference, function)(*theirs), theirs)
    actual = _outputs(function, getattr(implementation, function)(*mine), mine)
    return expected, [to_host(a) for a in actual]


def tolerance(dtype: Any, extreme: bool) -> dict[str, float]:
    """rtol/atol for comparing float32 or float64 results (extreme inputs lose more)."""
    if np.dtype(dtype) == np.float64:
        return dict(rtol=1e-9, atol=1e-9)
    return dict(rtol=2e-3, atol=2e-3) if extreme else dict(rtol=2e-4, atol=2e-5)


def assert_close(expected: list[Any], actual: list[Any], dtype: Any, extreme: bool,
                 what: str) -> None:
    assert len(expected) == len(actual), what
    for e, a in zip(expected, actual):
        e, a = np.asarray(e), np.asarray(a)
        assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
        assert a.dtype == e.dtype, f"{what}: dtype {a.dtype} != {e.dtype}"
        scale = max(1.0, float(np.nanmax(np.abs(e)))) if e.size and extreme else 1.0
        tol = tolerance(dtype, extreme)
        np.testing.assert_allclose(a, e, rtol=tol["rtol"], atol=tol["atol"] * scale,
                                   err_msg=what)
