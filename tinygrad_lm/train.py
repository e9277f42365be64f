"""Training a GPT on a text corpus: the loop behind ``tinygrad-lm train``.

The vocabulary follows nanoGPT's train.py: ``get_batch``, ``estimate_loss``, AdamW with
weight decay on 2-D weights only, cosine learning rate with linear warm-up, gradient
clipping, periodic evaluation, and a checkpoint dict holding everything needed to resume.

Every random draw of iteration ``i`` (its batch, its dropout masks) comes from generators
seeded with ``(seed, i)``, so a run resumed from a checkpoint continues exactly as the
uninterrupted run would have.

A step may be split into micro-batches: ``grad_accum`` on each of ``world_size`` data-parallel
ranks (``--ddp`` under ``mpirun``). Micro-batch ``k = rank * grad_accum + m`` is drawn with
the key ``(seed, 0, i, k)`` (micro-batch 0 is the single-process batch), so one process with
``grad_accum=2`` and two ranks with ``grad_accum=1`` train on the same data.
"""
from __future__ import annotations

import dataclasses
import json
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import backend, distributed, nn, optim
from .config import no_grad
from .data import batches, corpora
from .models.gpt import GPT, GPTConfig
from .serialization import load, save
from .tensor import Tensor

CHECKPOINT = "ckpt.tlm"
BEST_CHECKPOINT = "ckpt_best.tlm"
METRICS = "metrics.jsonl"


@dataclass
class TrainConfig:
    """Every knob of a training run (the defaults are the ``cpu`` preset)."""

    data: str = corpora.DEFAULT_CORPUS
    out: str = "out"
    device: str | None = None
    tokenizer: str = "char"
    vocab_size: int = 512  # BPE only; a char vocabulary is the corpus' characters
    max_iters: int = 2000
    batch_size: int = 12
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = False  # nanoGPT's train.py trains without biases in Linear and LayerNorm
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    eval_interval: int = 250
    eval_iters: int = 20
    seed: int = 1337
    grad_accum: int = 1  # micro-batches per step on each rank, their gradients summed
    ddp: bool = False  # data-parallel over the ranks started by mpirun
    sample_tokens: int = 300
    resume: bool = False
    quiet: bool = False


PRESETS: dict[str, dict[str, Any]] = {
    # nanoGPT's shakespeare_char recipe scaled for a CPU (its README's "baby GPT" on a laptop)
    "cpu": {},
    # nanoGPT's shakespeare_char recipe for a GPU
    "gpu": dict(max_iters=5000, batch_size=64, block_size=256, n_layer=6, n_head=6,
                n_embd=384, dropout=0.2, eval_iters=200, warmup=100),
    # a seconds-long run, for smoke tests and the tutorial
    "tiny": dict(max_iters=100, batch_size=8, block_size=32, n_layer=2, n_head=2, n_embd=64,
                 eval_interval=50, eval_iters=5, warmup=10, sample_tokens=100),
}


class TrainingError(RuntimeError):
    """A run that cannot continue (diverged loss, unusable data, bad checkpoint)."""


def configure_optimizer(model: nn.Module, cfg: TrainConfig) -> optim.AdamW:
    """AdamW where only 2-D weights (matmuls, embeddings) decay; biases and norms do not."""
    params = [p for p in model.parameters()]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


class Trainer:
    """Owns the model, optimizer, data and logs of one run."""

    def __init__(self, cfg: TrainConfig, log: Callable[[str], None] | None = None) -> None:
        if cfg.grad_accum < 1:
            raise ValueError(f"grad_accum must be at least 1, not {cfg.grad_accum}")
        self.cfg = cfg
        self.device = distributed.device_for_rank(cfg.device) if cfg.ddp else \
            backend.get_device(cfg.device)
        self.group = (distributed.init_process_group(device=self.device) if cfg.ddp
                      else distributed.ProcessGroup("single", 0, 1))
        self.is_main = self.group.rank == 0  # only rank 0 writes files and progress
        self.log = log or (lambda text: print(text, file=sys.stderr))  # stdout is for samples
        if not self.is_main:
            self.log = lambda text: None
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        checkpoint = self._read_checkpoint() if cfg.resume else None
        if self.is_main:  # rank 0 writes the token files, then the other ranks open them
            self.dataset = self._prepare_data()
        self.group.barrier()
        if not self.is_main:
            self.dataset = self._prepare_data()
        self.tokenizer = self.dataset.tokenizer
        self.model_config = GPTConfig(block_size=cfg.block_size, vocab_size=self.tokenizer.vocab_size,
                                      n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd,
                                      dropout=cfg.dropout, bias=cfg.bias)
        backend.manual_seed(cfg.seed)
        self.model = GPT(self.model_config).to(self.device)
        self.ddp = distributed.DistributedDataParallel(self.model, self.group)
        self.optimizer = configure_optimizer(self.model, cfg)
        self.scheduler = optim.lr_scheduler.CosineWarmup(self.optimizer, cfg.warmup,
                                                         cfg.max_iters, cfg.min_lr)
        self.iter = 0
        self.best_val = math.inf
        if checkpoint is not None:
            self._restore(checkpoint)

    # -------------------------------------------------------------- data and evaluation

    def _prepare_data(self) -> batches.TokenDataset:
        cfg = self.cfg
        return batches.prepare_corpus(cfg.data, self.out / "data", cfg.tokenizer, cfg.vocab_size)

    def get_batch(self, split: str, key: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        """A random (x, y) batch of token ids, y shifted by one, drawn by a generator seeded
        with ``key`` (so the batch of a given step never depends on what ran before it)."""
        x, y = self.dataset.batch_at(split, self.cfg.batch_size, self.cfg.block_size, key)
        return Tensor(x, device=self.device), Tensor(y, device=self.device)

    @no_grad()
    def estimate_loss(self) -> dict[str, float]:
        """Mean loss over ``eval_iters`` batches of each split (the same batches every time,
        so evaluations are comparable across a run; data-parallel ranks share them out)."""
        self.model.eval()
        totals = []
        for split in ("train", "val"):
            total = 0.0
            for k in distributed.shard(range(self.cfg.eval_iters), self.group):
                x, y = self.get_batch(split, (self.cfg.seed, 1, k))
                total += self.model(x, y)[1].item()
            totals.append(total)
        train, val = self.group.all_reduce_floats(totals, "sum")
        self.model.train()
        return {"train": train / self.cfg.eval_iters, "val": val / self.cfg.eval_iters}

    # -------------------------------------------------------------- checkpoints

    def checkpoint(self) -> dict[str, Any]:
        """Everything needed to resume exactly: weights, optimizer, schedule, tokenizer."""
        return {
            "format": "tinygrad_lm.gpt-checkpoint",
            "model": dict(self.model.state_dict()),
            "model_config": dataclasses.asdict(self.model_config),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "train_config": dataclasses.asdict(self.cfg),
            "tokenizer": self.tokenizer.to_dict(),
            "iter": self.iter,
            "best_val": self.best_val,
        }

    def _read_checkpoint(self) -> dict[str, Any]:
        path = self.out / CHECKPOINT
        if not path.exists():
            raise TrainingError(f"--resume: no checkpoint at {path}")
        return load(path)

    def _restore(self, ckpt: dict[str, Any]) -> None:
        if ckpt.get("model_config") != dataclasses.asdict(self.model_config):
            raise TrainingError(f"--resume: the checkpoint in {self.out} was made with model "
                                f"{ckpt.get('model_config')}, not {dataclasses.asdict(self.model_config)}")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.iter, self.best_val = int(ckpt["iter"]), float(ckpt["best_val"])
        self.log(f"resumed from {self.out / CHECKPOINT} at iteration {self.iter}")

    def save(self, name: str = CHECKPOINT) -> None:
        """Write the checkpoint atomically into ``out`` (rank 0 only)."""
        if self.is_main:
            save(self.checkpoint(), self.out / name)

    # -------------------------------------------------------------- the loop

    def _record(self, entry: dict[str, Any]) -> None:
        if not self.is_main:
            return
        with open(self.out / METRICS, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def step(self, interrupted: bool = False) -> tuple[float, bool]:
        """One optimisation step over every micro-batch of every rank. Returns the mean
        training loss and whether any rank was interrupted (all ranks then stop together)."""
        cfg = self.cfg
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for m in range(cfg.grad_accum):
            k = self.group.rank * cfg.grad_accum + m
            backend.manual_seed(cfg.seed * 1_000_003 + self.iter * 1_009 + k)  # dropout masks
            x, y = self.get_batch("train", (cfg.seed, 0, self.iter) + ((k,) if k else ()))
            _, loss = self.model(x, y)
            total += loss.item()
            (loss * (1.0 / cfg.grad_accum)).backward()  # d(mean of micro-losses)
        value, stop = self.group.all_reduce_floats([total / cfg.grad_accum, float(interrupted)])
        if not math.isfinite(value):
            raise TrainingError(f"the loss became {value} at iteration {self.iter}; the last "
                                f"good checkpoint is kept in {self.out}. Try a lower --lr.")
        self.ddp.all_reduce_gradients()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.iter += 1
        return value, stop > 0

    def run(self, until: int | None = None) -> dict[str, float]:
        """Train to ``max_iters`` (or stop early at iteration ``until``), then evaluate and
        save a checkpoint. Ctrl-C finishes the current step, saves a checkpoint and
        raises KeyboardInterrupt (a second Ctrl-C stops at once)."""
        cfg = self.cfg
        progress = Progress(cfg.max_iters, enabled=not cfg.quiet and self.is_main)
        tokens_per_step = cfg.batch_size * cfg.block_size * cfg.grad_accum * self.group.world_size
        interrupted: list[int] = []

        def on_interrupt(signum: int, frame: Any) -> None:
            if interrupted:
                raise KeyboardInterrupt
            interrupted.append(signum)

        previous = signal.signal(signal.SIGINT, on_interrupt)
        try:
            losses: dict[str, float] = {}
            stop = cfg.max_iters if until is None else min(until, cfg.max_iters)
            stopping = False
            while self.iter < stop and not stopping:
                if self.iter % cfg.eval_interval == 0:
                    losses = self._evaluate(progress)
                started = time.perf_counter()
                loss, stopping = self.step(bool(interrupted))
                elapsed = time.perf_counter() - started
                self._record({"iter": self.iter, "loss": loss,
                              "lr": self.optimizer.param_groups[0]["lr"], "ms": round(elapsed * 1e3, 3)})
                progress.update(self.iter, loss, tokens_per_step / elapsed)
            if stopping:
                progress.close()
                self.save()
                self.log(f"interrupted at iteration {self.iter}: checkpoint saved to "
                         f"{self.out / CHECKPOINT}; continue with --resume")
                raise KeyboardInterrupt
            losses = self._evaluate(progress)
        finally:
            signal.signal(signal.SIGINT, previous)
        progress.close()
        return losses

    def _evaluate(self, progress: "Progress") -> dict[str, float]:
        losses = self.estimate_loss()
        self._record({"iter": self.iter, "train_loss": losses["train"], "val_loss": losses["val"]})
        progress.message(f"iter {self.iter}: train loss {losses['train']:.4f}, "
                         f"val loss {losses['val']:.4f}")
        self.save()
        if losses["val"] < self.best_val:
            self.best_val = losses["val"]
            self.save(BEST_CHECKPOINT)
        return losses


class Progress:
    """A one-line progress bar on a terminal; plain periodic lines otherwise."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total, self.enabled = total, enabled
        self.tty = sys.stderr.isatty()
        self.last_line = time.perf_counter()

    def update(self, it: int, loss: float, tokens_per_s: float) -> None:
        """Show iteration ``it``'s loss and speed."""
        if not self.enabled:
            return
        text = f"iter {it}/{self.total} loss {loss:.4f} {tokens_per_s:,.0f} tok/s"
        if self.tty:
            width = 24
            done = int(width * it / max(self.total, 1))
            sys.stderr.write(f"\r[{'#' * done}{'.' * (width - done)}] {text}   ")
            sys.stderr.flush()
        elif time.perf_counter() - self.last_line > 10 or it == self.total:
            self.last_line = time.perf_counter()
            sys.stderr.write(text + "\n")

    def message(self, text: str) -> None:
        """Print a line of its own (an evaluation) without breaking the bar."""
        if self.enabled:
            sys.stderr.write(("\r" if self.tty else "") + text + (" " * 20 if self.tty else "") + "\n")

    def close(self) -> None:
        """End the bar's line."""
        if self.enabled and self.tty:
            sys.stderr.write("\n")


def plot_losses(out: Path) -> Path | None:
    """``loss.png`` from the metrics log, when matplotlib is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    steps, train, evals = [], [], []
    for line in (out / METRICS).read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if "loss" in entry:
            steps.append(entry["iter"])
            train.append(entry["loss"])
        if "val_loss" in entry:
            evals.append((entry["iter"], entry["train_loss"], entry["val_loss"]))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, train, lw=0.6, alpha=0.5, label="train (batch)")
    if evals:
        its, tr, va = zip(*evals)
        ax.plot(its, tr, "o-", label="train (eval)")
        ax.plot(its, va, "o-", label="val (eval)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("cross-entropy loss")
    ax.legend()
    fig.tight_layout()
    path = out / "loss.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def train(cfg: TrainConfig) -> Trainer:
    """Run training as configured; returns the Trainer (model, losses, paths)."""
    if not cfg.resume:
        (Path(cfg.out) / METRICS).unlink(missing_ok=True)  # a fresh run starts a fresh log
    trainer = Trainer(cfg)
    started = time.perf_counter()
    losses = trainer.run()
    trainer.log(f"done: {trainer.iter} iterations in {time.perf_counter() - started:.1f} s, "
                f"train loss {losses['train']:.4f}, val loss {losses['val']:.4f}; "
                f"checkpoints in {trainer.out}")
    plot = plot_losses(trainer.out) if trainer.is_main else None
    if plot is not None:
        trainer.log(f"loss curve: {plot}")
    return trainer
