"""Exercise 3 (step 3, Tensors): write the backward of a softmax ``tl.Function``.

``y = softmax(x)`` along the last axis, ``y_i = e^(x_i) / sum_j e^(x_j)``. Its Jacobian is
``dy_i / dx_j = y_i ([i = j] - y_j)``, so the vector-Jacobian product that backward
returns is

    dx_j = sum_i dout_i y_i ([i = j] - y_j) = y_j (dout_j - sum_i dout_i y_i)

for each row. ``forward`` saves its output ``y``; ``backward`` receives ``dout`` (same
shape as ``y``) as a raw array and returns ``dx`` as a raw array.

Check it: ``python -m tinygrad_lm exercises check 3`` (against tinygrad_lm's softmax, and
with ``tl.gradcheck``).
"""
from __future__ import annotations

import tinygrad_lm as tl


class Softmax(tl.Function):
    """softmax(x) over the last axis."""

    @staticmethod
    def forward(ctx, x):
        e = tl.backend.device_of(x).xp.exp(x - x.max(axis=-1, keepdims=True))  # no overflow
        y = e / e.sum(axis=-1, keepdims=True)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dout):
        (y,) = ctx.saved_tensors
        return y * (dout - (dout * y).sum(axis=-1, keepdims=True))
