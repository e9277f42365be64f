"""tinygrad_lm.viz: DOT and SVG pictures of the autograd graph."""
from __future__ import annotations

import os
import re
import shutil
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import tinygrad_lm as tl
from tinygrad_lm import viz

SVG = "{http://www.w3.org/2000/svg}"
NODE = re.compile(r'  (n\d+) \[label="((?:[^"\\]|\\.)*)", shape=(box|ellipse), '
                  r'style="([a-z,]+)", fillcolor="(#[0-9a-f]{6})", color="#[0-9a-f]{6}", '
                  r'fontcolor="#[0-9a-f]{6}"\];')
EDGE = re.compile(r"  (n\d+) -> (n\d+);")


def parse_dot(text: str) -> tuple[dict[str, dict[str, str]], list[tuple[str, str]]]:
    """Nodes (id -> label lines, shape, style, fill) and edges of ``to_dot``'s output; every
    line must be one of the forms it writes, so a malformed line fails here."""
    lines = text.splitlines()
    assert lines[0] == "digraph autograd {" and lines[-1] == "}"
    assert text.count("{") == text.count("}") == 1
    nodes: dict[str, dict[str, str]] = {}
    edges: list[tuple[str, str]] = []
    for line in lines[1:-1]:
        if m := NODE.fullmatch(line):
            assert m[1] not in nodes
            label = re.sub(r"\\(.)", lambda e: "\n" if e[1] == "n" else e[1], m[2])  # unescape
            nodes[m[1]] = dict(label=label, shape=m[3], style=m[4], fill=m[5])
        elif m := EDGE.fullmatch(line):
            edges.append((m[1], m[2]))
        else:
            assert line.startswith(("  rankdir=", "  node [", "  edge [")), line
    for a, b in edges:
        assert a in nodes and b in nodes, f"edge {a} -> {b} to an undeclared node"
    return nodes, edges


def by_label(nodes: dict[str, dict[str, str]], label: str) -> list[str]:
    return [n for n, attrs in nodes.items() if attrs["label"] == label]


def small_graph() -> tuple[tl.Tensor, tl.Tensor, tl.Tensor, tl.Tensor]:
    a = tl.Tensor([[1.0, -2.0, 3.0], [4.0, 5.0, -6.0]], requires_grad=True)
    b = tl.Tensor([[0.5, 1.0, -1.5], [2.0, -7.0, 1.0]], requires_grad=True)
    c = tl.Tensor([1.0, 1.0, 1.0])  # a constant
    return a, b, c, (a * b + c).sum()


def svg_nodes(svg: str) -> list[dict]:
    """For each node group of a built-in SVG: its label lines and bounding box."""
    root = ET.fromstring(svg)
    assert root.tag == SVG + "svg"
    nodes = []
    for group in root.iter(SVG + "g"):
        if group.get("class") != "node":
            continue
        texts = group.findall(SVG + "text")
        assert len(texts) == 1, "one text label per node"
        lines = [span.text or "" for span in texts[0].findall(SVG + "tspan")]
        shape = group.find(SVG + "rect")
        if shape is not None:
            x, y, w, h = (float(shape.get(k)) for k in ("x", "y", "width", "height"))
            box = dict(shape="box", x0=x, y0=y, x1=x + w, y1=y + h)
        else:
            shape = group.find(SVG + "ellipse")
            cx, cy, rx, ry = (float(shape.get(k)) for k in ("cx", "cy", "rx", "ry"))
            box = dict(shape="ellipse", x0=cx - rx, y0=cy - ry, x1=cx + rx, y1=cy + ry)
        nodes.append(dict(id=group.get("id"), lines=lines, **box))
    return nodes


def path_ends(svg: str) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    root = ET.fromstring(svg)
    ends = []
    for path in root.iter(SVG + "path"):
        if path.get("marker-end"):
            numbers = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", path.get("d"))]
            ends.append(((numbers[0], numbers[1]), (numbers[-2], numbers[-1])))
    return ends


def on_border(node: dict, point: tuple[float, float], bottom: bool) -> bool:
    """Whether ``point`` lies on the bottom (or top) half of the node's outline."""
    x, y = point
    if node["shape"] == "box":
        return (node["x0"] <= x <= node["x1"] and
                abs(y - (node["y1"] if bottom else node["y0"])) < 0.2)
    cx, cy = (node["x0"] + node["x1"]) / 2, (node["y0"] + node["y1"]) / 2
    rx, ry = (node["x1"] - node["x0"]) / 2, (node["y1"] - node["y0"]) / 2
    return abs(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 - 1) < 0.02 and (y > cy) == bottom


# ----------------------------------------------------------------------------- DOT


def test_dot_shows_ops_shapes_kinds_and_the_flow_from_leaves_to_output() -> None:
    a, b, c, out = small_graph()
    nodes, edges = parse_dot(viz.to_dot(out))
    assert len(nodes) == 9 and len(edges) == 8  # 3 ops, their 3 results, 3 leaves
    (mul,), (add,) = by_label(nodes, "Mul"), by_label(nodes, "Add")
    (total,) = by_label(nodes, "Sum\naxis=None\nkeepdims=False")
    assert all(nodes[n]["shape"] == "ellipse" for n in (mul, add, total))
    assert len(by_label(nodes, "(2, 3) float32")) == 4  # a, b, a*b and a*b + c
    (const,) = by_label(nodes, "(3,) float32")
    assert "dashed" in nodes[const]["style"] and (const, add) in edges
    (output,) = by_label(nodes, "() float32")
    assert (total, output) in edges and not [e for e in edges if e[0] == output]
    inputs_of_mul = [s for s, t in edges if t == mul]
    assert len(inputs_of_mul) == 2
    assert all(nodes[n]["shape"] == "box" and n not in [t for _, t in edges]
               for n in inputs_of_mul)
    fills = {nodes[n]["fill"] for n in inputs_of_mul}
    assert len(fills) == 1 and fills.isdisjoint({nodes[const]["fill"], nodes[output]["fill"]})


def test_dot_labels_kwargs_shortly() -> None:
    x = tl.randn(2, 3, 4, requires_grad=True)
    nodes, _ = parse_dot(viz.to_dot(x[:, 1:].sum(axis=(1,)).reshape(-1)))
    assert by_label(nodes, "Sum\naxis=(1,)\nkeepdims=False")
    assert by_label(nodes, "GetItem\nindex=(:, 1:)")
    assert by_label(nodes, "Reshape\nshape=(-1,)")
    long = viz._short(tuple(range(100)))
    assert long.startswith("(0, 1, 2") and long.endswith("...") and len(long) == 32


def test_params_name_leaves_and_labels_are_escaped() -> None:
    a, b, c, out = small_graph()
    name = 'w"\\x'
    text = viz.to_dot(out, params={"weight": a, name: b, "loss": out})
    assert '\\"' in text and "\\\\" in text
    nodes, _ = parse_dot(text)
    assert by_label(nodes, "weight\n(2, 3) float32")
    assert by_label(nodes, name + "\n(2, 3) float32")
    assert by_label(nodes, "loss\n() float32")


def test_a_shared_tensor_is_one_node_with_one_edge_per_use() -> None:
    a = tl.Tensor([1.0, 2.0], requires_grad=True)
    y = a * a
    nodes, edges = parse_dot(viz.to_dot((y + y).sum()))
    (mul,), (add,) = by_label(nodes, "Mul"), by_label(nodes, "Add")
    into_mul = [s for s, t in edges if t == mul]
    assert len(into_mul) == 2 and into_mul[0] == into_mul[1]  # x * x: one x, two edges
    (y_node,) = [t for s, t in edges if s == mul]
    assert [s for s, t in edges if t == add] == [y_node, y_node]
    assert len(nodes) == 7


def test_grads_show_after_backward_with_retain_graph(device: str) -> None:
    a = tl.Tensor([[1.0, -2.0, 3.0]], device=device, requires_grad=True)
    b = tl.Tensor([[0.5, 4.0, -1.5]], device=device, requires_grad=True)
    out = (a * b).sum()
    assert "grad:" not in viz.to_dot(out)
    out.backward(retain_graph=True)
    nodes, _ = parse_dot(viz.to_dot(out, params={"a": a, "b": b}))
    assert by_label(nodes, "a\n(1, 3) float32\ngrad: (1, 3), |g|max=4")  # d out/d a = b
    assert by_label(nodes, "b\n(1, 3) float32\ngrad: (1, 3), |g|max=3")
    assert "grad:" not in viz.to_dot(out, show_grads=False)


def test_a_graph_freed_by_backward_is_a_clear_error() -> None:
    _, _, _, out = small_graph()
    out.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        viz.to_dot(out)
    with pytest.raises(RuntimeError, match="before calling backward"):
        viz.to_svg(out, use_graphviz=False)


def test_max_nodes_is_enforced_exactly() -> None:
    _, _, _, out = small_graph()
    assert len(parse_dot(viz.to_dot(out, max_nodes=9))[0]) == 9
    with pytest.raises(ValueError, match="max_nodes=8"):
        viz.to_dot(out, max_nodes=8)


def test_a_10k_deep_chain_needs_no_recursion() -> None:
    x = tl.Tensor([1.0], requires_grad=True)
    y = x
    for _ in range(10_000):
        y = -y
    nodes, edges = parse_dot(viz.to_dot(y, max_nodes=20_001))
    assert len(nodes) == 20_001 and len(edges) == 20_000
    with pytest.raises(ValueError):
        viz.to_dot(y)


def test_constants_and_bad_arguments() -> None:
    nodes, edges = parse_dot(viz.to_dot(tl.Tensor([1.0, 2.0])))
    assert list(nodes.values())[0]["label"] == "(2,) float32" and not edges
    with pytest.raises(TypeError, match="expected a Tensor"):
        viz.to_dot([1.0, 2.0])


# ----------------------------------------------------------------------------- SVG


def check_svg(svg: str, dot: str) -> list[dict]:
    """The built-in SVG agrees with the DOT, node for node and edge for edge, and its nodes
    do not overlap; every edge leaves its source's bottom and enters its target's top."""
    nodes = svg_nodes(svg)
    dot_nodes, dot_edges = parse_dot(dot)
    assert [n["id"] for n in nodes] == list(dot_nodes)
    for node, attrs in zip(nodes, dot_nodes.values()):
        assert "\n".join(node["lines"]) == attrs["label"]
        assert node["shape"] == attrs["shape"]
    root = ET.fromstring(svg)
    width, height = (float(v) for v in root.get("viewBox").split()[2:])
    for i, p in enumerate(nodes):
        assert 0 <= p["x0"] and p["x1"] <= width and 0 <= p["y0"] and p["y1"] <= height
        for q in nodes[i + 1:]:
            assert (p["x1"] <= q["x0"] or q["x1"] <= p["x0"] or
                    p["y1"] <= q["y0"] or q["y1"] <= p["y0"]), f"{p} overlaps {q}"
    index = {n["id"]: n for n in nodes}
    ends = path_ends(svg)
    assert len(ends) == len(dot_edges)
    for (start, end), (a, b) in zip(ends, dot_edges):
        assert index[a]["y1"] < index[b]["y0"]  # data flows down
        assert on_border(index[a], start, bottom=True) and on_border(index[b], end, bottom=False)
    return nodes


def test_builtin_svg_of_a_small_graph() -> None:
    a, b, c, out = small_graph()
    names = {"<a & b>": a}
    svg = viz.to_svg(out, params=names, use_graphviz=False)
    nodes = check_svg(svg, viz.to_dot(out, params=names))
    assert ["<a & b>", "(2, 3) float32"] in [n["lines"] for n in nodes]
    assert svg == viz.to_svg(out, params=names, use_graphviz=False)  # reproducible


def test_builtin_svg_of_a_tiny_gpt_loss() -> None:
    tl.manual_seed(0)
    loss, params = viz.tiny_gpt_loss(n_layer=1)
    loss.backward(retain_graph=True)
    assert loss.shape == () and "transformer.wte.weight" in params
    svg = viz.to_svg(loss, params=params, use_graphviz=False)
    nodes = check_svg(svg, viz.to_dot(loss, params=params))
    labels = {n["lines"][0] for n in nodes}
    assert {"PackedAttention", "LayerNorm", "CrossEntropy", "transformer.h.0.mlp.c_fc.weight"} <= labels
    assert len(svg) < 300_000


def test_without_graphviz_the_builtin_layout_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, _, out = small_graph()
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)
    assert viz.to_svg(out) == viz.to_svg(out, use_graphviz=False)
    with pytest.raises(RuntimeError, match="not on PATH"):
        viz.to_svg(out, use_graphviz=True)


def fake_dot(folder: Path, body: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``dot`` executable first on PATH, running the shell ``body``."""
    script = folder / "dot"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")


@pytest.mark.skipif(os.name != "posix", reason="the fake dot is a shell script")
def test_graphviz_gets_the_dot_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, _, out = small_graph()
    fake_dot(tmp_path, f'echo "$@" > {tmp_path}/args\n/bin/cat > {tmp_path}/input\n'
             "echo '<svg xmlns=\"http://www.w3.org/2000/svg\"/>'\n", monkeypatch)
    assert viz.to_svg(out).strip() == '<svg xmlns="http://www.w3.org/2000/svg"/>'
    assert (tmp_path / "args").read_text().strip() == "-Tsvg"
    assert (tmp_path / "input").read_text() == viz.to_dot(out)
    assert viz.to_svg(out, use_graphviz=False) != viz.to_svg(out)
    fake_dot(tmp_path, "echo 'syntax error in line 3' >&2\nexit 1\n", monkeypatch)
    with pytest.raises(RuntimeError, match="syntax error in line 3"):
        viz.to_svg(out)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_real_graphviz_accepts_the_dot() -> None:
    a, b, c, out = small_graph()
    svg = viz.to_svg(out, params={'w"\\<x>': a}, use_graphviz=True)
    texts = "".join(ET.fromstring(svg).itertext())
    for label in ("Mul", "Add", "Sum", "axis=None", 'w"\\<x>', "(3,) float32"):
        assert label in texts


# ----------------------------------------------------------------------------- draw


def test_draw_writes_by_suffix_and_rejects_others(tmp_path: Path) -> None:
    _, _, _, out = small_graph()
    dot = viz.draw(out, tmp_path / "g.dot")
    assert dot == tmp_path / "g.dot" and dot.read_text() == viz.to_dot(out)
    svg = viz.draw(out, str(tmp_path / "g.SVG"), use_graphviz=False)
    assert svg.read_text() == viz.to_svg(out, use_graphviz=False)
    for name in ("g.png", "g"):
        with pytest.raises(ValueError, match=r"\.dot or \.svg"):
            viz.draw(out, tmp_path / name)
        assert not (tmp_path / name).exists()


def test_the_graph_command_draws_a_tiny_gpt(tmp_path, capsys):
    from tinygrad_lm.cli import main

    svg, dot = tmp_path / "g.svg", tmp_path / "g.dot"
    assert main(["graph", "-o", str(svg), "--no-graphviz"]) == 0
    assert capsys.readouterr().out.strip() == str(svg)
    root = ET.fromstring(svg.read_text())
    text = " ".join("".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "Attention" in text and "lm_head" not in text and "wte.weight" in text
    assert "grad:" in text  # drawn after backward
    assert main(["graph", "-o", str(dot), "--n-layer", "2", "--no-grads"]) == 0
    assert "h.1.attn.c_attn.weight" in dot.read_text() and "grad:" not in dot.read_text()
    assert main(["graph", "-o", str(tmp_path / "g.png")]) == 2
    assert "must end in .dot or .svg" in capsys.readouterr().err
