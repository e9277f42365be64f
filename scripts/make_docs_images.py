"""Write the autograd-graph pictures in docs/images/: graph_mlp.svg and graph_gpt.svg.

Both use the built-in SVG layout (not Graphviz), so the files are the same on every
machine. ``params`` names the inputs and the loss as well as the parameters. Each graph is
drawn after a backward with retain_graph=True, so the parameters' gradients show.
Run: `python scripts/make_docs_images.py`.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import tinygrad_lm as tl  # noqa: E402
from tinygrad_lm import nn, viz  # noqa: E402
from tinygrad_lm.nn import functional as F  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "docs" / "images"


class MLP(nn.Module):
    """Two linear layers with a tanh between them: 4 features in, 3 class logits out."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x: tl.Tensor) -> tl.Tensor:
        return self.fc2(self.fc1(x).tanh())


def draw_mlp() -> Path:
    model = MLP()
    x, targets = tl.randn(5, 4), tl.Tensor([0, 2, 1, 0, 1])
    loss = F.cross_entropy(model(x), targets)
    loss.backward(retain_graph=True)
    names = dict(x=x, loss=loss, **dict(model.named_parameters()))
    return viz.draw(loss, OUT / "graph_mlp.svg", params=names, use_graphviz=False)


def draw_gpt() -> Path:
    loss, params = viz.tiny_gpt_loss(n_layer=1, batch=2)
    loss.backward(retain_graph=True)
    return viz.draw(loss, OUT / "graph_gpt.svg", params=dict(loss=loss, **params),
                    use_graphviz=False)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for make in (draw_mlp, draw_gpt):
        tl.manual_seed(0)
        path = make()
        print(f"wrote {path} ({path.stat().st_size / 1000:.0f} kB)")


if __name__ == "__main__":
    main()
