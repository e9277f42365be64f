"""The work a tinygrad_lm worker process times (see benchmarks/workers.py).

NumPy is imported first, as users import it; PyTorch never is. Every task is built from
benchmarks/shapes.py, so the PyTorch worker (benchmarks/tasks_torch.py) builds the same.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

import tinygrad_lm as tl
from benchmarks import machine, shapes
from benchmarks.timing import Candidate, Task
from tinygrad_lm import backend
from tinygrad_lm.models import GPT, GPTConfig
from tinygrad_lm.nn import functional as F
from tinygrad_lm.nn.utils import clip_grad_norm_
from tinygrad_lm.train import TrainConfig, configure_optimizer

OPS: dict[str, Callable[..., tl.Tensor]] = {
    "gelu": lambda x: F.gelu(x),
    "layer_norm": lambda x, w, b: F.layer_norm(x, x.shape[-1], w, b, eps=shapes.EPS),
    "cross_entropy": lambda logits, targets: F.cross_entropy(logits, targets),
    "attention": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
    "embedding": lambda weight, ids: F.embedding(ids, weight),
}


def configure(device: str, kernels: str, threads: int | None) -> dict[str, Any]:
    """Pick the kernels (and threads), check the device, and say what the numbers depend on."""
    tl.set_kernels(kernels)
    if threads is not None:
        tl.set_num_threads(threads)
    dev = backend.get_device(device)  # raises, saying why, when the device is unusable
    info: dict[str, Any] = {"library": "tinygrad_lm", "version": tl.__version__,
                            "device": dev.name, "kernels": kernels, "numpy": np.__version__,
                            "blas": _blas_name(), "blas_threads": machine.blas_threads()}
    try:
        import numba
    except ImportError:  # the CPU then runs the reference kernels
        info["threads"] = info["blas_threads"]
    else:
        info.update(numba=numba.__version__, numba_threads=numba.get_num_threads(),
                    threads=max(info["blas_threads"], numba.get_num_threads()))
    if dev.xp is not np:
        runtime = dev.xp.cuda.runtime
        info.update(cupy=dev.xp.__version__,
                    gpu=runtime.getDeviceProperties(dev.index)["name"].decode())
    return info


def _blas_name() -> str | None:
    """The BLAS NumPy was built with, e.g. ``scipy-openblas 0.3.31``."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except (TypeError, KeyError):  # NumPy < 1.25 has no mode="dicts"
        return None
    return f"{blas.get('name')} {blas.get('version')}"


def build(device: str, task: str, **args: Any) -> Task:
    """The Task named ``task`` (``sgemm``, ``gpt_matmuls``, ``gpt_step``, ``gpt_forward`` or
    ``op``)."""
    return {"sgemm": sgemm, "gpt_matmuls": gpt_matmuls, "gpt_step": gpt_step,
            "gpt_forward": gpt_forward, "op": op}[task](device, **args)


def peak_memory(device: str) -> int:
    """Peak bytes: this process's resident set (CPU) or CuPy's pool (GPU)."""
    dev = backend.get_device(device)
    if dev.xp is np:
        return machine.peak_rss()
    return int(dev.xp.get_default_memory_pool().total_bytes())


def sgemm(device: str, n: int) -> Task:
    """An ``n`` x ``n`` float32 matmul of the array library itself (NumPy's BLAS, or CuPy)."""
    dev = backend.get_device(device)
    a, b = dev.randn((n, n), np.float32), dev.randn((n, n), np.float32)
    return Task(Candidate(lambda: a @ b, dev.synchronize))


def gpt_matmuls(device: str, config: str) -> Task:
    """Every matmul of ``config``'s train step (``shapes.step_matmuls``) and nothing else,
    on the array library itself: the floor under tinygrad_lm's step on this BLAS."""
    dev = backend.get_device(device)
    operands: dict[tuple[int, ...], Any] = {}  # one array per shape: the values do not matter
    pairs = [tuple(operands.setdefault(shape, dev.randn(shape, np.float32)) for shape in pair)
             for pair in shapes.step_matmuls(config)]

    def matmuls() -> None:
        for a, b in pairs:
            a @ b

    return Task(Candidate(matmuls, dev.synchronize))


def _gpt(device: str, config: str) -> tuple[GPT, tl.Tensor, tl.Tensor]:
    """The GPT of ``config`` and its batch, on ``device``."""
    tl.manual_seed(0)
    model = GPT(GPTConfig(**shapes.model_kwargs(config))).to(device)
    x, y = shapes.batch(config)
    return model, tl.Tensor(x, device=device), tl.Tensor(y, device=device)


def gpt_step(device: str, config: str) -> Task:
    """Forward + loss + backward + AdamW step, with the optimizer of ``train``."""
    model, x, y = _gpt(device, config)
    optimizer = configure_optimizer(model, TrainConfig(**shapes.ADAMW))

    def step() -> None:
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return Task(Candidate(step, backend.get_device(device).synchronize),
                info={"parameters": model.num_parameters(non_embedding=False)})


def gpt_forward(device: str, config: str) -> Task:
    """The forward pass and loss, recording no graph."""
    model, x, y = _gpt(device, config)

    def forward() -> None:
        with tl.no_grad():
            model(x, y)

    return Task(Candidate(forward, backend.get_device(device).synchronize))


def op(device: str, name: str, config: str) -> Task:
    """Forward + backward of a fused op at ``config``'s shapes, or (``adamw``,
    ``clip_grad_norm``) the update of the config's model parameters."""
    sync = backend.get_device(device).synchronize
    if name in shapes.MODEL_OPS:
        return _model_op(device, name, config, sync)
    arrays, dout_array = shapes.op_inputs(name, config)
    args = [tl.Tensor(a, device=device, requires_grad=a.dtype.kind == "f") for a in arrays]
    inputs = [t for t in args if t.requires_grad]
    dout = None if dout_array is None else tl.Tensor(dout_array, device=device)
    fn = OPS[name]

    def forward_backward() -> tuple[tl.Tensor, ...]:
        out = fn(*args)
        return (out,) + tl.grad(out, inputs, dout)  # as inside a model: no leaf .grad

    check = [_norm(t.numpy()) for t in forward_backward()]
    return Task(Candidate(forward_backward, sync), check=check)


def _model_op(device: str, name: str, config: str, sync: Callable[[], None]) -> Task:
    model, _, _ = _gpt(device, config)
    params = list(model.parameters())
    rng = np.random.default_rng(2)
    for p in params:
        p.grad = tl.Tensor(rng.standard_normal(p.shape, dtype=np.float32), device=device)
    info = {"parameters": model.num_parameters(non_embedding=False)}
    if name == "adamw":
        optimizer = configure_optimizer(model, TrainConfig(**shapes.ADAMW))
        return Task(Candidate(optimizer.step, sync), info=info)
    return Task(Candidate(lambda: clip_grad_norm_(params, shapes.MAX_NORM), sync), info=info)


def _norm(a: np.ndarray) -> float:
    return float(np.linalg.norm(a.astype(np.float64)))
