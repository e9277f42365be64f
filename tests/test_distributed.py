"""Data-parallel training: buckets, the one-process group, and real 2-rank MPI jobs.

The MPI tests start ``mpirun -n 2`` on this machine (``.ci/run`` installs Open MPI and
mpi4py); they skip when either is missing.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tinygrad_lm as tl
from tinygrad_lm import backend, distributed, nn
from tinygrad_lm.distributed import DistributedDataParallel, ProcessGroup

ROOT = Path(__file__).resolve().parents[1]
WORKERS = Path(__file__).with_name("mpi_workers.py")


# ----------------------------------------------------------------------------- one process


def test_without_a_launcher_the_group_is_one_process(monkeypatch):
    for name in distributed._LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    distributed.destroy_process_group()
    try:
        group = distributed.init_process_group()
        assert (group.backend, group.rank, group.world_size) == ("single", 0, 1)
        assert distributed.is_initialized() and distributed.init_process_group() is group
    finally:
        distributed.destroy_process_group()
    assert not distributed.is_initialized() and distributed.get_world_size() == 1


def test_one_process_reduction_touches_nothing():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    ddp = DistributedDataParallel(model, ProcessGroup("single", 0, 1))
    ddp(tl.randn(5, 3)).sum().backward()
    grads = [p.grad for p in model.parameters()]
    before = [g.numpy().copy() for g in grads]
    ddp.all_reduce_gradients()
    assert all(p.grad is g for p, g in zip(model.parameters(), grads))
    for g, b in zip(grads, before):
        np.testing.assert_array_equal(g.numpy(), b)


def test_collectives_of_one_process_return_their_input():
    group = ProcessGroup("single", 0, 1)
    a = np.arange(4, dtype=np.float32)
    assert group.all_reduce(a, "mean") is a and a.tolist() == [0, 1, 2, 3]
    assert group.all_reduce_floats([1.5, 2.0]) == [1.5, 2.0]
    with pytest.raises(ValueError, match="all_reduce: op must be"):
        group.all_reduce(a, "max")


def test_buckets_respect_the_cap_and_the_dtype_and_start_from_the_last_parameter():
    params = [nn.Parameter(np.zeros(n, np.float32)) for n in (10, 20, 30, 5)]
    params.append(nn.Parameter(np.zeros(7, np.float64)))
    buckets = distributed._make_buckets(params, cap_bytes=40 * 4)
    assert [[p.numel() for p in b] for b in buckets] == [[7], [5, 30], [20, 10]]
    big = distributed._make_buckets(params[:1], cap_bytes=4)  # too big for any bucket: alone
    assert [[p.numel() for p in b] for b in big] == [[10]]


def test_shard_deals_items_round_robin():
    assert distributed.shard(range(7), ProcessGroup("mpi", 1, 3)) == [1, 4]
    assert distributed.shard(range(3), ProcessGroup("single", 0, 1)) == [0, 1, 2]


def test_launched_without_mpi4py_gives_a_clear_error(monkeypatch):
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now raises ImportError
    distributed.destroy_process_group()
    with pytest.raises(distributed.DistributedError, match="mpi4py is missing"):
        distributed.init_process_group()
    assert not distributed.is_initialized()


def test_nccl_needs_a_gpu():
    with pytest.raises(distributed.DistributedError, match="needs a cuda device"):
        distributed.init_process_group("nccl", device="cpu")
    with pytest.raises(ValueError, match="backend must be"):
        distributed.init_process_group("gloo")


def test_grad_accumulation_averages_the_micro_batch_gradients(tmp_path):
    """grad_accum=2: the step's gradients are those of the mean of two micro-batch losses,
    micro-batch 0 being the batch a single step would draw."""
    from tinygrad_lm.train import Trainer, TrainConfig

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a quick brown fox jumps over the lazy dog. " * 200)
    common = dict(data=str(corpus), max_iters=3, batch_size=4, block_size=16, n_layer=1,
                  n_head=2, n_embd=16, eval_interval=100, eval_iters=2, warmup=1,
                  grad_clip=0.0, quiet=True)
    accum = Trainer(TrainConfig(out=str(tmp_path / "a"), grad_accum=2, **common))
    loss, stop = accum.step()
    assert not stop
    manual = Trainer(TrainConfig(out=str(tmp_path / "b"), **common))
    _, l0 = manual.model(*manual.get_batch("train", (1337, 0, 0)))
    _, l1 = manual.model(*manual.get_batch("train", (1337, 0, 0, 1)))
    ((l0 + l1) * 0.5).backward()
    assert loss == pytest.approx((l0.item() + l1.item()) / 2, rel=1e-6)
    for (name, p), q in zip(accum.model.named_parameters(), manual.model.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-4, atol=1e-7,
                                   err_msg=name)
    with pytest.raises(ValueError, match="grad.accum must be at least 1"):
        Trainer(TrainConfig(out=str(tmp_path / "c"), grad_accum=0, **common))


# ----------------------------------------------------------------------------- real MPI jobs

MPIRUN = shutil.which("mpirun")


def _have_mpi4py() -> bool:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


needs_mpi = pytest.mark.skipif(MPIRUN is None or not _have_mpi4py(),
                               reason="needs Open MPI's mpirun and mpi4py (see README)")


def _mpirun(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    command = [MPIRUN, "--allow-run-as-root", "--oversubscribe", "-n", "2", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=ROOT)


@needs_mpi
@pytest.mark.parametrize("case", ["gradients_equal_one_process", "parameters_stay_identical"])
def test_two_ranks(case, tmp_path):
    result = _mpirun([sys.executable, str(WORKERS), case, str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.0", "ok.1"]


@needs_mpi
@pytest.mark.parametrize("case, says", [("a_rank_raises", "rank 1 gave up on purpose"),
                                        ("a_rank_is_killed", "")])
def test_a_dead_rank_stops_the_job_instead_of_hanging(case, says, tmp_path):
    started = time.perf_counter()
    result = _mpirun([sys.executable, str(WORKERS), case, str(tmp_path)], timeout=90)
    assert result.returncode != 0
    assert time.perf_counter() - started < 60
    assert not (tmp_path / "ok.0").exists(), "rank 0 cannot finish without rank 1"
    if says:
        assert f"rank 1/2]: rank 1 failed with ValueError: {says}; stopping all ranks" \
            in result.stderr, result.stderr


def _losses(out: Path) -> list[tuple[int, str, float]]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [(r["iter"], key, r[key]) for r in rows for key in ("loss", "train_loss", "val_loss")
            if key in r]


@needs_mpi
def test_two_rank_training_matches_one_rank_with_grad_accumulation(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"line {i}: the quick brown fox {i * i % 97}\n" for i in range(400)))
    flags = ["--data", str(corpus), "--preset", "tiny", "--max-iters", "6", "--eval-interval",
             "3", "--eval-iters", "4", "--sample-tokens", "0", "--quiet"]
    two = _mpirun([sys.executable, "-m", "tinygrad_lm", "train", "--ddp", *flags,
                   "--out", str(tmp_path / "two")])
    assert two.returncode == 0, two.stderr
    one = subprocess.run([sys.executable, "-m", "tinygrad_lm", "train", "--grad-accum", "2",
                          *flags, "--out", str(tmp_path / "one")], capture_output=True,
                         text=True, timeout=120, cwd=ROOT)
    assert one.returncode == 0, one.stderr
    a, b = _losses(tmp_path / "two"), _losses(tmp_path / "one")
    assert len(a) == len(b) == 6 + 3 * 2
    for (ia, ka, va), (ib, kb, vb) in zip(a, b):
        assert (ia, ka) == (ib, kb)
        assert va == pytest.approx(vb, rel=1e-5), (ia, ka)
    assert sorted(p.name for p in (tmp_path / "two").iterdir() if p.suffix == ".tlm") == \
        ["ckpt.tlm", "ckpt_best.tlm"]


def test_a_cpu_rank_keeps_the_cpu_device(monkeypatch):
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1")
    assert distributed.local_rank() == 1
    assert distributed.device_for_rank("cpu").name == "cpu"
    monkeypatch.delenv("OMPI_COMM_WORLD_LOCAL_RANK")
    assert distributed.local_rank() == 0


def test_nccl_collectives_on_one_gpu(device):
    """The NCCL path with world size 1: the collectives run on the GPU and change nothing."""
    if device == "cpu":
        pytest.skip("the NCCL path needs a GPU")
    distributed.destroy_process_group()
    try:
        group = distributed.init_process_group("nccl", device=device)
        assert group.backend == "nccl" and group.world_size == 1
        xp = backend.get_device(device).xp
        a = xp.arange(6, dtype=xp.float32)
        group._nccl_collective(a, "allReduce")  # world size 1 skips it in all_reduce
        group._nccl_collective(a, "bcast", 0)
        xp.cuda.get_current_stream().synchronize()
        assert a.tolist() == [0, 1, 2, 3, 4, 5]
        assert distributed.device_for_rank("cuda").name == "cuda:0"
        model = DistributedDataParallel(nn.Linear(3, 2).to(device))
        model(tl.randn(4, 3, device=device)).sum().backward()
        model.all_reduce_gradients()
        assert model.module.weight.grad.device == device
    finally:
        distributed.destroy_process_group()
