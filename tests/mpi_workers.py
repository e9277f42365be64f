"""Programs that tests/test_distributed.py starts under ``mpirun -n 2``.

``python tests/mpi_workers.py CASE OUT_DIR``: each case checks one property of data-parallel
training on every rank and exits non-zero (with a message) if it does not hold.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

import tinygrad_lm as tl
from tinygrad_lm import distributed, optim
from tinygrad_lm.models.gpt import GPT, GPTConfig

CONFIG = GPTConfig(block_size=8, vocab_size=13, n_layer=2, n_head=2, n_embd=16, dropout=0.0)


def _model() -> GPT:
    tl.manual_seed(1000 + distributed.get_rank())  # different on each rank: DDP must broadcast
    return GPT(CONFIG)


def _batch(rows: int, seed: int) -> tuple[tl.Tensor, tl.Tensor]:
    ids = np.random.default_rng(seed).integers(0, CONFIG.vocab_size, (rows, CONFIG.block_size + 1))
    return tl.Tensor(ids[:, :-1]), tl.Tensor(ids[:, 1:])


def gradients_equal_one_process() -> None:
    """Two ranks, each with half of a batch, average to the gradients of the whole batch."""
    group = distributed.init_process_group()
    model = distributed.DistributedDataParallel(_model(), bucket_cap_mb=0.004)  # several buckets
    assert len(model.bucket_sizes) > 2, model.bucket_sizes
    x, y = _batch(4, seed=7)
    half = slice(2 * group.rank, 2 * group.rank + 2)
    _, loss = model(x[half], y[half])
    loss.backward()
    model.all_reduce_gradients()
    if group.rank == 0:  # the same model (rank 0's weights, broadcast) on the whole batch alone
        alone = GPT(CONFIG)
        alone.load_state_dict(model.module.state_dict())
        _, full_loss = alone(x, y)
        full_loss.backward()
        for (name, p), q in zip(model.module.named_parameters(), alone.parameters()):
            np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-4, atol=1e-6,
                                       err_msg=name)


def parameters_stay_identical() -> None:
    """After several AdamW steps on different data, every rank holds the same parameters."""
    group = distributed.init_process_group()
    model = distributed.DistributedDataParallel(_model())
    initial = np.concatenate([p.numpy().ravel() for p in model.parameters()])
    opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    for step in range(5):
        x, y = _batch(3, seed=100 * step + group.rank)
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        model.all_reduce_gradients()
        opt.step()
    flat = np.concatenate([p.numpy().ravel() for p in model.parameters()])
    everyone = group._comm.gather(flat, root=0)
    if group.rank == 0:
        for other in everyone[1:]:
            np.testing.assert_array_equal(other, everyone[0])
        assert np.abs(flat - initial).max() > 1e-3, "the steps changed nothing"


def a_rank_raises() -> None:
    """Rank 1 fails between two collectives; rank 0 is then waiting in an all-reduce."""
    group = distributed.init_process_group()
    buffer = np.ones(4, np.float32)
    group.all_reduce(buffer)
    if group.rank == 1:
        raise ValueError("rank 1 gave up on purpose")
    group.all_reduce(buffer)


def a_rank_is_killed() -> None:
    """Rank 1 dies without a word (SIGKILL); rank 0 is waiting in an all-reduce."""
    group = distributed.init_process_group()
    buffer = np.ones(4, np.float32)
    group.all_reduce(buffer)
    if group.rank == 1:
        os.kill(os.getpid(), 9)
    group.all_reduce(buffer)


CASES = {f.__name__: f for f in (gradients_equal_one_process, parameters_stay_identical,
                                 a_rank_raises, a_rank_is_killed)}

if __name__ == "__main__":
    CASES[sys.argv[1]]()
    Path(sys.argv[2], f"ok.{distributed.get_rank()}").write_text("ok")
