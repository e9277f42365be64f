"""Hypothesis strategies for the op tests: small shapes, axes and float64 arrays.

Values are kept away from the points where an op is not differentiable (kinks, poles,
ties), because a central difference straddling such a point is not a derivative:
a gradcheck failure there would be the test's fault, not the op's.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

Shape = tuple[int, ...]


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1,
           max_side: int = 4) -> st.SearchStrategy[Shape]:
    """Shapes with 0-3 dimensions of size 1-4 (tiny: gradcheck costs 2 forwards per element)."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


@st.composite
def broadcast_pairs(draw: Any, min_dims: int = 0) -> tuple[Shape, Shape]:
    """Two shapes that broadcast together (either may have fewer dims, or 1s)."""
    shape = draw(shapes(min_dims=min_dims))
    other = draw(hnp.broadcastable_shapes(shape, min_dims=min_dims, max_dims=3, min_side=1,
                                          max_side=4))
    return (shape, other) if draw(st.booleans()) else (other, shape)


@st.composite
def axes(draw: Any, ndim: int, allow_none: bool = True, allow_tuple: bool = True) -> Any:
    """A reduction axis for ``ndim`` dims: None, an int (maybe negative) or a tuple of ints."""
    choices = ["none"] if allow_none or ndim == 0 else []
    if ndim:
        choices += ["int", "tuple"] if allow_tuple else ["int"]
    kind = draw(st.sampled_from(choices))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    picked = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(a - ndim if draw(st.booleans()) else a for a in picked)


# Element domains. Each returns float64 values with the stated property.
DOMAINS = {
    "any": st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False),
    # log, sqrt, pow base: well inside the domain, so x - eps stays positive
    "positive": st.floats(0.5, 2.0),
    # abs, relu, divisors: at least 0.3 from the kink or pole at 0
    "nonzero": st.tuples(st.booleans(), st.floats(0.3, 2.0)).map(lambda p: p[1] if p[0] else -p[1]),
}


@st.composite
def arrays(draw: Any, shape: Shape, domain: str = "any",
           contiguous: bool | None = None) -> np.ndarray:
    """A float64 array of ``shape`` with values from ``domain``; ``"distinct"`` gives values
    at least 0.025 apart and at least 0.025 from any multiple of 0.05 (so from 0, +-0.5, +-1,
    ...), for max/min/maximum/clip. Sometimes the result is a non-contiguous view."""
    if domain == "distinct":
        n = int(np.prod(shape))
        ks = draw(st.lists(st.integers(-40, 39), min_size=n, max_size=n, unique=True))
        values = np.asarray(np.array(ks, dtype=np.float64).reshape(shape) * 0.05 + 0.025)
    else:
        values = draw(hnp.arrays(np.float64, shape, elements=DOMAINS[domain]))
    if contiguous is None:
        contiguous = draw(st.booleans()) or len(shape) == 0
    return values if contiguous else non_contiguous(values, draw(st.sampled_from(["T", "step"])))


def non_contiguous(values: np.ndarray, how: str) -> np.ndarray:
    """A strided view holding exactly ``values``: transposed storage or every second row."""
    if how == "T" and values.ndim >= 2:
        return np.ascontiguousarray(values.T).T
    padded = np.zeros((2 * values.shape[0],) + values.shape[1:])
    padded[::2] = values
    return padded[::2]


@st.composite
def distinct_arrays(draw: Any, shapes_: tuple[Shape, ...]) -> tuple[np.ndarray, ...]:
    """Several arrays whose values are all pairwise distinct (0.05 apart), so no two elements
    of any of them tie: ``maximum(a, b)`` and ``max`` have no ties. The 200 candidate values
    hold two 4x4x4 arrays."""
    sizes = [int(np.prod(s)) for s in shapes_]
    ks = draw(st.lists(st.integers(-100, 99), min_size=sum(sizes), max_size=sum(sizes),
                       unique=True))
    flat = np.array(ks, dtype=np.float64) * 0.05 + 0.025
    out, start = [], 0
    for shape, size in zip(shapes_, sizes):
        out.append(flat[start:start + size].reshape(shape).copy())
        start += size
    return tuple(out)
