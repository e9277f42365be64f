"""The work a PyTorch worker process times (see benchmarks/workers.py): the same tasks as
benchmarks/tasks_tinygrad.py, built from the same shapes and inputs, in PyTorch eager.

NumPy is imported first, as users import it; tinygrad_lm never is.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

import torch
from benchmarks import machine, shapes
from benchmarks.timing import Candidate, Task
from benchmarks.torch_gpt import TorchGPT
from torch.nn import functional as F

OPS: dict[str, Callable[..., torch.Tensor]] = {
    "gelu": lambda x: F.gelu(x),
    "layer_norm": lambda x, w, b: F.layer_norm(x, (x.shape[-1],), w, b, shapes.EPS),
    "cross_entropy": lambda logits, targets: F.cross_entropy(logits, targets),
    "attention": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
    "embedding": lambda weight, ids: F.embedding(ids, weight),
}


def configure(device: str, kernels: str, threads: int | None) -> dict[str, Any]:
    """Set the intra-op threads (``kernels`` is tinygrad_lm's and ignored), check the
    device, and say what the numbers depend on."""
    if threads is not None:
        torch.set_num_threads(threads)
    info: dict[str, Any] = {"library": "torch", "version": torch.__version__,
                            "device": device, "numpy": np.__version__,
                            "threads": torch.get_num_threads(),
                            "interop_threads": torch.get_num_interop_threads()}
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"torch cannot use {device}: no CUDA device or driver")
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def build(device: str, task: str, **args: Any) -> Task:
    """The Task named ``task`` (``sgemm``, ``gpt_matmuls``, ``gpt_step``, ``gpt_forward`` or
    ``op``)."""
    return {"sgemm": sgemm, "gpt_matmuls": gpt_matmuls, "gpt_step": gpt_step,
            "gpt_forward": gpt_forward, "op": op}[task](device, **args)


def peak_memory(device: str) -> int:
    """Peak bytes: this process's resident set (CPU) or torch's CUDA allocator."""
    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated(torch.device(device)))
    return machine.peak_rss()


def _sync(device: str) -> Callable[[], None]:
    if device.startswith("cuda"):
        return lambda: torch.cuda.synchronize(torch.device(device))
    return lambda: None


def sgemm(device: str, n: int) -> Task:
    """An ``n`` x ``n`` float32 matmul."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return Task(Candidate(lambda: a @ b, _sync(device)))


def gpt_matmuls(device: str, config: str) -> Task:
    """Every matmul of ``config``'s train step (``shapes.step_matmuls``), as
    tasks_tinygrad.gpt_matmuls, on PyTorch's matmul."""
    operands: dict[tuple[int, ...], torch.Tensor] = {}
    pairs = [tuple(operands.setdefault(shape, torch.randn(shape, device=device)) for shape in pair)
             for pair in shapes.step_matmuls(config)]

    def matmuls() -> None:
        for a, b in pairs:
            a @ b

    return Task(Candidate(matmuls, _sync(device)))


def _gpt(device: str, config: str) -> tuple[TorchGPT, torch.Tensor, torch.Tensor]:
    """The GPT of ``config`` (PyTorch's default init: the values do not change the time)
    and its batch, on ``device``."""
    torch.manual_seed(0)
    model = TorchGPT(shapes.model_kwargs(config)).to(device)
    x, y = shapes.batch(config)
    return model, torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)


def _adamw(model: TorchGPT) -> torch.optim.AdamW:
    """AdamW with tinygrad_lm.train's settings and groups (only 2-D weights decay)."""
    a = shapes.ADAMW
    decay = [p for p in model.parameters() if p.ndim >= 2]
    other = [p for p in model.parameters() if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": a["weight_decay"]},
                              {"params": other, "weight_decay": 0.0}],
                             lr=a["lr"], betas=(a["beta1"], a["beta2"]))


def gpt_step(device: str, config: str) -> Task:
    """Forward + loss + backward + AdamW step."""
    model, x, y = _gpt(device, config)
    optimizer = _adamw(model)

    def step() -> None:
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return Task(Candidate(step, _sync(device)),
                info={"parameters": sum(p.numel() for p in model.parameters())})


def gpt_forward(device: str, config: str) -> Task:
    """The forward pass and loss, recording no graph."""
    model, x, y = _gpt(device, config)

    def forward() -> None:
        with torch.no_grad():
            model(x, y)

    return Task(Candidate(forward, _sync(device)))


def op(device: str, name: str, config: str) -> Task:
    """Forward + backward of an op at ``config``'s shapes, or (``adamw``,
    ``clip_grad_norm``) the update of the config's model parameters."""
    if name in shapes.MODEL_OPS:
        return _model_op(device, name, config)
    arrays, dout_array = shapes.op_inputs(name, config)
    args = [torch.from_numpy(a).to(device).requires_grad_(a.dtype.kind == "f") for a in arrays]
    inputs = [t for t in args if t.requires_grad]
    dout = None if dout_array is None else torch.from_numpy(dout_array).to(device)
    fn = OPS[name]

    def forward_backward() -> tuple[torch.Tensor, ...]:
        out = fn(*args)
        return (out,) + torch.autograd.grad(out, inputs, dout)  # as tasks_tinygrad.op

    check = [_norm(t.detach()) for t in forward_backward()]
    return Task(Candidate(forward_backward, _sync(device)), check=check)


def _model_op(device: str, name: str, config: str) -> Task:
    model, _, _ = _gpt(device, config)
    params = list(model.parameters())
    rng = np.random.default_rng(2)
    for p in params:
        p.grad = torch.from_numpy(rng.standard_normal(p.shape, dtype=np.float32)).to(device)
    info = {"parameters": sum(p.numel() for p in params)}
    if name == "adamw":
        return Task(Candidate(_adamw(model).step, _sync(device)), info=info)
    return Task(Candidate(lambda: torch.nn.utils.clip_grad_norm_(params, shapes.MAX_NORM),
                          _sync(device)), info=info)


def _norm(t: torch.Tensor) -> float:
    return float(np.linalg.norm(t.cpu().numpy().astype(np.float64)))
