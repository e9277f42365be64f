"""``tl.trace``: one event per forward op and per backward node, printed and recorded."""
from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest

import tinygrad_lm as tl
import tinygrad_lm.nn.functional as F
from tinygrad_lm import config


def _ops(events, phase=None, depth=None):
    return [e.op for e in events if (phase is None or e.phase == phase)
            and (depth is None or e.depth == depth)]


def test_forward_events_name_each_op_with_shapes_and_dtypes():
    x = tl.Tensor(np.ones((3, 4), np.float32))
    w = tl.Tensor(np.ones((4, 2), np.float64))
    with tl.trace(quiet=True) as t:
        (x.astype(tl.float64) @ w).tanh()
    assert _ops(t.events) == ["Cast", "Matmul", "Tanh"]
    matmul = t.events[1]
    assert matmul.inputs == ["(3, 4) float64", "(4, 2) float64"]
    assert matmul.outputs == ["(3, 2) float64"]
    assert all(e.seconds >= 0 and e.depth == 0 for e in t.events)


def test_backward_nodes_come_in_reverse_order_with_their_ops_nested():
    x = tl.randn(3, 4, requires_grad=True)
    w = tl.randn(4, 2, requires_grad=True)
    with tl.trace(quiet=True) as t:
        (x @ w).tanh().sum().backward()
    assert _ops(t.events, "backward") == ["SumBackward", "TanhBackward", "MatmulBackward"]
    matmul_bwd = next(e for e in t.events if e.op == "MatmulBackward")
    assert matmul_bwd.inputs == ["(3, 2) float32"]
    assert matmul_bwd.outputs == ["(3, 4) float32", "(4, 2) float32"]
    after = t.events[t.events.index(matmul_bwd) + 1:]
    assert after and all(e.phase == "forward" and e.depth == 1 for e in after)
    assert "Matmul" in _ops(after)


def test_a_gradient_that_is_not_needed_shows_as_a_dash():
    x = tl.randn(2, 2, requires_grad=True)
    c = tl.randn(2, 2)
    with tl.trace(quiet=True) as t:
        (x * c).sum().backward()
    mul = next(e for e in t.events if e.op == "MulBackward")
    assert mul.outputs == ["(2, 2) float32", "-"]


def test_printed_lines_match_the_events_and_show_times():
    out = io.StringIO()
    x = tl.Tensor([1.0, 2.0], requires_grad=True)
    with tl.trace(file=out) as t:
        (x * x).sum().backward()
    lines = out.getvalue().splitlines()
    assert len(lines) == len(t.events)
    assert lines[0].startswith("forward") and "Mul" in lines[0] and lines[0].endswith("µs")
    assert any(line.startswith("    forward") for line in lines)  # ops inside a backward node


def test_fused_ops_are_traced_by_their_own_name():
    logits = tl.randn(4, 5, requires_grad=True)
    targets = tl.Tensor(np.array([0, 1, 2, 3]))
    with tl.trace(quiet=True) as t:
        F.cross_entropy(logits, targets).backward()
    assert "CrossEntropy" in _ops(t.events, "forward", 0)
    assert "CrossEntropyBackward" in _ops(t.events, "backward")


def test_tracing_changes_no_result():
    tl.manual_seed(0)
    x = tl.randn(5, 3, requires_grad=True)
    (x.exp() * x).mean().backward()
    expected = x.grad.numpy().copy()
    x.grad = None
    with tl.trace(quiet=True):
        (x.exp() * x).mean().backward()
    np.testing.assert_array_equal(x.grad.numpy(), expected)


def test_second_order_through_a_reference_nests_backward_nodes():
    x = tl.randn(3, 4, dtype=tl.float64, requires_grad=True)
    with tl.trace(quiet=True) as t:
        (gx,) = tl.grad(x.softmax(-1)[:, 0].sum(), x, create_graph=True)
        gx.sum().backward()
    nested = [e for e in t.events if e.phase == "backward" and e.depth >= 1]
    assert nested, "the reference's own backward runs inside SoftmaxBackward"
    assert x.grad is not None and x.grad.shape == (3, 4)


def test_contexts_nest_and_restore_even_after_an_error():
    assert config._tracer is None
    with tl.trace(quiet=True) as outer:
        with pytest.raises(RuntimeError):
            with tl.trace(quiet=True) as inner:
                tl.Tensor([1.0]).exp()
                raise RuntimeError("boom")
        assert config._tracer is outer
        tl.Tensor([1.0]).log()
    assert config._tracer is None
    assert _ops(inner.events) == ["Exp"] and _ops(outer.events) == ["Log"]


def test_environment_variable_traces_a_whole_program():
    code = ("import tinygrad_lm as tl\n"
            "x = tl.Tensor([1.0, 2.0], requires_grad=True)\n"
            "(x.exp()).sum().backward()\n")
    env = {**os.environ, "TINYGRAD_LM_TRACE": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert any(line.startswith("forward") and "Exp" in line for line in lines)
    assert any(line.startswith("backward") and "ExpBackward" in line for line in lines)
