"""The numerical gradient check of every op and layer: the table behind ``tinygrad-lm gradcheck``.

Each row names an op, builds float64 inputs from a seeded generator (kept away from kinks and
poles), and says whether the op is smooth enough for a second-order check.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .gradcheck import compare, gradgradcheck
from .nn import functional as F
from .tensor import Tensor, cat, stack, where


@dataclass
class Check:
    name: str
    fn: Callable[..., Tensor]
    shapes: tuple[tuple[int, ...], ...]
    smooth: bool = True
    positive: bool = False  # inputs in (0.5, 1.5): log, sqrt, pow bases


CHECKS = [
    Check("add", lambda a, b: a + b, ((2, 3), (3,))),
    Check("sub", lambda a, b: a - b, ((2, 3), (2, 1))),
    Check("mul", lambda a, b: a * b, ((2, 3), (2, 3))),
    Check("div", lambda a, b: a / b, ((2, 3), (3,)), positive=True),
    Check("pow", lambda a, b: a ** b, ((2, 3), (2, 3)), positive=True),
    Check("scalar ops", lambda a: 2.0 - a * 3.0 + 1.0 / a, ((4,),), positive=True),
    Check("neg", lambda a: -a, ((3,),)),
    Check("matmul 2-D", lambda a, b: a @ b, ((2, 3), (3, 4))),
    Check("matmul 1-D", lambda a, b: a @ b, ((3,), (3, 2))),
    Check("matmul batched", lambda a, b: a @ b, ((2, 2, 3), (3, 2))),
    Check("exp", lambda a: a.exp(), ((2, 3),)),
    Check("log", lambda a: a.log(), ((2, 3),), positive=True),
    Check("sqrt", lambda a: a.sqrt(), ((2, 3),), positive=True),
    Check("abs", lambda a: a.abs(), ((2, 3),), smooth=False),
    Check("tanh", lambda a: a.tanh(), ((2, 3),)),
    Check("sigmoid", lambda a: a.sigmoid(), ((2, 3),)),
    Check("relu", lambda a: a.relu(), ((2, 3),), smooth=False),
    Check("gelu", lambda a: a.gelu(), ((2, 3),)),
    Check("gelu tanh", lambda a: a.gelu("tanh"), ((2, 3),)),
    Check("maximum", lambda a, b: a.maximum(b), ((2, 3), (2, 3)), smooth=False),
    Check("minimum", lambda a, b: a.minimum(b), ((2, 3), (3,)), smooth=False),
    Check("clip", lambda a: a.clip(-0.5, 0.5), ((2, 3),), smooth=False),
    Check("sum", lambda a: a.sum(axis=(0, 2)), ((2, 3, 2),)),
    Check("mean", lambda a: a.mean(axis=-1, keepdims=True), ((2, 3),)),
    Check("max", lambda a: a.max(axis=1), ((2, 3),), smooth=False),
    Check("min", lambda a: a.min(), ((2, 3),), smooth=False),
    Check("var", lambda a: a.var(axis=0), ((3, 2),)),
    Check("std", lambda a: a.std(axis=1, correction=0), ((2, 3),)),
    Check("logsumexp", lambda a: a.logsumexp(axis=1), ((2, 3),)),
    Check("softmax", lambda a: a.softmax(axis=0), ((3, 2),)),
    Check("log_softmax", lambda a: a.log_softmax(), ((2, 3),)),
    Check("reshape", lambda a: a.reshape(3, -1) * a.reshape(3, 2), ((2, 3),)),
    Check("permute", lambda a: a.permute(2, 0, 1), ((2, 3, 2),)),
    Check("transpose, T", lambda a: a.transpose(0, 1) + a.T, ((2, 2),)),
    Check("unsqueeze, squeeze, flatten", lambda a: a.unsqueeze(1).squeeze(1).flatten(), ((2, 3),)),
    Check("expand", lambda a: a.expand(2, 3, 2), ((3, 1),)),
    Check("cat", lambda a, b: cat([a, b], axis=1), ((2, 1), (2, 3))),
    Check("stack", lambda a, b: stack([a, b], axis=-1), ((2, 3), (2, 3))),
    Check("split, chunk", lambda a: a.split([1, 2], 1)[1] * a.chunk(3, 1)[0], ((2, 3),)),
    Check("index basic", lambda a: a[1:, None, ..., ::2], ((3, 4),)),
    Check("index gather", lambda a: a[[0, 2, 0]], ((3, 2),)),
    Check("index mask", lambda a: a[a.detach() > 0], ((2, 3),)),
    Check("where", lambda a, b: where(a.detach() > 0, a, b), ((2, 3), (3,))),
    Check("masked_fill", lambda a: a.masked_fill(a.detach() < 0, 0.5), ((2, 3),)),
    Check("astype", lambda a: a.astype("float64") * 2, ((2,),)),
    Check("nn.Linear (F.linear)", lambda x, w, b: F.linear(x, w, b), ((2, 4, 3), (2, 3), (2,))),
    Check("nn.LayerNorm (F.layer_norm)", lambda x, w, b: F.layer_norm(x, 3, w, b), ((2, 3), (3,), (3,))),
    Check("nn.RMSNorm (F.rms_norm)", lambda x, w: F.rms_norm(x, 3, w), ((2, 3), (3,))),
    Check("F.swiglu", lambda a, b: F.swiglu(a, b), ((2, 3), (2, 3))),
    Check("F.rotary_embedding", lambda x: F.rotary_embedding(x, *F.rotary_tables(
        2, 3, 4, dtype="float64")), ((2, 3, 4),)),
    Check("F.cross_entropy", lambda z: F.cross_entropy(z, Tensor([0, 2, -100])), ((3, 4),)),
    Check("F.cross_entropy (N,C,d)", lambda z: F.cross_entropy(z, Tensor([[1, 0]]), reduction="sum"),
          ((1, 3, 2),)),
    Check("F.mse_loss", lambda a, b: F.mse_loss(a, b), ((2, 3), (2, 3))),
    Check("nn.Embedding (F.embedding)", lambda w: F.embedding(Tensor([[1, 1], [0, 2]]), w), ((3, 2),)),
    Check("F.attention causal", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
          ((1, 2, 3, 2), (1, 2, 3, 2), (1, 2, 3, 2))),
    Check("F.attention mask", lambda q, k, v: F.scaled_dot_product_attention(
        q, k, v, attn_mask=Tensor([[True, False, True, True]])), ((2, 1, 2), (2, 4, 2), (2, 4, 3))),
]


@dataclass
class Result:
    name: str
    shapes: str
    max_abs: float
    max_rel: float
    second_order: bool | None
    passed: bool


def run_check(check: Check, seed: int = 0, atol: float = 1e-5, rtol: float = 1e-3,
              second_order: bool = True) -> Result:
    """Gradcheck one row; the error maxima are over every element of every input."""
    rng = np.random.default_rng(seed)
    inputs = []
    for shape in check.shapes:
        values = rng.uniform(0.5, 1.5, shape) if check.positive else rng.standard_normal(shape)
        inputs.append(Tensor(values, dtype="float64", requires_grad=True))
    max_abs = max_rel = 0.0
    passed = True
    for _, _, analytic, numeric in compare(check.fn, inputs):
        error = abs(analytic - numeric)
        max_abs = max(max_abs, error)
        max_rel = max(max_rel, error / max(abs(numeric), 1e-6))
        passed = passed and error <= atol + rtol * abs(numeric)
    second: bool | None = None
    if second_order and check.smooth:
        second = gradgradcheck(check.fn, inputs, raise_exception=False)
        passed = passed and second
    shapes = " ".join("x".join(map(str, s)) or "()" for s in check.shapes)
    return Result(check.name, shapes, max_abs, max_rel, second, passed)


def select(names: list[str] | None) -> list[Check]:
    """The rows that ``names`` pick (all when None): a name picks the row it names exactly,
    else every row with that word in its name (``matmul``: the three matmul rows;
    ``rotary``: ``F.rotary_embedding``, as dots and underscores separate words too).
    An unknown name raises ValueError listing the names there are."""
    if names is None:
        return list(CHECKS)
    chosen: list[Check] = []
    for name in names:
        exact = [c for c in CHECKS if c.name == name]
        word = re.compile(rf"(?<![^\W_]){re.escape(name)}(?![^\W_])")
        picked = exact or [c for c in CHECKS if word.search(c.name)]
        if not picked:
            raise ValueError(f"no check is named {name!r}; the checks are: "
                             + ", ".join(c.name for c in CHECKS))
        chosen += [c for c in picked if c not in chosen]
    return chosen


def run_all(names: list[str] | None = None, second_order: bool = True) -> list[Result]:
    """Run every check of the table (or those ``names`` pick, see ``select``)."""
    return [run_check(c, second_order=second_order) for c in select(names)]


def format_results(results: list[Result]) -> str:
    """The results as an aligned text table, one row per check."""
    rows = [("op", "shapes", "max abs err", "max rel err", "2nd order", "result")]
    for r in results:
        second = "-" if r.second_order is None else ("ok" if r.second_order else "FAIL")
        rows.append((r.name, r.shapes, f"{r.max_abs:.2e}", f"{r.max_rel:.2e}", second,
                     "pass" if r.passed else "FAIL"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)
