"""Data-parallel training: every process (rank) holds the whole model and a different batch.

After each backward the ranks average their gradients with an all-reduce, so every rank
takes the same optimizer step and the parameters stay identical, as if one process had
trained on the concatenation of all the batches. The transport is a well-kept library, not
ours: MPI through mpi4py between processes (NumPy buffers), NCCL through CuPy between GPUs.

    mpirun -n 2 tinygrad-lm train --ddp          # or, in a script:

    group = distributed.init_process_group()     # rank and world size from mpirun
    model = distributed.DistributedDataParallel(model)  # rank 0's parameters everywhere
    loss.backward()
    model.all_reduce_gradients()                 # grads = mean over ranks
    optimizer.step()

Gradients are packed into a few large flat buffers ("buckets") so a step makes a handful of
all-reduce calls instead of one per parameter; with one process nothing is sent at all.
"""
from __future__ import annotations

import os
import sys
import traceback
from typing import Any, Iterable, Sequence

import numpy as np

from . import backend, nn
from .config import no_grad
from .tensor import Tensor

_LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE")
_LOCAL_RANK_VARIABLES = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK")
_INSTALL_HINT = ("install MPI (Debian/Ubuntu: `apt-get install openmpi-bin libopenmpi-dev`) "
                 "and mpi4py (`pip install 'tinygrad-lm[distributed]'`)")


class DistributedError(RuntimeError):
    """Distributed training cannot start or go on (no MPI, mismatched ranks, a dead rank)."""


class ProcessGroup:
    """The ranks of one job and the collective operations between them.

    ``backend`` is ``"mpi"`` (arrays on the CPU), ``"nccl"`` (arrays on this rank's GPU) or
    ``"single"`` (one process: every collective returns at once and sends nothing).
    """

    def __init__(self, backend_name: str, rank: int, world_size: int, comm: Any = None,
                 nccl_comm: Any = None) -> None:
        self.backend, self.rank, self.world_size = backend_name, rank, world_size
        self._comm, self._nccl = comm, nccl_comm

    def __repr__(self) -> str:
        return f"ProcessGroup({self.backend!r}, rank={self.rank}, world_size={self.world_size})"

    def all_reduce(self, array: Any, op: str = "sum") -> Any:
        """Replace ``array`` in place by its sum (``op="sum"``) or mean (``"mean"``) over ranks."""
        if op not in ("sum", "mean"):
            raise ValueError(f"all_reduce: op must be 'sum' or 'mean', not {op!r}")
        if self.world_size == 1:
            return array
        if self.backend == "nccl":
            self._nccl_collective(array, "allReduce")
        else:
            self._check_host(array, "all_reduce")
            from mpi4py import MPI

            self._comm.Allreduce(MPI.IN_PLACE, array, op=MPI.SUM)
        if op == "mean":
            array *= array.dtype.type(1.0 / self.world_size)
        return array

    def broadcast(self, array: Any, src: int = 0) -> Any:
        """Overwrite ``array`` in place with rank ``src``'s copy."""
        if self.world_size == 1:
            return array
        if self.backend == "nccl":
            self._nccl_collective(array, "bcast", src)
        else:
            self._check_host(array, "broadcast")
            self._comm.Bcast(array, root=src)
        return array

    def all_reduce_floats(self, values: Sequence[float], op: str = "mean") -> list[float]:
        """All-reduce a few Python floats (losses, flags): one small collective call."""
        if self.world_size == 1:
            return [float(v) for v in values]
        host = np.asarray(values, dtype=np.float64)
        if self.backend == "nccl":
            xp = backend.get_device("cuda").xp
            return [float(v) for v in self.all_reduce(xp.asarray(host), op).get()]
        return [float(v) for v in self.all_reduce(host, op)]

    def barrier(self) -> None:
        """Wait until every rank has reached this call."""
        if self.world_size > 1:
            self._comm.Barrier()

    def _check_host(self, array: Any, what: str) -> None:
        if not isinstance(array, np.ndarray) or not array.flags.c_contiguous:
            raise TypeError(f"{what}: the MPI backend needs a contiguous NumPy array, got "
                            f"{type(array).__name__}; use the 'nccl' backend for GPU arrays")

    def _nccl_collective(self, array: Any, name: str, *root: int) -> None:
        from cupy.cuda import nccl

        types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64,
                 np.dtype(np.float16): nccl.NCCL_FLOAT16}
        if array.dtype not in types:
            raise TypeError(f"{name}: NCCL collectives here take float arrays, not {array.dtype}")
        stream = backend.device_of(array).xp.cuda.get_current_stream().ptr
        ptr = array.data.ptr
        if name == "allReduce":
            self._nccl.allReduce(ptr, ptr, array.size, types[array.dtype], nccl.NCCL_SUM, stream)
        else:
            self._nccl.bcast(ptr, array.size, types[array.dtype], root[0], stream)


_group: ProcessGroup | None = None


def _launched_by_mpi() -> bool:
    return any(v in os.environ for v in _LAUNCHER_VARIABLES)


def local_rank() -> int:
    """This process's rank among the ranks on its own host (0 without a launcher)."""
    for name in _LOCAL_RANK_VARIABLES:
        if name in os.environ:
            return int(os.environ[name])
    return 0


def device_for_rank(spec: Any = None) -> backend.Device:
    """The device this rank should use: a bare ``"cuda"`` becomes the GPU numbered by the
    local rank (modulo the GPUs present), so the ranks of one host share out its GPUs."""
    dev = backend.get_device(spec)
    if dev.xp is np or (spec is not None and ":" in str(spec)):
        return dev
    return backend.get_device(f"cuda:{local_rank() % dev.xp.cuda.runtime.getDeviceCount()}")


def require_mpi4py() -> None:
    """Raise ``DistributedError`` unless mpi4py can be imported: without it ``--ddp`` would
    quietly train as one process."""
    try:
        import mpi4py  # noqa: F401  (the package only: MPI starts with `from mpi4py import MPI`)
    except ImportError:
        raise DistributedError(f"--ddp needs mpi4py, which is not installed: "
                               f"{_INSTALL_HINT}") from None


def init_process_group(backend_name: str | None = None, device: Any = None) -> ProcessGroup:
    """Join the job started by ``mpirun`` (or make a one-process group without it).

    ``backend_name`` is ``"mpi"``, ``"nccl"`` or None: NCCL when ``device`` is a GPU, MPI
    otherwise. Rank and world size come from the MPI launcher. On more than one rank, an
    uncaught exception on any rank aborts the whole job with a message, instead of leaving
    the other ranks waiting forever in a collective.
    """
    global _group
    if _group is not None:
        return _group
    dev = backend.get_device(device)
    name = backend_name or ("nccl" if dev.xp is not np else "mpi")
    if name not in ("mpi", "nccl"):
        raise ValueError(f"init_process_group: backend must be 'mpi' or 'nccl', not {name!r}")
    if name == "nccl" and dev.xp is np:
        raise DistributedError("init_process_group: the 'nccl' backend needs a cuda device")
    comm, rank, world = None, 0, 1
    if _launched_by_mpi():
        try:
            from mpi4py import MPI
        except ImportError:
            raise DistributedError(f"this process was started by an MPI launcher but mpi4py is "
                                   f"missing: {_INSTALL_HINT}") from None
        comm = MPI.COMM_WORLD
        rank, world = comm.Get_rank(), comm.Get_size()
    nccl_comm = None
    if name == "nccl":
        from cupy.cuda import nccl

        uid = nccl.get_unique_id() if rank == 0 else None
        if comm is not None:
            uid = comm.bcast(uid, root=0)
        with dev.xp.cuda.Device(dev.index):
            nccl_comm = nccl.NcclCommunicator(world, uid, rank)
    elif world == 1:
        name = "single"
    _group = ProcessGroup(name, rank, world, comm, nccl_comm)
    if world > 1:
        sys.excepthook = _abort_job_on_exception
    return _group


def _abort_job_on_exception(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
    """An uncaught error on one rank: say which rank and why, then stop every rank."""
    group = _group
    traceback.print_exception(kind, exc, tb)
    if group is not None and group.world_size > 1:
        abort(f"rank {group.rank} failed with {kind.__name__}: {exc}")


def abort(message: str, status: int = 1) -> None:
    """Print ``message`` and end every rank of the job (a rank alone cannot end the others)."""
    group = get_group()
    print(f"tinygrad-lm [rank {group.rank}/{group.world_size}]: {message}; stopping all ranks",
          file=sys.stderr, flush=True)
    if group._comm is not None and group.world_size > 1:
        group._comm.Abort(status)
    raise SystemExit(status)


def destroy_process_group() -> None:
    """Forget the group (a later ``init_process_group`` makes a new one)."""
    global _group
    if _group is not None and _group.world_size > 1:
        sys.excepthook = sys.__excepthook__
    _group = None


def get_group() -> ProcessGroup:
    """The group made by ``init_process_group``; a one-process group when there is none."""
    return _group if _group is not None else ProcessGroup("single", 0, 1)


def is_initialized() -> bool:
    """True after ``init_process_group``."""
    return _group is not None


def get_rank() -> int:
    """This process's rank (0 without a group)."""
    return get_group().rank


def get_world_size() -> int:
    """The number of ranks (1 without a group)."""
    return get_group().world_size


class DistributedDataParallel(nn.Module):
    """Wraps a model for data-parallel training: calls go to the model unchanged.

    On construction rank 0's parameters are broadcast to every rank. After each
    backward (after all the micro-batches of a gradient-accumulation step), call
    ``all_reduce_gradients()``: it averages the gradients over ranks in buckets of about
    ``bucket_cap_mb`` MiB. Unlike PyTorch's DDP the reduction is this explicit call, not a
    backward hook, so accumulating micro-batches needs no ``no_sync()``.
    """

    def __init__(self, module: nn.Module, group: ProcessGroup | None = None,
                 bucket_cap_mb: float = 25.0) -> None:
        super().__init__()
        self.module = module
        self.group = group or get_group()
        self._params = [p for p in module.parameters()]
        self._buckets = _make_buckets(self._params, int(bucket_cap_mb * 2**20))
        self._flat: list[Any] = []  # one persistent flat buffer per bucket, made on first use
        self.broadcast_parameters()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    @no_grad()
    def broadcast_parameters(self, src: int = 0) -> None:
        """Copy rank ``src``'s parameters to every rank."""
        if self.group.world_size == 1:
            return
        for p in self._params:
            if not p.data.flags.c_contiguous:
                p.data = p.device_obj.xp.ascontiguousarray(p.data)
            self.group.broadcast(p.data, src)

    @no_grad()
    def all_reduce_gradients(self) -> None:
        """Average every parameter's ``.grad`` over the ranks (a parameter without a gradient
        on this rank counts as zeros, so every rank sends the same buckets)."""
        if self.group.world_size == 1:
            return
        if not self._flat:
            self._flat = [p[0].device_obj.xp.empty(sum(q.numel() for q in p), p[0].dtype)
                          for p in self._buckets]
        for params, flat in zip(self._buckets, self._flat):
            offset = 0
            for p in params:
                flat[offset:offset + p.numel()] = 0 if p.grad is None else p.grad.data.reshape(-1)
                offset += p.numel()
            self.group.all_reduce(flat, "mean")
            offset = 0
            for p in params:
                averaged = flat[offset:offset + p.numel()].reshape(p.shape)
                if p.grad is None:
                    p.grad = Tensor._make(averaged.copy())
                else:
                    p.grad.data[...] = averaged
                offset += p.numel()

    @property
    def bucket_sizes(self) -> list[int]:
        """The number of gradient elements in each all-reduce bucket."""
        return [sum(p.numel() for p in params) for params in self._buckets]


def _make_buckets(params: Sequence[Tensor], cap_bytes: int) -> list[list[Tensor]]:
    """Group parameters of one dtype and device into buckets of at most ``cap_bytes`` (a
    larger parameter gets a bucket of its own), last parameters first: their gradients are
    the first that backward finishes."""
    buckets: list[list[Tensor]] = []
    size = 0
    for p in reversed(params):
        nbytes = p.numel() * p.dtype.itemsize
        last = buckets[-1] if buckets else None
        if (last is None or size + nbytes > cap_bytes or last[0].dtype != p.dtype
                or last[0].device != p.device):
            buckets.append([p])
            size = nbytes
        else:
            last.append(p)
            size += nbytes
    return buckets


def shard(items: Iterable[Any], group: ProcessGroup | None = None) -> list[Any]:
    """This rank's share of ``items``: every ``world_size``-th one, starting at its rank."""
    group = group or get_group()
    return list(items)[group.rank::group.world_size]
