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

The files of a run, and how a new run avoids destroying an earlier one, are in ``rundir.py``:
nothing an earlier run left is replaced before the new run has saved its first checkpoint,
which happens at its first evaluation after training (never for the untrained model).
"""
from __future__ import annotations

import dataclasses
import json
import math
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import backend, distributed, nn, optim
from .atomic import atomic_write_bytes
from .config import no_grad
from .data import DataError, batches, corpora
from .data.tokenizers import Tokenizer, tokenizer_from_dict
from .models.gpt import GPT, GPTConfig, training_flops_per_token
from .models.pretrained import PretrainedError, load_pretrained_with_tokenizer
from .progress import Progress
from .rundir import (BEST_CHECKPOINT, CHECKPOINT, CONFIG, DATA, METRICS, PLOT, RunDir,
                     trim_metrics)
from .serialization import CheckpointError, load, save
from .tensor import Tensor

CHECKPOINT_FORMAT = "tinygrad_lm.gpt-checkpoint"
MAX_BPE_VOCAB = 1 << 16  # token ids stay uint16; larger vocabularies take hours to learn here


@dataclass
class TrainConfig:
    """Every knob of a training run (the defaults are the ``cpu`` preset). Each field is
    the flag of the same name (``max_iters`` is ``--max-iters``); values are checked when
    the config is made, and a bad one raises ``ConfigError`` naming the flag."""

    data: str = corpora.DEFAULT_CORPUS
    out: str = "out"
    device: str | None = None
    init_from: str | None = None  # pretrained weights to fine-tune (their shape and tokenizer)
    tokenizer: str = "char"  # "pretrained" with init_from: the one beside the weights
    vocab_size: int = 512  # BPE only; a char vocabulary is the corpus' characters
    max_iters: int = 2000
    batch_size: int = 12
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = False  # nanoGPT's train.py trains without biases in Linear and LayerNorm
    pos_emb: str = "learned"  # or "rope"; these four are GPTConfig's Llama options
    norm: str = "layernorm"  # or "rmsnorm"
    mlp: str = "gelu"  # or "swiglu"
    n_kv_head: int | None = None  # key/value heads (grouped-query attention); None: n_head
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup: int = 100
    lr_decay_iters: int | None = None  # where the cosine reaches min_lr (None: max_iters)
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
    preset: str | None = None  # the preset the values started from, for the record
    resume: bool = False
    overwrite: bool = False  # start over in an --out that holds a run
    quiet: bool = False

    def __post_init__(self) -> None:
        check_config(self)


PRESETS: dict[str, dict[str, Any]] = {
    # nanoGPT's shakespeare_char recipe scaled for a CPU (its README's "baby GPT" on a laptop)
    "cpu": {},
    # nanoGPT's shakespeare_char recipe for a GPU
    "gpu": dict(max_iters=5000, batch_size=64, block_size=256, n_layer=6, n_head=6,
                n_embd=384, dropout=0.2, eval_iters=200, warmup=100),
    # a seconds-long run, for smoke tests and the tutorial
    "tiny": dict(max_iters=100, batch_size=8, block_size=32, n_layer=2, n_head=2, n_embd=64,
                 eval_interval=50, eval_iters=5, warmup=10, sample_tokens=100),
    # the cpu preset's sizes with Llama's choices: rotary positions, RMSNorm, SwiGLU
    "llama": dict(pos_emb="rope", norm="rmsnorm", mlp="swiglu"),
    # the default of --data shakespeare: the best model found in the time nanoGPT's CPU
    # recipe takes (benchmarks/recipe_sweep.py; docs/benchmarks.md has the sweep)
    "shakespeare": dict(pos_emb="rope", norm="rmsnorm", mlp="swiglu", lr=3e-3,
                        min_lr=3e-4, max_iters=1600, eval_interval=500),
    # fine-tuning pretrained weights (--init-from): nanoGPT's finetune_shakespeare settings,
    # a small constant learning rate, on windows a CPU can afford
    "finetune": dict(max_iters=100, batch_size=4, block_size=256, lr=3e-5, min_lr=3e-5,
                     warmup=0, eval_interval=25, eval_iters=10, sample_tokens=200),
}
# what pretrained weights fix, so --init-from refuses these flags (--block-size may crop)
FIXED_BY_PRETRAINED = ("n_layer", "n_head", "n_embd", "bias", "pos_emb", "norm", "mlp",
                       "n_kv_head", "tokenizer", "vocab_size")
MODEL_CHOICES = {"pos_emb": ("learned", "rope"), "norm": ("layernorm", "rmsnorm"),
                 "mlp": ("gelu", "swiglu")}


class TrainingError(RuntimeError):
    """A run that cannot continue (diverged loss, unusable data, bad checkpoint)."""


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the flag, as typed."""


def flag(name: str) -> str:
    """The command-line flag of a ``TrainConfig`` field: ``max_iters`` -> ``--max-iters``."""
    return "--" + name.replace("_", "-")


_AT_LEAST = {"max_iters": 1, "batch_size": 1, "block_size": 1, "n_layer": 1, "n_head": 1,
             "n_embd": 1, "eval_interval": 1, "eval_iters": 1, "grad_accum": 1,
             "lr_decay_iters": 1, "warmup": 0, "sample_tokens": 0, "seed": 0}
_FRACTIONS = ("dropout", "beta1", "beta2")  # in [0, 1)
_NON_NEGATIVE = ("min_lr", "weight_decay", "grad_clip")


def check_config(cfg: TrainConfig) -> None:
    """Raise ``ConfigError`` for the first value that cannot work, naming its flag."""
    for name, low in _AT_LEAST.items():
        value = getattr(cfg, name)
        if value is None and name == "lr_decay_iters":
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{flag(name)} must be an integer, got {value!r}")
        if value < low:
            raise ConfigError(f"{flag(name)} must be at least {low}, got {value}")
    for name in ("lr", *_FRACTIONS, *_NON_NEGATIVE):
        value = getattr(cfg, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) \
                or not math.isfinite(value):
            raise ConfigError(f"{flag(name)} must be a finite number, got {value!r}")
    if cfg.lr <= 0:
        raise ConfigError(f"--lr must be greater than 0, got {cfg.lr}")
    for name in _FRACTIONS:
        if not 0 <= getattr(cfg, name) < 1:
            raise ConfigError(f"{flag(name)} must be at least 0 and below 1, got {getattr(cfg, name)}")
    for name in _NON_NEGATIVE:
        if getattr(cfg, name) < 0:
            raise ConfigError(f"{flag(name)} must be at least 0, got {getattr(cfg, name)}")
    if cfg.n_embd % cfg.n_head:
        raise ConfigError(f"--n-embd {cfg.n_embd} must be a multiple of --n-head {cfg.n_head}")
    for name, choices in MODEL_CHOICES.items():
        if getattr(cfg, name) not in choices:
            raise ConfigError(f"{flag(name)} must be {' or '.join(choices)}, got "
                              f"{getattr(cfg, name)!r}")
    if cfg.n_kv_head is not None:
        if not isinstance(cfg.n_kv_head, int) or isinstance(cfg.n_kv_head, bool) \
                or cfg.n_kv_head < 1 or cfg.n_head % cfg.n_kv_head:
            raise ConfigError(f"--n-kv-head {cfg.n_kv_head} must divide --n-head {cfg.n_head}")
    if cfg.pos_emb == "rope" and (cfg.n_embd // cfg.n_head) % 2:
        raise ConfigError(f"--pos-emb rope needs an even head size, and --n-embd {cfg.n_embd} / "
                          f"--n-head {cfg.n_head} is {cfg.n_embd // cfg.n_head}")
    if cfg.init_from is not None and (not isinstance(cfg.init_from, str) or not cfg.init_from):
        raise ConfigError(f"--init-from must be a path or a model name, got {cfg.init_from!r}")
    if cfg.tokenizer not in ("char", "bpe") and not (cfg.init_from and cfg.tokenizer == "pretrained"):
        raise ConfigError(f"--tokenizer must be 'char' or 'bpe', got {cfg.tokenizer!r}")
    if not isinstance(cfg.vocab_size, int) or not 256 <= cfg.vocab_size <= MAX_BPE_VOCAB:
        raise ConfigError(f"--vocab-size must be between 256 and {MAX_BPE_VOCAB}, "
                          f"got {cfg.vocab_size!r}")
    for name in ("data", "out"):
        if not isinstance(getattr(cfg, name), str) or not getattr(cfg, name):
            raise ConfigError(f"{flag(name)} must be a non-empty text, got {getattr(cfg, name)!r}")
    if cfg.resume and cfg.overwrite:
        raise ConfigError("--resume continues the run in --out and --overwrite starts it over: "
                          "give one of them")


def configure_optimizer(model: nn.Module, cfg: TrainConfig) -> optim.AdamW:
    """AdamW where only 2-D weights (matmuls, embeddings) decay; biases and norms do not."""
    params = [p for p in model.parameters()]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


def read_checkpoint(out: str | Path) -> dict[str, Any]:
    """The training checkpoint in ``out``, or a ``TrainingError`` saying why there is none."""
    path = Path(out) / CHECKPOINT
    if not path.exists():
        raise TrainingError(f"--resume: there is no checkpoint in {out} ({CHECKPOINT}); "
                            f"start a run there without --resume")
    try:
        ckpt = load(path)
    except CheckpointError as exc:
        raise TrainingError(f"--resume: cannot read the checkpoint: {exc}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"--resume: {path} is not a tinygrad_lm training checkpoint")
    return ckpt


def refusal(out: Path) -> str:
    """The one line that says why a new run will not start in ``out``, and what to type."""
    last = [e for e in _read_metrics(out / METRICS) if "iter" in e]
    done = f" (trained to iteration {last[-1]['iter']})" if last else ""
    return (f"{out} already holds a run{done}: continue it with --resume (add --max-iters N "
            f"to train it longer), start over with --overwrite, or choose another --out")


class Trainer:
    """Owns the model, optimizer, data and files of one run.

    ``checkpoint`` is the run's checkpoint when resuming (read from ``cfg.out`` if not given).
    A new run refuses an ``out`` that holds a run unless ``cfg.overwrite``; see ``rundir.py``.
    """

    def __init__(self, cfg: TrainConfig, log: Callable[[str], None] | None = None,
                 checkpoint: dict[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.run_dir = RunDir(self.out, resume=cfg.resume)
        if self.run_dir.replaces_run and not cfg.overwrite:
            raise TrainingError(refusal(self.out))
        if cfg.ddp:
            distributed.require_mpi4py()
        if cfg.resume and checkpoint is None:
            checkpoint = read_checkpoint(self.out)
        self.device = distributed.device_for_rank(cfg.device) if cfg.ddp else \
            backend.get_device(cfg.device)
        self.group = (distributed.init_process_group(device=self.device) if cfg.ddp
                      else distributed.ProcessGroup("single", 0, 1))
        self.is_main = self.group.rank == 0  # only rank 0 writes files and progress
        self.log = log or (lambda text: print(text, file=sys.stderr))  # stdout is for samples
        if not self.is_main:
            self.log = lambda text: None
        if self.is_main:
            self.run_dir.open()
        try:
            self._build(checkpoint)
        except BaseException:
            if self.is_main:
                self.run_dir.discard()
            raise

    def _build(self, checkpoint: dict[str, Any] | None) -> None:
        pretrained, tokenizer = self._pretrained(checkpoint)
        cfg = self.cfg
        if self.is_main:  # rank 0 writes the token files, then the other ranks open them
            self.dataset = self._prepare_data(tokenizer)
        self.group.barrier()
        if not self.is_main:
            self.dataset = self._prepare_data(tokenizer)
        self.tokenizer = self.dataset.tokenizer
        if pretrained is not None:
            self.model_config = pretrained.config
        elif cfg.init_from:  # resuming a fine-tuning run: the shape it was saved with
            self.model_config = GPTConfig(**checkpoint["model_config"])
        else:
            self.model_config = GPTConfig(
                block_size=cfg.block_size, vocab_size=self.tokenizer.vocab_size,
                n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, dropout=cfg.dropout,
                bias=cfg.bias, pos_emb=cfg.pos_emb, norm=cfg.norm, mlp=cfg.mlp,
                n_kv_head=cfg.n_kv_head)
        backend.manual_seed(cfg.seed)
        self.model = (pretrained or GPT(self.model_config)).to(self.device)
        self.ddp = distributed.DistributedDataParallel(self.model, self.group)
        self.optimizer = configure_optimizer(self.model, cfg)
        self.scheduler = optim.lr_scheduler.CosineWarmup(
            self.optimizer, cfg.warmup, cfg.lr_decay_iters or cfg.max_iters, cfg.min_lr)
        self.iter = 0
        self.best_val = math.inf
        self.eval_iter: int | None = None  # the iteration of the last evaluation
        self.losses: dict[str, float] = {}
        if checkpoint is not None:
            self._restore(checkpoint)
        self.start_iter = self.iter
        self._metrics_trimmed = not self.cfg.resume

    def _pretrained(self, checkpoint: dict[str, Any] | None
                    ) -> tuple[GPT | None, Tokenizer | None]:
        """For ``--init-from``: the pretrained model (None when resuming, whose checkpoint
        holds the weights) and its tokenizer. The run's shape fields take the model's values,
        so the saved configuration says what was trained; ``--block-size`` crops the context."""
        cfg = self.cfg
        if not cfg.init_from:
            return None, None
        if checkpoint is not None:
            return None, tokenizer_from_dict(checkpoint["tokenizer"])
        try:
            model, tokenizer = load_pretrained_with_tokenizer(cfg.init_from, cfg.dropout)
        except (PretrainedError, DataError) as exc:
            raise ConfigError(f"--init-from: {exc}") from None
        c = model.config
        if cfg.block_size > c.block_size:
            raise ConfigError(f"--block-size {cfg.block_size} is longer than the context of "
                              f"{cfg.init_from} ({c.block_size})")
        if tokenizer.vocab_size > c.vocab_size:
            raise TrainingError(f"--init-from {cfg.init_from}: its tokenizer has "
                                f"{tokenizer.vocab_size} tokens, its model {c.vocab_size}")
        model.crop_block_size(cfg.block_size)
        self.cfg = dataclasses.replace(cfg, n_layer=c.n_layer, n_head=c.n_head, n_embd=c.n_embd,
                                       bias=c.bias, pos_emb=c.pos_emb, norm=c.norm, mlp=c.mlp,
                                       n_kv_head=c.n_kv_head)
        return model, tokenizer

    # -------------------------------------------------------------- data and evaluation

    def _prepare_data(self, tokenizer: Tokenizer | None) -> batches.TokenDataset:
        """The corpus as token files in the run: tokenized by ``tokenizer`` when given
        (pretrained weights' own), else by a char or BPE tokenizer learned from it."""
        cfg = self.cfg
        dataset = batches.prepare_corpus(cfg.data, self.run_dir.path(DATA),
                                         tokenizer or cfg.tokenizer, cfg.vocab_size)
        for split in batches.SPLITS:
            tokens = len(dataset.splits[split])
            if tokens < cfg.block_size + 1:
                raise TrainingError(f"--block-size {cfg.block_size} is too long for the "
                                    f"{split} split of {cfg.data} ({tokens} tokens): use a "
                                    f"smaller --block-size or a longer text")
        return dataset

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

    # -------------------------------------------------------------- what the run says

    def summary(self) -> list[str]:
        """The lines printed at the start: where the files go, the data, the model, the
        resolved configuration."""
        cfg, meta = self.cfg, self.dataset.meta
        if cfg.resume:
            where = f"resuming the run in {self.out} at iteration {self.iter} of {cfg.max_iters}"
        elif self.run_dir.replaces_run:
            where = (f"a new run in {self.out}, replacing the run there once this one saves its "
                     f"first checkpoint (iteration {min(cfg.eval_interval, cfg.max_iters)})")
        else:
            where = f"a new run in {self.out}"
        tokens = meta["tokens"]
        kind = {"char": "characters", "bpe": "BPE tokens", "gpt2": "GPT-2 BPE tokens"}[
            self.tokenizer.kind]
        params = self.model.num_parameters()
        ranks = self.group.world_size
        lines = [f"note: --ddp, but this process was not started by mpirun, so it trains "
                 f"alone (start N ranks with `mpirun -n N tinygrad-lm train --ddp`)"] \
            if cfg.ddp and ranks == 1 else []
        return lines + [
            f"run: {where}",
            f"data: {cfg.data}, {meta['corpus_chars']:,} characters -> {tokens['train']:,} "
            f"train + {tokens['val']:,} val tokens ({self.tokenizer.vocab_size} {kind}); "
            f"token cache in {self.out / DATA}",
            f"model: GPT with {params / 1e6:.2f} M parameters ({cfg.n_layer} layers, "
            f"{cfg.n_head} heads, {cfg.n_embd} wide, context {cfg.block_size})"
            + (f" from {cfg.init_from}" if cfg.init_from else "") + f" on {self.device.name}"
            + (f", {ranks} data-parallel ranks" if ranks > 1 else ""),
            "config: " + " ".join(f"{k}={v}" for k, v in self.saved_config().items())
            + f" (saved in {self.out / CONFIG})",
        ]

    def saved_config(self) -> dict[str, Any]:
        """The configuration that defines the run (what ``--resume`` restores)."""
        config = dataclasses.asdict(self.cfg)
        for transient in ("out", "resume", "overwrite", "quiet"):
            config.pop(transient)
        return config

    # -------------------------------------------------------------- checkpoints

    def checkpoint(self) -> dict[str, Any]:
        """Everything needed to resume exactly: weights, optimizer, schedule, tokenizer."""
        return {
            "format": CHECKPOINT_FORMAT,
            "model": dict(self.model.state_dict()),
            "model_config": dataclasses.asdict(self.model_config),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "train_config": self.saved_config(),
            "tokenizer": self.tokenizer.to_dict(),
            "iter": self.iter,
            "best_val": self.best_val,
            "eval_iter": self.eval_iter,
            "losses": dict(self.losses),
        }

    def _restore(self, ckpt: dict[str, Any]) -> None:
        # a checkpoint from before a GPTConfig field existed has its default
        if GPTConfig(**ckpt.get("model_config", {})) != self.model_config:
            raise TrainingError(f"--resume: the checkpoint in {self.out} was made with model "
                                f"{ckpt.get('model_config')}, not {dataclasses.asdict(self.model_config)}")
        if not _same_tokenizer(ckpt["tokenizer"], self.tokenizer.to_dict()):
            raise TrainingError(f"--resume: {self.cfg.data} no longer gives the tokenizer the "
                                f"run in {self.out} was trained with (has the text changed?)")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.iter, self.best_val = int(ckpt["iter"]), float(ckpt["best_val"])
        self.eval_iter = ckpt.get("eval_iter")
        self.losses = dict(ckpt.get("losses") or {})

    def save(self, name: str = CHECKPOINT) -> None:
        """Write the checkpoint atomically (rank 0 only), with the configuration beside it.
        The first checkpoint of a new run moves its files into ``out`` (``RunDir.commit``)."""
        if not self.is_main:
            return
        path = self.run_dir.path(name)
        try:
            if name == CHECKPOINT:
                config = json.dumps(self.saved_config(), indent=1) + "\n"
                atomic_write_bytes(self.run_dir.path(CONFIG), config.encode("utf-8"))
            save(self.checkpoint(), path)
        except OSError as exc:
            raise TrainingError(f"cannot write {path}: {exc.strerror or exc}; "
                                f"{self._what_is_kept()}") from None
        self.run_dir.commit()

    def _what_is_kept(self) -> str:
        if self.run_dir.committed:
            return f"the last checkpoint saved in {self.out} is kept"
        if self.run_dir.replaces_run:
            return f"nothing was saved and {self.out} still holds the earlier run"
        return "nothing was saved"

    # -------------------------------------------------------------- the loop

    def _record(self, entry: dict[str, Any]) -> None:
        if not self.is_main:
            return
        path = self.run_dir.path(METRICS)
        try:
            if not self._metrics_trimmed:  # a resumed run: drop steps the checkpoint lacks
                trim_metrics(path, self.start_iter)
                self._metrics_trimmed = True
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")
        except OSError as exc:
            raise TrainingError(f"cannot write {path}: {exc.strerror or exc}; "
                                f"{self._what_is_kept()}") from None

    def step(self, interrupted: bool = False) -> tuple[float, bool]:
        """One optimisation step over every micro-batch of every rank. Returns the mean
        training loss and whether any rank was interrupted (all ranks then stop together)."""
        cfg = self.cfg
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        # A diverging run overflows before its loss turns non-finite; the loss check below
        # reports that in one line, so NumPy's warnings about it would only be noise.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for m in range(cfg.grad_accum):
                k = self.group.rank * cfg.grad_accum + m
                backend.manual_seed(cfg.seed * 1_000_003 + self.iter * 1_009 + k)  # dropout
                x, y = self.get_batch("train", (cfg.seed, 0, self.iter) + ((k,) if k else ()))
                _, loss = self.model(x, y)
                total += loss.item()
                (loss * (1.0 / cfg.grad_accum)).backward()  # d(mean of micro-losses)
        value, stop = self.group.all_reduce_floats([total / cfg.grad_accum, float(interrupted)])
        if not math.isfinite(value):
            raise TrainingError(f"the loss became {value} at iteration {self.iter}; "
                                f"{self._what_is_kept()}. Try a lower --lr.")
        self.ddp.all_reduce_gradients()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.iter += 1
        return value, stop > 0

    def run(self, until: int | None = None) -> dict[str, float]:
        """Train to ``max_iters`` (or stop early at iteration ``until``), then evaluate and
        save a checkpoint. Ctrl-C finishes the current step, saves a checkpoint (unless that
        would replace an earlier run before this one's first checkpoint) and raises
        KeyboardInterrupt; a second Ctrl-C stops at once. A new run that fails before its
        first checkpoint leaves ``out`` as it was."""
        try:
            return self._run(until)
        except BaseException:
            if self.is_main:
                self.run_dir.discard()
            raise

    def _run(self, until: int | None) -> dict[str, float]:
        cfg = self.cfg
        tokens_per_step = cfg.batch_size * cfg.block_size * cfg.grad_accum * self.group.world_size
        shown = not cfg.quiet and self.is_main
        flops = tokens_per_step * training_flops_per_token(self.model_config) / self.group.world_size
        peak = self.matmul_peak() if shown else None
        progress = Progress(self.iter, cfg.max_iters, tokens_per_step, enabled=shown,
                            flops_per_step=flops, peak_flops=peak)
        interrupted: list[int] = []

        def on_interrupt(signum: int, frame: Any) -> None:
            if interrupted:
                raise KeyboardInterrupt
            interrupted.append(signum)

        previous = signal.signal(signal.SIGINT, on_interrupt)
        try:
            stop = cfg.max_iters if until is None else min(until, cfg.max_iters)
            stopping = False
            while self.iter < stop and not stopping:
                if self.iter % cfg.eval_interval == 0 and self.iter != self.eval_iter:
                    self._evaluate(progress)
                started = time.perf_counter()
                loss, stopping = self.step(bool(interrupted))
                elapsed = time.perf_counter() - started
                self._record({"iter": self.iter, "loss": loss,
                              "lr": self.optimizer.param_groups[0]["lr"], "ms": round(elapsed * 1e3, 3)})
                progress.update(self.iter, loss, elapsed)
            if stopping:
                progress.close()
                self._stop_on_interrupt()
            if self.iter != self.eval_iter:
                self._evaluate(progress)
        finally:
            signal.signal(signal.SIGINT, previous)
        progress.close()
        return self.losses

    def matmul_peak(self) -> float:
        """This device's float32 matmul FLOP/s, measured now (`Device.matmul_peak`) and said
        in the log, for the progress line's share of it."""
        peak = self.device.matmul_peak()
        self.log(f"matmul peak: {peak / 1e9:,.0f} GFLOP/s (a float32 matmul on {self.device.name}"
                 f"); the progress line gives the share of it the step's matmuls reach")
        return peak

    def _stop_on_interrupt(self) -> None:
        if self.run_dir.replaces_run and not self.run_dir.committed:
            self.log(f"interrupted at iteration {self.iter}, before this run's first "
                     f"checkpoint: nothing saved; {self.out} still holds the earlier run")
        elif self.iter > self.start_iter:
            self.save()
            self.log(f"interrupted at iteration {self.iter}: checkpoint saved to "
                     f"{self.out / CHECKPOINT}; continue with --resume")
        else:
            self.log(f"interrupted at iteration {self.iter}, before any step: nothing to save")
        raise KeyboardInterrupt

    def _evaluate(self, progress: Progress) -> None:
        """Evaluate, log, and (once this process has trained) save the checkpoints."""
        self.losses = self.estimate_loss()
        self.eval_iter = self.iter
        self._record({"iter": self.iter, "train_loss": self.losses["train"],
                      "val_loss": self.losses["val"]})
        progress.message(f"iter {self.iter}: train loss {self.losses['train']:.4f}, "
                         f"val loss {self.losses['val']:.4f}")
        if self.iter == self.start_iter:  # nothing trained yet: the files on disk are current
            return
        self.save()
        if self.losses["val"] < self.best_val:
            self.best_val = self.losses["val"]
            self.save(BEST_CHECKPOINT)


def _same_tokenizer(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two ``Tokenizer.to_dict`` results describe the same tokenizer."""
    def plain(value: Any) -> Any:
        return value.tolist() if hasattr(value, "tolist") else value

    return a.keys() == b.keys() and all(plain(a[k]) == plain(b[k]) for k in a)


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    """The entries of a metrics log, skipping a half-written line."""
    entries = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                entries.append(entry)
    return entries


def plot_losses(out: Path) -> Path | None:
    """``loss.png`` from the metrics log; None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    steps, train, evals = [], [], []
    for entry in _read_metrics(out / METRICS):
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
    path = out / PLOT
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def train(cfg: TrainConfig, checkpoint: dict[str, Any] | None = None) -> Trainer:
    """Run training as configured (resuming from ``checkpoint`` when given); prints a summary
    at the start and a line at the end; returns the Trainer (model, losses, paths)."""
    trainer = Trainer(cfg, checkpoint=checkpoint)
    if not cfg.quiet:
        for line in trainer.summary():
            trainer.log(line)
    started, first = time.perf_counter(), trainer.iter
    losses = trainer.run()
    trainer.log(f"done: iterations {first} -> {trainer.iter} ({trainer.iter - first} in "
                f"{time.perf_counter() - started:.1f} s), train loss {losses['train']:.4f}, "
                f"val loss {losses['val']:.4f}; checkpoints in {trainer.out}")
    if trainer.is_main:
        plot = plot_losses(trainer.out)
        trainer.log(f"loss curve: {plot}" if plot is not None else
                    f"no {PLOT}: matplotlib is not installed (pip install matplotlib)")
    return trainer
