"""Reverse-mode automatic differentiation: graph nodes and the backward walk.

Every op that produces a Tensor from Tensors is a ``Function``. Calling ``Fn.apply(...)``
runs ``forward`` on raw arrays and, when grad mode is on and an input requires grad, keeps
the Function instance as the output's ``grad_fn``: it is the graph node and the ``ctx`` in
one, holding the inputs (``parents``) and whatever forward saved.

``backward`` walks the graph from the output in reverse topological order (iteratively, so
deep graphs cannot hit the recursion limit), asks each node for the vector-Jacobian product
of its inputs, sums the contributions of every path into one gradient per node, and frees
each node's saved arrays once it has been used.
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable, Sequence

from . import backend, config

if TYPE_CHECKING:
    from .tensor import Tensor


class Function:
    """A differentiable op written on raw arrays (NumPy or CuPy).

    Subclass it with static ``forward(ctx, *args)`` and ``backward(ctx, dout)`` and call it as
    ``MyOp.apply(*args)``. ``forward`` gets raw arrays for Tensor arguments and returns an
    array; ``backward`` gets the upstream gradient array ``dout`` and returns one gradient
    array (or None) per forward argument. Such a backward is differentiable once: a second
    derivative through it raises, unless the class defines ``reference`` (the same op
    composed of differentiable primitives), which is then used for higher orders.
    """

    parents: tuple[Any, ...] | None
    kwargs: dict[str, Any]
    needs_input_grad: tuple[bool, ...]
    _saved: tuple[Any, ...]
    _hooks: list[Callable[..., Any]] | None = None  # of the output, a non-leaf (register_hook)
    _retained: Any = None  # a weak reference to the output whose .grad is kept (retain_grad)

    makes_view = False
    """True for ops whose output may share the input's memory (reshape, indexing, ...): such an
    output shares the input's version counter, so an in-place write through one is seen as a
    write to the other."""

    _born = 0  # the write clock when the node was made
    _out_version: list[int] | None = None  # the output's counter, when backward reads the output

    keeps_inputs = True
    """False for ops whose backward needs only their inputs' shapes and dtypes (add, reshape,
    sum, ...): the node then holds a placeholder for each non-leaf input instead of the
    input itself, so that input's array is freed as soon as nothing else uses it. Without
    this, every intermediate result would live until backward."""

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> "Tensor":
        """Run ``forward`` on the arrays behind ``args`` and record the node if needed."""
        ctx = cls()
        arrays, tensor_arrays, needs = [], [], []
        for arg in args:
            if isinstance(arg, Tensor):
                arrays.append(arg.data)
                tensor_arrays.append(arg.data)
                needs.append(arg._requires_grad and config._grad_enabled)
            else:
                arrays.append(arg)
                needs.append(False)
        ctx.needs_input_grad = tuple(needs)  # readable in forward too, as in PyTorch
        requires_grad = any(needs)
        if len(tensor_arrays) > 1 and not backend.same_device(tensor_arrays):
            devices = ", ".join(a.device for a in args if isinstance(a, Tensor))
            raise RuntimeError(f"{cls.__name__}: expected all tensors on one device, got {devices}")
        tracer = config._tracer
        if tracer is not None:
            started = tracer.start(arrays)
        try:
            out = cls.forward(ctx, *arrays, **kwargs)
        except (ValueError, TypeError, IndexError) as exc:
            shapes = ", ".join(f"{a.shape} {a.dtype}" for a in args if isinstance(a, Tensor))
            raise type(exc)(f"{cls.__name__}: {exc} (inputs: {shapes})") from None
        if tracer is not None:
            tracer.forward(cls.__name__, arrays, out, started)
        if not requires_grad:
            result = Tensor._make(out)
        else:
            ctx.parents = args if cls.keeps_inputs else tuple(
                [_placeholder(a) if type(a) is Tensor and a._ctx is not None
                 and a.data.nbytes >= PLACEHOLDER_MIN_BYTES else a for a in args])
            ctx.kwargs = kwargs
            ctx._born = config._write_clock
            result = Tensor._make(out, True, ctx)
            if _reads_output(ctx, out):
                ctx._out_version = result._counter()
        if cls.makes_view and _memory(out) is _memory(arrays[0]):
            result._version = args[0]._counter()  # writes through either show in both
        return result

    @staticmethod
    def forward(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        """The op on raw arrays (Tensor arguments arrive as their arrays); returns an array."""
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Any, dout: Any) -> Any:
        """Given d loss / d output (``dout``), return d loss / d input for each input."""
        raise NotImplementedError

    @property
    def name(self) -> str:
        """A readable node name, e.g. ``MulBackward``."""
        return f"{type(self).__name__}Backward"

    def __repr__(self) -> str:
        return f"<{self.name}>"

    def read_inputs(self) -> Sequence[Any]:
        """The inputs whose values backward reads (an in-place write to one of them before
        backward is an error): all of them, unless ``keeps_inputs`` is False or an op knows
        better."""
        return self.parents if self.keeps_inputs else ()

    def save_for_backward(self, *arrays: Any) -> None:
        """Keep arrays that backward needs; they are freed as soon as backward has used them."""
        self._saved = arrays

    @property
    def saved_tensors(self) -> tuple[Any, ...]:
        """What forward saved; an error after backward freed it (unless retain_graph)."""
        if self.parents is None:
            raise RuntimeError(_FREED)
        return getattr(self, "_saved", ())

    def _release(self) -> None:
        """Drop the saved arrays and the inputs: the graph below is free to be collected."""
        self._saved = ()
        self.parents = None

    def _vjp(self, dout: "Tensor", create_graph: bool) -> Sequence["Tensor | None"]:
        """Gradients for each input, as Tensors, given the gradient ``dout`` of the output."""
        if create_graph and hasattr(type(self), "reference"):
            return _vjp_by_reference(self, dout)
        grads = type(self).backward(self, dout.data)
        if not isinstance(grads, tuple):
            grads = (grads,)
        once = create_graph and any(self.needs_input_grad)
        return [None if g is None else
                OnceDifferentiable.apply(*self.parents, grad=g, op=self.name) if once else
                Tensor._make(g) for g in grads]


PLACEHOLDER_MIN_BYTES = 4096
"""Smaller inputs are kept even by ops with ``keeps_inputs = False``: making a placeholder
costs about half a microsecond, a fifth of a small op's time, and would free almost
nothing."""


@functools.lru_cache(maxsize=256)
def _no_values(device: backend.Device, shape: tuple[int, ...], dtype: Any) -> Any:
    """An array of ``shape`` and ``dtype`` on ``device`` that takes no memory: one zero,
    broadcast."""
    xp = device.xp
    if device is backend.CPU:
        return xp.broadcast_to(xp.zeros((), dtype), shape)
    with xp.cuda.Device(device.index):
        return xp.broadcast_to(xp.zeros((), dtype), shape)


def _placeholder(t: "Tensor") -> "Tensor":
    """Stands for the non-leaf ``t`` in a graph: same node (so gradients reach it), shape,
    dtype and device, and no values."""
    array = t.data
    return Tensor._make(_no_values(backend.device_of(array), array.shape, array.dtype),
                        t._requires_grad, t._ctx)


class Op(Function):
    """A primitive whose backward is written with Tensor ops on ``dout``.

    Because the backward is itself made of recorded ops, ``create_graph=True`` gives a
    gradient that can be differentiated again, to any order. The inputs are ``ctx.parents``;
    ``ctx.output()`` is the forward's result as a Tensor, for ops like ``exp`` whose
    derivative is most cheaply written in terms of their output.
    """

    _out: Any

    def _vjp(self, dout: "Tensor", create_graph: bool) -> Sequence["Tensor | None"]:
        # the walk runs with grad mode = create_graph, so these Tensor ops record only then
        grads = type(self).backward(self, dout)
        return grads if isinstance(grads, tuple) else (grads,)

    def output(self) -> "Tensor":
        """The forward's output as a Tensor attached to this node (so it stays differentiable)."""
        if self.parents is None:
            raise RuntimeError(_FREED)
        return Tensor._make(self._out, True, self)


class OnceDifferentiable(Function):
    """Carries a gradient from an array backward; differentiating it again is an error."""

    @staticmethod
    def forward(ctx: Any, *args: Any, grad: Any, op: str) -> Any:
        return grad

    @staticmethod
    def backward(ctx: Any, dout: Any) -> Any:
        raise RuntimeError(
            f"{ctx.kwargs['op']} has a backward written on raw arrays, so it is differentiable "
            "only once; define `reference` on the Function to allow higher-order gradients")


def _vjp_by_reference(node: Function, dout: "Tensor") -> list["Tensor | None"]:
    """Differentiable gradients of a fused op, taken through its composed reference."""
    with config.set_grad_enabled(True):
        out = type(node).reference(*node.parents, **node.kwargs)  # type: ignore[attr-defined]
        wanted = [p for p, need in zip(node.parents, node.needs_input_grad) if need]
        grads = iter(grad(out, wanted, dout, create_graph=True, allow_unused=True))
    return [next(grads) if need else None for need in node.needs_input_grad]


_FREED = ("Trying to backward through the graph a second time (or to read saved values after "
          "they were freed): pass retain_graph=True to the first backward if you need it again")


def _memory(array: Any) -> Any:
    """The array that owns ``array``'s memory (itself, or the array it is a view of)."""
    base = getattr(array, "base", None)
    return array if base is None else base


def _reads_output(ctx: Function, out: Any) -> bool:
    """Whether backward reads the output's values: an Op's ``_out``, or a saved array that is
    the output's memory."""
    state = ctx.__dict__
    if "_out" in state:
        return True
    saved = state.get("_saved", ())
    return bool(saved) and any(_memory(a) is _memory(out) for a in saved if a is not None)


def _check_unmodified(ctx: Function) -> None:
    """Raise if a tensor that ``ctx``'s backward reads was written in place after ``ctx`` was
    made: its gradient would be computed from the wrong values."""
    versions = [p._version for p in ctx.read_inputs() if isinstance(p, Tensor)]
    versions.append(ctx._out_version)
    # an input that a recorded in-place op turned into another node: ``parents`` holds the
    # tensor, which now stands for the node after the write, not the one this op used
    rebound = [p._version for p, need in zip(ctx.parents, ctx.needs_input_grad) if need]
    if any(v is not None and v[0] > ctx._born for v in versions) or \
            any(v is not None and v[1] > ctx._born for v in rebound):
        raise RuntimeError(
            f"{ctx.name}: a tensor it saved for the backward was modified by an in-place "
            "operation after it was used; compute its gradient first, or write to a clone()")


def _key(t: "Tensor") -> int:
    """Gradients are accumulated per node: the op that made ``t``, or ``t`` itself if a leaf."""
    return id(t._ctx) if t._ctx is not None else id(t)


def _toposort(roots: Sequence["Tensor"]) -> list["Tensor"]:
    """Tensors that require grad below ``roots``, inputs before the ops that use them."""
    order: list[Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(r, False) for r in roots]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        ctx = t._ctx
        key = id(t) if ctx is None else id(ctx)  # _key(t), inlined: this loop is hot
        if key in seen:
            continue
        seen.add(key)
        stack.append((t, True))
        if ctx is not None:
            if ctx.parents is None:
                raise RuntimeError(_FREED)
            for p, need in zip(ctx.parents, ctx.needs_input_grad):
                if need:
                    stack.append((p, False))
    return order


def run_backward(roots: Sequence["Tensor"], root_grads: Sequence["Tensor"], retain_graph: bool,
                 create_graph: bool, inputs: Sequence["Tensor"] | None = None) -> dict[int, "Tensor"]:
    """The backward walk. Accumulates into leaves' ``.grad`` when ``inputs`` is None;
    otherwise returns the gradients of ``inputs`` keyed by ``id`` and touches no ``.grad``.

    The core is four lines: take the next tensor in reverse topological order, take its
    summed gradient, ask its node for the gradients of the node's inputs (the vector-Jacobian
    product), and add each to what that input has received so far."""
    order = _toposort(roots)
    wanted = None if inputs is None else _leading_to(order, inputs)
    grads: dict[int, Tensor] = {}
    for root, g in zip(roots, root_grads):
        _accumulate(grads, _key(root), g)
    results: dict[int, Tensor] = {}
    with config.set_grad_enabled(create_graph):
        while order:  # popping drops the list's reference: a used node's output can be freed
            t = order.pop()
            g = grads.pop(_key(t), None)
            if g is None or (wanted is not None and _key(t) not in wanted):
                continue
            g = _after_hooks(t, g)
            if inputs is not None:
                results[_key(t)] = g
            ctx = t._ctx
            if ctx is None:
                if inputs is None:
                    _into_leaf(t, g, create_graph)
                continue
            if inputs is None:
                _into_retained(ctx, g)
            for p, pg in _input_grads(ctx, g, create_graph, wanted):
                _accumulate(grads, _key(p), pg)
            if not retain_graph:
                ctx._release()
    return results


def _leading_to(order: list["Tensor"], inputs: Sequence["Tensor"]) -> set[int]:
    """The keys of the tensors in ``order`` with a path to one of ``inputs``: only their
    gradients are computed by ``grad()``."""
    targets = {_key(t) for t in inputs}
    wanted: set[int] = set()
    for t in order:
        ctx = t._ctx
        if _key(t) in targets or (ctx is not None and any(
                need and _key(p) in wanted for p, need in zip(ctx.parents, ctx.needs_input_grad))):
            wanted.add(_key(t))
    return wanted


def _after_hooks(t: "Tensor", g: "Tensor") -> "Tensor":
    """``g`` passed through the hooks registered on ``t`` (a hook may return a replacement)."""
    ctx = t._ctx
    for hook in (t._hooks if ctx is None else ctx._hooks) or ():
        replaced = hook(g)  # `hook(g) or g` would ask a Tensor for its truth value
        if replaced is not None:
            g = replaced
    return g


def _into_leaf(t: "Tensor", g: "Tensor", create_graph: bool) -> None:
    """Accumulate ``g`` into the leaf's ``.grad`` (a copy: ``g`` may be shared)."""
    t.grad = (g if create_graph else Tensor._make(g.data.copy())) if t.grad is None \
        else t.grad + g


def _into_retained(ctx: Function, g: "Tensor") -> None:
    """Keep ``g`` as the ``.grad`` of the non-leaf output of ``ctx`` if it asked to
    (``retain_grad``)."""
    retained = ctx._retained() if ctx._retained is not None else None
    if retained is not None:
        retained.grad = g if retained.grad is None else retained.grad + g


def _input_grads(ctx: Function, g: "Tensor", create_graph: bool,
                 wanted: set[int] | None) -> list[tuple[Any, "Tensor"]]:
    """(input, its gradient) for each input of ``ctx`` that needs one, given the gradient
    ``g`` of its output: the node's vector-Jacobian product, with broadcasting undone
    (``sum_to``) and each gradient in its input's dtype."""
    needs = ctx.needs_input_grad
    if wanted is not None:  # skip the inputs that lead to none of `inputs`
        ctx.needs_input_grad = tuple(n and _key(p) in wanted for p, n in zip(ctx.parents, needs))
    try:
        if ctx._born < config._write_clock:  # something was written in place since
            _check_unmodified(ctx)
        tracer = config._tracer
        if tracer is None:
            parent_grads = ctx._vjp(g, create_graph)
        else:
            started = tracer.start([g], backward=True)
            parent_grads = ctx._vjp(g, create_graph)
            tracer.backward(ctx.name, g, parent_grads, started)
        out = []
        for i, (p, need) in enumerate(zip(ctx.parents, ctx.needs_input_grad)):
            pg = parent_grads[i] if need and i < len(parent_grads) else None
            if pg is None:
                continue
            if pg.shape != p.shape:
                pg = pg.sum_to(p.shape, op=ctx.name, input_index=i)
            if pg.data.dtype != p.data.dtype:  # a gradient has its input's dtype
                pg = pg.astype(p.data.dtype)
            out.append((p, pg))
        return out
    finally:
        ctx.needs_input_grad = needs


def _accumulate(grads: dict[int, "Tensor"], key: int, g: "Tensor") -> None:
    previous = grads.get(key)
    grads[key] = g if previous is None else previous + g


def grad(outputs: "Tensor | Sequence[Tensor]", inputs: "Tensor | Sequence[Tensor]",
         grad_outputs: "Tensor | Sequence[Tensor | None] | None" = None,
         retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = False) -> tuple["Tensor | None", ...]:
    """The gradients of ``outputs`` with respect to ``inputs``, like ``torch.autograd.grad``.

    Leaves' ``.grad`` is left untouched. With ``create_graph=True`` the results are part of
    the graph, so they can be differentiated again.
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs)
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError(f"grad: an input of shape {t.shape} does not require grad")
    root_grads = [_root_grad(o, g) for o, g in zip(outputs, grad_outputs)]
    retain = create_graph if retain_graph is None else retain_graph
    results = run_backward(outputs, root_grads, retain, create_graph, inputs)
    out: list[Tensor | None] = []
    for i, t in enumerate(inputs):
        g = results.get(_key(t))
        if g is None and not allow_unused:
            raise RuntimeError(f"grad: input {i} (shape {t.shape}) was not used to compute the "
                               "outputs; pass allow_unused=True to get None for it")
        out.append(g)
    return tuple(out)


def _root_grad(output: "Tensor", g: "Tensor | Any | None") -> "Tensor":
    """The starting gradient: ``g`` checked against ``output``, or 1 for a one-element output."""
    if not output.requires_grad:
        raise RuntimeError(f"backward: the tensor of shape {output.shape} does not require grad "
                           "and has no grad_fn (was it made under no_grad, or from detached inputs?)")
    if g is None:
        if output.numel() != 1:
            raise RuntimeError(f"backward: a gradient can be created implicitly only for a tensor "
                               f"with one element, not one of shape {output.shape}; pass `gradient`")
        return Tensor._make(output.device_obj.xp.ones_like(output.data))
    if not isinstance(g, Tensor):
        g = Tensor(g, dtype=output.dtype, device=output.device)
    if g.shape != output.shape:
        raise RuntimeError(f"backward: gradient of shape {g.shape} does not match the output's "
                           f"shape {output.shape}")
    return g


def backward(tensor: "Tensor", gradient: Any = None, retain_graph: bool | None = None,
             create_graph: bool = False) -> None:
    """Accumulate d tensor / d leaf into every leaf's ``.grad`` (see ``Tensor.backward``)."""
    retain = create_graph if retain_graph is None else retain_graph
    run_backward([tensor], [_root_grad(tensor, gradient)], retain, create_graph)


from .tensor import Tensor  # noqa: E402  (Tensor and Function refer to each other)
