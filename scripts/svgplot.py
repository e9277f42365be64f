"""A few plots as plain SVG text, for the tutorial's pictures (scripts/make_tutorial_images.py).

No plotting library: the same numbers give the same bytes on every machine, which lets a
test regenerate the pictures and compare them with the committed files. Coordinates are
written with one decimal and colours with two hex digits per channel, so differences far
below what the eye sees (the last bits of a float32 sum) do not change the file.
"""
from __future__ import annotations

import html
from typing import Sequence

FONT = "font-family=\"DejaVu Sans, Arial, sans-serif\""
BLUE, ORANGE, GREEN, RED, GREY, PURPLE = \
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#7f7f7f", "#9467bd"


def _n(v: float) -> str:
    """A coordinate with one decimal, without a trailing .0 and never as -0."""
    s = f"{v:.1f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def mix(colour_a: str, colour_b: str, t: float) -> str:
    """The colour a fraction t (clipped to [0, 1]) of the way from colour_a to colour_b."""
    t = min(1.0, max(0.0, t))
    a = [int(colour_a[i:i + 2], 16) for i in (1, 3, 5)]
    b = [int(colour_b[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b))


class Figure:
    """A canvas of SVG elements, written out in the order they were added."""

    def __init__(self, width: float, height: float) -> None:
        self.width, self.height = width, height
        self.items: list[str] = []

    def text(self, x: float, y: float, s: str, size: float = 12, anchor: str = "middle",
             colour: str = "#000000", bold: bool = False, rotate: bool = False) -> None:
        extra = ' font-weight="bold"' if bold else ""
        if rotate:
            extra += f' transform="rotate(-90 {_n(x)} {_n(y)})"'
        self.items.append(f'<text x="{_n(x)}" y="{_n(y)}" font-size="{_n(size)}" '
                          f'text-anchor="{anchor}" fill="{colour}"{extra}>{html.escape(s)}</text>')

    def line(self, x1: float, y1: float, x2: float, y2: float, colour: str = "#000000",
             width: float = 1, dash: bool = False) -> None:
        extra = ' stroke-dasharray="5,3"' if dash else ""
        self.items.append(f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" '
                          f'stroke="{colour}" stroke-width="{_n(width)}"{extra}/>')

    def arrow(self, x1: float, y1: float, x2: float, y2: float, colour: str = "#555555") -> None:
        self.items.append(f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" '
                          f'stroke="{colour}" stroke-width="1.2" marker-end="url(#arrow)"/>')

    def rect(self, x: float, y: float, w: float, h: float, fill: str, stroke: str = "none",
             rx: float = 0) -> None:
        extra = f' rx="{_n(rx)}"' if rx else ""
        self.items.append(f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}" '
                          f'fill="{fill}" stroke="{stroke}"{extra}/>')

    def ellipse(self, x: float, y: float, rx: float, ry: float, fill: str, stroke: str) -> None:
        self.items.append(f'<ellipse cx="{_n(x)}" cy="{_n(y)}" rx="{_n(rx)}" ry="{_n(ry)}" '
                          f'fill="{fill}" stroke="{stroke}"/>')

    def circle(self, x: float, y: float, r: float, fill: str, stroke: str = "none") -> None:
        self.items.append(f'<circle cx="{_n(x)}" cy="{_n(y)}" r="{_n(r)}" fill="{fill}" '
                          f'stroke="{stroke}" stroke-width="0.6"/>')

    def polyline(self, points: Sequence[tuple[float, float]], colour: str, width: float = 1.5,
                 dash: bool = False) -> None:
        extra = ' stroke-dasharray="6,3"' if dash else ""
        pts = " ".join(f"{_n(x)},{_n(y)}" for x, y in points)
        self.items.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" '
                          f'stroke-width="{_n(width)}"{extra}/>')

    def svg(self) -> str:
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{_n(self.width)}" '
                f'height="{_n(self.height)}" viewBox="0 0 {_n(self.width)} {_n(self.height)}" '
                f'{FONT}>\n<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
                'markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" '
                'fill="#555555"/></marker></defs>\n'
                f'<rect width="100%" height="100%" fill="#ffffff"/>\n')
        return head + "\n".join(self.items) + "\n</svg>\n"


class Axes:
    """A panel at (x, y) of size (w, h) that maps data coordinates to the canvas."""

    def __init__(self, fig: Figure, x: float, y: float, w: float, h: float,
                 xlim: tuple[float, float], ylim: tuple[float, float], title: str = "",
                 xlabel: str = "", ylabel: str = "", xticks: Sequence[float] = (),
                 yticks: Sequence[float] = (), tick_format: str = "{:g}") -> None:
        """``tick_format`` formats the y ticks; the x ticks are written with {:g}."""
        self.fig, self.x, self.y, self.w, self.h = fig, x, y, w, h
        self.xlim, self.ylim = xlim, ylim
        self.legend_rows = 0
        fig.rect(x, y, w, h, "none", "#333333")
        if title:
            fig.text(x + w / 2, y - 8, title, size=13, bold=True)
        for t in xticks:
            fig.line(self.px(t), y + h, self.px(t), y + h + 4, "#333333")
            fig.text(self.px(t), y + h + 16, f"{t:g}", size=10)
        for t in yticks:
            fig.line(x - 4, self.py(t), x, self.py(t), "#333333")
            fig.line(x, self.py(t), x + w, self.py(t), "#e5e5e5")
            fig.text(x - 6, self.py(t) + 3.5, tick_format.format(t), size=10, anchor="end")
        if xlabel:
            fig.text(x + w / 2, y + h + 32, xlabel, size=11)
        if ylabel:
            fig.text(x - 38, y + h / 2, ylabel, size=11, rotate=True)

    def px(self, v: float) -> float:
        return self.x + (v - self.xlim[0]) / (self.xlim[1] - self.xlim[0]) * self.w

    def py(self, v: float) -> float:
        return self.y + self.h - (v - self.ylim[0]) / (self.ylim[1] - self.ylim[0]) * self.h

    def plot(self, xs: Sequence[float], ys: Sequence[float], colour: str, label: str = "",
             dash: bool = False, marker: bool = False) -> None:
        points = [(self.px(a), self.py(b)) for a, b in zip(xs, ys)]
        self.fig.polyline(points, colour, dash=dash)
        if marker:
            for px, py in points:
                self.fig.circle(px, py, 2.5, colour)
        if label:
            ly = self.y + 14 + 16 * self.legend_rows
            self.legend_rows += 1
            self.fig.line(self.x + self.w - 150, ly - 4, self.x + self.w - 128, ly - 4, colour,
                          2, dash)
            self.fig.text(self.x + self.w - 124, ly, label, size=11, anchor="start")


def heatmap(fig: Figure, x: float, y: float, cell: float, matrix: Sequence[Sequence[float]],
            vmax: float, title: str = "", row_labels: Sequence[str] = (),
            col_labels: Sequence[str] = (), colour: str = BLUE, annotate: str = "",
            masked: Sequence[Sequence[bool]] | None = None, gamma: float = 1.0) -> None:
    """Cells from white (0) to ``colour`` (vmax), the shade (v / vmax) ** gamma (below 1 to
    tell small values apart); ``annotate`` formats each value inside its cell; a masked cell
    is grey."""
    rows, cols = len(matrix), len(matrix[0])
    if title:
        fig.text(x + cols * cell / 2, y - 8, title, size=13, bold=True)
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            cx, cy = x + j * cell, y + i * cell
            if masked is not None and masked[i][j]:
                fig.rect(cx, cy, cell, cell, "#dddddd", "#ffffff")
                continue
            fill = mix("#ffffff", colour, (v / vmax) ** gamma)
            fig.rect(cx, cy, cell, cell, fill, "#ffffff")
            if annotate:
                dark = v / vmax > 0.6
                fig.text(cx + cell / 2, cy + cell / 2 + 4, annotate.format(v), size=10,
                         colour="#ffffff" if dark else "#000000")
    for i, label in enumerate(row_labels):
        fig.text(x - 4, y + i * cell + cell / 2 + 4, label, size=10, anchor="end")
    for j, label in enumerate(col_labels):
        fig.text(x + j * cell + cell / 2, y - 3 if not title else y + rows * cell + 13, label,
                 size=10)
    fig.rect(x, y, cols * cell, rows * cell, "none", "#333333")
