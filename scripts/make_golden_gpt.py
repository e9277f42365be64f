"""Write tests/fixtures/golden_gpt.npz: a tiny GPT's forward, backward and AdamW steps,
computed by an independent PyTorch implementation of the same architecture
(`benchmarks/torch_gpt.py`).

The test `tests/test_gpt_golden.py` loads the parameters into tinygrad_lm's GPT and compares
logits, loss, every gradient and the losses of a few AdamW steps, tensor by tensor.
Run it once with PyTorch installed: `python scripts/make_golden_gpt.py`.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.torch_gpt import TorchGPT  # noqa: E402

CONFIG = dict(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=16, dropout=0.0, bias=True)
STEPS, LR, BETAS, WEIGHT_DECAY = 3, 1e-2, (0.9, 0.99), 0.1
OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "golden_gpt.npz"


def main() -> None:
    torch.manual_seed(0)
    torch.set_default_dtype(torch.float64)
    model = TorchGPT(CONFIG)
    with torch.no_grad():  # non-trivial LayerNorm parameters, so their gradients are tested
        for name, p in model.named_parameters():
            if "ln" in name:
                p.add_(0.1 * torch.randn_like(p))
    rng = np.random.default_rng(0)
    idx = rng.integers(0, CONFIG["vocab_size"], (3, CONFIG["block_size"]))
    targets = rng.integers(0, CONFIG["vocab_size"], (3, CONFIG["block_size"]))
    arrays = {f"param/{k}": v.detach().numpy().copy() for k, v in model.state_dict().items()}
    logits, loss = model(torch.from_numpy(idx), torch.from_numpy(targets))
    loss.backward()
    arrays.update({f"grad/{k}": p.grad.numpy().copy() for k, p in model.named_parameters()})
    decay = [p for p in model.parameters() if p.ndim >= 2]
    other = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": other, "weight_decay": 0.0}], lr=LR, betas=BETAS)
    losses = []
    for _ in range(STEPS):
        opt.step()
        opt.zero_grad()
        _, step_loss = model(torch.from_numpy(idx), torch.from_numpy(targets))
        step_loss.backward()
        losses.append(step_loss.item())
    np.savez_compressed(OUT, idx=idx, targets=targets, logits=logits.detach().numpy(),
                        loss=np.array(loss.item()), step_losses=np.array(losses),
                        config=np.array(repr(CONFIG)), **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
