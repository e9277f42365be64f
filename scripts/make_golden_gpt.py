"""Write tests/fixtures/golden_gpt.npz: a tiny GPT's forward, backward and AdamW steps,
computed by an independent PyTorch implementation of the same architecture.

The test `tests/test_gpt_golden.py` loads the parameters into tinygrad_lm's GPT and compares
logits, loss, every gradient and the losses of a few AdamW steps, tensor by tensor.
Run it once with PyTorch installed: `python scripts/make_golden_gpt.py`.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

CONFIG = dict(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=16, dropout=0.0, bias=True)
STEPS, LR, BETAS, WEIGHT_DECAY = 3, 1e-2, (0.9, 0.99), 0.1
OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "golden_gpt.npz"


class Attention(nn.Module):
    def __init__(self, c: dict) -> None:
        super().__init__()
        self.c_attn = nn.Linear(c["n_embd"], 3 * c["n_embd"], bias=c["bias"])
        self.c_proj = nn.Linear(c["n_embd"], c["n_embd"], bias=c["bias"])
        self.n_head = c["n_head"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(C // self.n_head)
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        y = scores.masked_fill(~mask, float("-inf")).softmax(-1) @ v
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, c: dict) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(c["n_embd"])
        self.attn = Attention(c)
        self.ln_2 = nn.LayerNorm(c["n_embd"])
        self.mlp = nn.ModuleDict(dict(c_fc=nn.Linear(c["n_embd"], 4 * c["n_embd"]),
                                      c_proj=nn.Linear(4 * c["n_embd"], c["n_embd"])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp.c_proj(F.gelu(self.mlp.c_fc(self.ln_2(x))))


class GPT(nn.Module):
    def __init__(self, c: dict) -> None:
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(c["vocab_size"], c["n_embd"]),
            wpe=nn.Embedding(c["block_size"], c["n_embd"]),
            h=nn.ModuleList([Block(c) for _ in range(c["n_layer"])]),
            ln_f=nn.LayerNorm(c["n_embd"])))
        self.lm_head = nn.Linear(c["n_embd"], c["vocab_size"], bias=False)
        self.transformer.wte.weight = self.lm_head.weight

    def forward(self, idx: torch.Tensor, targets: torch.Tensor):
        pos = torch.arange(idx.shape[1])
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        return logits, F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def main() -> None:
    torch.manual_seed(0)
    torch.set_default_dtype(torch.float64)
    model = GPT(CONFIG)
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
