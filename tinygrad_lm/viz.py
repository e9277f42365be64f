"""Pictures of the autograd graph, for learners: Graphviz DOT, and SVG.

The picture follows the data through the forward pass, from the leaves at the top to the
output at the bottom. Tensors are boxes and ops are ellipses: tensors go into an op, and
each op makes one tensor. Colours say what autograd does with each tensor:

- blue: a leaf that requires grad (a parameter, or an input being differentiated);
- grey, dashed: a constant, which gets no gradient (token ids, masks, numbers like the
  ``2`` in ``x * 2``, anything computed under ``no_grad`` or from constants only);
- white: an intermediate result; green: the tensor being drawn.

An op's label lists its non-tensor arguments (``Sum`` / ``axis=(1,)``); a tensor's gives
its name when ``params`` names it, its shape and dtype, and after a backward its gradient's
shape and largest magnitude. ``to_svg`` uses Graphviz's ``dot`` when it is installed and
otherwise lays the graph out itself, in the layered style Graphviz uses.

>>> import tinygrad_lm as tl
>>> from tinygrad_lm import viz
>>> w = tl.Tensor([1.0, 2.0], requires_grad=True)
>>> print(viz.to_dot((w * 2).sum(), params={"w": w}).splitlines()[0])
digraph autograd {
"""
from __future__ import annotations

import html
import math
import numbers
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, NamedTuple

from . import backend
from .autograd import Function
from .models.gpt import GPT, GPTConfig
from .tensor import Tensor


class _Style(NamedTuple):
    shape: str  # Graphviz's shape name: "box" or "ellipse"
    fill: str
    border: str
    text: str
    dashed: bool


# One look per kind of node, shared by the DOT and the SVG output.
_STYLES = {
    "op": _Style("ellipse", "#fff2cc", "#b58900", "#000000", False),
    "leaf": _Style("box", "#cfe2f3", "#3d85c6", "#000000", False),
    "const": _Style("box", "#eeeeee", "#999999", "#777777", True),
    "tensor": _Style("box", "#ffffff", "#666666", "#000000", False),
    "output": _Style("box", "#d9ead3", "#38761d", "#000000", False),
}

_FREED = ("viz: the graph behind this tensor was freed by backward(); draw it before calling "
          "backward, or call backward(retain_graph=True)")


# ------------------------------------------------------------------ collecting the graph


@dataclass
class _Node:
    kind: str  # a key of _STYLES
    lines: list[str]  # the label, one entry per line


@dataclass
class _Graph:
    nodes: list[_Node] = field(default_factory=list)
    edges: list[tuple[int, int]] = field(default_factory=list)  # (from, to), as data flows


def _collect(tensor: Tensor, params: Mapping[str, Tensor] | None, show_grads: bool,
             max_nodes: int) -> _Graph:
    """The nodes and edges behind ``tensor``, found once for every output format.

    The walk uses a stack, not recursion, because graphs can be 100,000 ops deep. A tensor
    made by an op is identified by that op (several Tensor objects may share it), a leaf
    by itself.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"viz: expected a Tensor, got {type(tensor).__name__}")
    names = {id(t): name for name, t in (params or {}).items()}
    graph = _Graph()
    boxes: dict[int, int] = {}  # id of a tensor's op (or of a leaf) -> its node's index

    def add(kind: str, lines: list[str]) -> int:
        if len(graph.nodes) >= max_nodes:
            raise ValueError(f"viz: the graph has more than max_nodes={max_nodes} nodes; pass a "
                             "larger max_nodes, or draw a smaller model (a picture this big is "
                             "hard to read)")
        graph.nodes.append(_Node(kind, lines))
        return len(graph.nodes) - 1

    def box(t: Tensor) -> tuple[int, bool]:
        """The node of tensor ``t``, and whether it is new."""
        key = id(t) if t._ctx is None else id(t._ctx)
        if key in boxes:
            return boxes[key], False
        kind = ("output" if t is tensor else "tensor" if t._ctx is not None else
                "leaf" if t.requires_grad else "const")
        boxes[key] = add(kind, _tensor_lines(t, names.get(id(t)), show_grads))
        return boxes[key], True

    box(tensor)
    stack = [tensor]
    while stack:
        fn = stack.pop()._ctx
        if fn is None:
            continue
        if fn.parents is None:
            raise RuntimeError(_FREED)
        op = add("op", _op_lines(fn))
        graph.edges.append((op, boxes[id(fn)]))
        new = []
        for arg in fn.parents:
            if isinstance(arg, Tensor):
                index, is_new = box(arg)
                graph.edges.append((index, op))
                if is_new:
                    new.append(arg)
        stack.extend(reversed(new))  # the first argument is walked first
    return graph


def _tensor_lines(t: Tensor, name: str | None, show_grads: bool) -> list[str]:
    lines = [] if name is None else [name]
    lines.append(f"{tuple(t.shape)} {t.dtype}")
    if show_grads and t.grad is not None:
        g = t.grad.data
        biggest = f", |g|max={float(abs(g).max()):.3g}" if g.size else ""
        lines.append(f"grad: {tuple(g.shape)}{biggest}")
    return lines


def _op_lines(fn: Function) -> list[str]:
    lines = [type(fn).__name__]
    lines += [f"arg{i}={_short(a)}" for i, a in enumerate(fn.parents or ())
              if not isinstance(a, Tensor) and a is not None]  # None: an absent bias
    lines += [f"{key}={_short(value)}" for key, value in fn.kwargs.items()]
    return lines


def _short(value: Any, limit: int = 32) -> str:
    """A one-line description of an op's argument, cut to ``limit`` characters."""
    text = _brief(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _brief(value: Any) -> str:
    if isinstance(value, Tensor) or backend.is_array(value):  # an index or a mask
        return f"<{tuple(value.shape)} {value.dtype}>"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(_brief(v) for v in value)
        if isinstance(value, list):
            return f"[{inner}]"
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, slice):
        start, stop = ("" if v is None else _brief(v) for v in (value.start, value.stop))
        return f"{start}:{stop}" + ("" if value.step is None else f":{_brief(value.step)}")
    if value is Ellipsis:
        return "..."
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return repr(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return f"{float(value):.4g}"
    return str(value)  # e.g. a dtype: "float32"


# ------------------------------------------------------------------ DOT


def _dot(graph: _Graph) -> str:
    lines = ["digraph autograd {",
             "  rankdir=TB;",  # leaves at the top, the output at the bottom
             '  node [fontname="monospace", fontsize=10];',
             '  edge [color="#555555", arrowsize=0.7];']
    for i, node in enumerate(graph.nodes):
        style = _STYLES[node.kind]
        fill = "filled,dashed" if style.dashed else "filled"
        lines.append(f'  n{i} [label="{_dot_label(node.lines)}", shape={style.shape}, '
                     f'style="{fill}", fillcolor="{style.fill}", color="{style.border}", '
                     f'fontcolor="{style.text}"];')
    lines += [f"  n{a} -> n{b};" for a, b in graph.edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_label(lines: list[str]) -> str:
    """DOT's quoted string: backslashes and quotes escaped, lines joined by DOT's ``\\n``."""
    return "\\n".join(line.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
                      for line in lines)


# ------------------------------------------------------------------ SVG, laid out here
#
# The classic layered ("Sugiyama") recipe, in four steps:
# 1. layers: every node one layer above its first use (the longest path to the output),
#    so that a parameter, and an op that only prepares it (a transpose), sit right above
#    the op that reads them;
# 2. an edge that skips layers is split by invisible "dummy" points, one per layer it
#    crosses, so it can bend around the nodes in between;
# 3. order within each layer: a few sweeps down and up, each sorting a layer by the mean
#    position of its neighbours in the layer before (the barycenter), which removes most
#    edge crossings;
# 4. x positions: each node pulled towards the mean x of its neighbours above and below,
#    keeping the order and a gap between neighbours; then each long edge made straight
#    where the rows it crosses leave room; y positions: one row per layer.

_FONT_SIZE = 11
_CHAR_W = 6.7  # width of one monospace character at _FONT_SIZE, a little generous
_LINE_H = 14
_GAP_X, _GAP_Y, _MARGIN = 18.0, 34.0, 12.0
_SWEEPS, _PASSES = 6, 6
_PORT_STEP = 12.0  # distance between the ends of edges meeting at one node


class _Box(NamedTuple):
    x: float  # centre
    y: float
    w: float  # width and height of the box, or of the ellipse
    h: float


def _node_size(node: _Node) -> tuple[float, float]:
    text_w = max(len(line) for line in node.lines) * _CHAR_W
    text_h = len(node.lines) * _LINE_H
    if _STYLES[node.kind].shape == "ellipse":  # the ellipse around a w x h text is sqrt(2) larger
        return (text_w + 6) * math.sqrt(2), (text_h + 2) * math.sqrt(2)
    return text_w + 16, text_h + 10


def _layers(count: int, edges: list[tuple[int, int]]) -> list[int]:
    """Step 1: a layer for each node, counted from the output at the bottom."""
    preds: list[list[int]] = [[] for _ in range(count)]
    succs: list[list[int]] = [[] for _ in range(count)]
    for a, b in edges:
        preds[b].append(a)
        succs[a].append(b)
    order, waiting = [], [len(s) for s in succs]
    ready = [v for v in range(count) if not succs[v]]
    while ready:  # Kahn's topological order, from the output up: a node comes after its uses
        v = ready.pop()
        order.append(v)
        for u in preds[v]:
            waiting[u] -= 1
            if not waiting[u]:
                ready.append(u)
    height = [0] * count  # the longest path down to the output
    for v in order:
        height[v] = max((height[w] + 1 for w in succs[v]), default=0)
    top = max(height, default=0)
    return [top - h for h in height]


def _split_long_edges(edges: list[tuple[int, int]],
                      layer: list[int]) -> tuple[list[list[int]], list[int]]:
    """Step 2: each edge as a chain of items, one per layer; new dummy items are numbered
    after the nodes and their layers appended to ``layer``."""
    layer = list(layer)
    chains = []
    for a, b in edges:
        chain = [a]
        for step in range(layer[a] + 1, layer[b]):
            layer.append(step)
            chain.append(len(layer) - 1)
        chains.append(chain + [b])
    return chains, layer


def _sort_row(row: list[int], neighbours: list[list[int]], pos: list[float]) -> None:
    """Step 3 for one layer: sort by the barycenter of the neighbours in the layer before."""
    def barycenter(item: int) -> float:
        near = neighbours[item]
        return sum(pos[n] for n in near) / len(near) if near else pos[item]
    row.sort(key=barycenter)
    for i, item in enumerate(row):
        pos[item] = i


def _place_row(desired: list[float], half: list[float]) -> list[float]:
    """Step 4 for one layer: x positions close to ``desired``, in order, ``_GAP_X`` apart.

    Pushing overlapping items to the right gives one valid answer, pushing them to the
    left another; their mean is valid too and does not drift to either side.
    """
    right, left = list(desired), list(desired)
    for i in range(1, len(desired)):
        right[i] = max(right[i], right[i - 1] + half[i - 1] + half[i] + _GAP_X)
    for i in range(len(desired) - 2, -1, -1):
        left[i] = min(left[i], left[i + 1] - half[i] - half[i + 1] - _GAP_X)
    return [(a + b) / 2 for a, b in zip(left, right)]


def _layout(graph: _Graph) -> tuple[list[_Box], list[list[tuple[float, float]]], float, float]:
    """Boxes for the nodes, a list of points for each edge, and the picture's size."""
    count = len(graph.nodes)
    chains, layer = _split_long_edges(graph.edges, _layers(count, graph.edges))
    sizes = [_node_size(node) for node in graph.nodes] + [(0.0, 0.0)] * (len(layer) - count)
    preds: list[list[int]] = [[] for _ in layer]
    succs: list[list[int]] = [[] for _ in layer]
    for chain in chains:
        for a, b in zip(chain, chain[1:]):
            preds[b].append(a)
            succs[a].append(b)
    rows: list[list[int]] = [[] for _ in range(max(layer, default=0) + 1)]
    for item, r in enumerate(layer):
        rows[r].append(item)
    _order_rows(rows, preds, succs)
    half = [w / 2 for w, _ in sizes]
    x = _x_positions(rows, [p + s for p, s in zip(preds, succs)], half)
    _straighten(chains, rows, x, half)
    shift = _MARGIN - min((x[i] - half[i] for i in range(len(layer))), default=0.0)

    y, top = [0.0] * len(layer), _MARGIN
    for row in rows:
        height = max((sizes[i][1] for i in row), default=0.0)
        for item in row:
            y[item] = top + height / 2
        top += height + _GAP_Y
    boxes = [_Box(x[i] + shift, y[i], w, h) for i, (w, h) in enumerate(sizes)]
    width = max((b.x + b.w / 2 for b in boxes), default=0.0) + _MARGIN
    return boxes[:count], _edge_points(graph, chains, boxes), width, top - _GAP_Y + _MARGIN


def _order_rows(rows: list[list[int]], preds: list[list[int]], succs: list[list[int]]) -> None:
    """Step 3: barycenter sweeps, down (by the inputs) then up (by the uses)."""
    pos = [0.0] * sum(len(row) for row in rows)
    for row in rows:
        for i, item in enumerate(row):
            pos[item] = i
    for _ in range(_SWEEPS):
        for row in rows[1:]:
            _sort_row(row, preds, pos)
        for row in reversed(rows[:-1]):
            _sort_row(row, succs, pos)


def _x_positions(rows: list[list[int]], neighbours: list[list[int]],
                 half: list[float]) -> list[float]:
    """Step 4: start packed and centred, then pull each item towards the mean x of its
    neighbours above and below, row by row, down and up a few times."""
    x = [0.0] * len(half)
    for _ in range(_PASSES):
        for row in rows + rows[::-1]:
            desired = [sum(x[n] for n in neighbours[i]) / len(neighbours[i])
                       if neighbours[i] else x[i] for i in row]
            for item, value in zip(row, _place_row(desired, [half[i] for i in row])):
                x[item] = value
    return x


def _straighten(chains: list[list[int]], rows: list[list[int]], x: list[float],
                half: list[float]) -> None:
    """Make each long edge one vertical line (under its source, above its target, or at the
    middle or either side of its path) where every row it crosses has room; else let it bend."""
    where = {item: (row, i) for row in rows for i, item in enumerate(row)}

    def room(item: int, target: float) -> bool:
        row, i = where[item]
        return ((i == 0 or x[row[i - 1]] + half[row[i - 1]] + _GAP_X <= target) and
                (i == len(row) - 1 or target + _GAP_X + half[row[i + 1]] <= x[row[i + 1]]))

    for chain in chains:
        dummies = chain[1:-1]
        if not dummies:
            continue
        path = sorted(x[d] for d in dummies)
        for target in (x[chain[0]], x[chain[-1]], path[len(path) // 2], path[-1], path[0]):
            if all(room(d, target) for d in dummies):
                for d in dummies:
                    x[d] = target
                break


def _edge_points(graph: _Graph, chains: list[list[int]],
                 boxes: list[_Box]) -> list[list[tuple[float, float]]]:
    """Each edge's points: it leaves the bottom of its source and enters the top of its
    target, with the edges at one node spread side by side (ordered by where they go, so
    they do not cross there), passing through its dummy points in between."""
    outgoing: list[list[int]] = [[] for _ in graph.nodes]
    incoming: list[list[int]] = [[] for _ in graph.nodes]
    for e, chain in enumerate(chains):
        outgoing[chain[0]].append(e)
        incoming[chain[-1]].append(e)
    start: list[tuple[float, float]] = [(0.0, 0.0)] * len(chains)
    end: list[tuple[float, float]] = [(0.0, 0.0)] * len(chains)
    for v, node in enumerate(graph.nodes):
        shape = _STYLES[node.kind].shape
        for edge_ids, points, other, top in ((outgoing[v], start, 1, False),
                                             (incoming[v], end, -2, True)):
            edge_ids.sort(key=lambda e: boxes[chains[e][other]].x)
            for e, dx in zip(edge_ids, _spread(len(edge_ids), boxes[v].w)):
                points[e] = _port(boxes[v], shape, dx, top)
    return [[start[e]] + [(boxes[d].x, boxes[d].y) for d in chain[1:-1]] + [end[e]]
            for e, chain in enumerate(chains)]


def _spread(count: int, width: float) -> list[float]:
    step = min(_PORT_STEP, 0.6 * width / max(count, 1))
    return [(i - (count - 1) / 2) * step for i in range(count)]


def _port(box: _Box, shape: str, dx: float, top: bool) -> tuple[float, float]:
    """The point on the border of ``box`` at horizontal offset ``dx``, above or below."""
    dy = box.h / 2
    if shape == "ellipse":
        dy *= math.sqrt(max(0.0, 1 - (2 * dx / box.w) ** 2))
    return box.x + dx, box.y - dy if top else box.y + dy


def _path(points: list[tuple[float, float]]) -> str:
    """An SVG path through ``points``: cubic pieces that leave and arrive vertically."""
    (x0, y0), parts = points[0], [f"M{points[0][0]:.1f},{points[0][1]:.1f}"]
    for x1, y1 in points[1:]:
        mid = (y0 + y1) / 2
        parts.append(f"C{x0:.1f},{mid:.1f} {x1:.1f},{mid:.1f} {x1:.1f},{y1:.1f}")
        x0, y0 = x1, y1
    return " ".join(parts)


def _svg(graph: _Graph) -> str:
    boxes, edges, width, height = _layout(graph)
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.1f} {height:.1f}" font-family="monospace" '
           f'font-size="{_FONT_SIZE}">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto"><path d="M0,1 L10,5 L0,9 z" fill="#555555"/>'
           '</marker></defs>',
           '<rect width="100%" height="100%" fill="#ffffff"/>',
           '<g class="edges" fill="none" stroke="#555555" stroke-width="1">']
    out += [f'<path d="{_path(points)}" marker-end="url(#arrow)"/>' for points in edges]
    out.append("</g>")
    for i, (node, box) in enumerate(zip(graph.nodes, boxes)):
        style = _STYLES[node.kind]
        paint = f'fill="{style.fill}" stroke="{style.border}"' + (
            ' stroke-dasharray="4,2"' if style.dashed else "")
        if style.shape == "ellipse":
            shape = (f'<ellipse cx="{box.x:.1f}" cy="{box.y:.1f}" rx="{box.w / 2:.1f}" '
                     f'ry="{box.h / 2:.1f}" {paint}/>')
        else:
            shape = (f'<rect x="{box.x - box.w / 2:.1f}" y="{box.y - box.h / 2:.1f}" '
                     f'width="{box.w:.1f}" height="{box.h:.1f}" rx="2" {paint}/>')
        # the first baseline, so the block of lines is centred on the node
        first = box.y - (len(node.lines) - 1) * _LINE_H / 2 + 0.35 * _FONT_SIZE
        spans = "".join(f'<tspan x="{box.x:.1f}" dy="{0 if j == 0 else _LINE_H}">'
                        f"{html.escape(line)}</tspan>" for j, line in enumerate(node.lines))
        out.append(f'<g class="node" id="n{i}">{shape}<text x="{box.x:.1f}" y="{first:.1f}" '
                   f'text-anchor="middle" fill="{style.text}">{spans}</text></g>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ public API


def to_dot(tensor: Tensor, params: Mapping[str, Tensor] | None = None, show_grads: bool = True,
           max_nodes: int = 2000) -> str:
    """The graph behind ``tensor`` as Graphviz DOT source (render it with ``dot -Tsvg``).

    ``params`` names tensors, e.g. ``dict(model.named_parameters())``; ``show_grads`` adds
    each tensor's ``.grad`` when it has one. Raises ValueError past ``max_nodes`` nodes and
    RuntimeError when backward has already freed the graph.
    """
    return _dot(_collect(tensor, params, show_grads, max_nodes))


def to_svg(tensor: Tensor, params: Mapping[str, Tensor] | None = None, show_grads: bool = True,
           max_nodes: int = 2000, use_graphviz: bool | None = None) -> str:
    """The graph behind ``tensor`` as a standalone SVG document.

    ``use_graphviz``: None uses Graphviz's ``dot`` when it is on PATH and the built-in
    layout otherwise; False always uses the built-in layout (reproducible pictures); True
    requires Graphviz. The other arguments are those of ``to_dot``.
    """
    graph = _collect(tensor, params, show_grads, max_nodes)
    dot = None if use_graphviz is False else shutil.which("dot")
    if use_graphviz and dot is None:
        raise RuntimeError("viz: use_graphviz=True but Graphviz's `dot` is not on PATH; install "
                           "Graphviz or pass use_graphviz=None to fall back to the built-in layout")
    if dot is None:
        return _svg(graph)
    result = subprocess.run([dot, "-Tsvg"], input=_dot(graph), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"viz: Graphviz `{dot} -Tsvg` failed: {result.stderr.strip()}")
    return result.stdout


def draw(tensor: Tensor, path: str | Path, params: Mapping[str, Tensor] | None = None,
         show_grads: bool = True, max_nodes: int = 2000,
         use_graphviz: bool | None = None) -> Path:
    """Write the graph behind ``tensor`` to ``path``: DOT for ``.dot``, SVG for ``.svg``.

    The other arguments are those of ``to_svg``; returns the path written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".dot", ".svg"):
        raise ValueError(f"draw: cannot tell the format of {str(path)!r}: the file name must end "
                         f"in .dot or .svg, not {path.suffix or 'nothing'!r}")
    text = (to_dot(tensor, params, show_grads, max_nodes) if suffix == ".dot" else
            to_svg(tensor, params, show_grads, max_nodes, use_graphviz))
    path.write_text(text, encoding="utf-8")
    return path


def tiny_gpt_loss(n_layer: int = 1, batch: int = 2) -> tuple[Tensor, dict[str, Tensor]]:
    """A tiny GPT's loss and its named parameters: a ready-made graph worth drawing.

    The tokens are fixed (not random), so the graph's shapes are the same on every call;
    seed with ``tl.manual_seed`` first for the same weights and gradients too.
    """
    config = GPTConfig(n_layer=n_layer, n_head=2, n_embd=16, block_size=8, vocab_size=11)
    model = GPT(config)
    T, V = config.block_size, config.vocab_size
    tokens = [[(7 * (b * T + t) + 3) % V for t in range(T + 1)] for b in range(batch)]
    _, loss = model([row[:-1] for row in tokens], [row[1:] for row in tokens])
    return loss, dict(model.named_parameters())
