"""The command line: ``tinygrad-lm {train,sample,eval,export,bench,gradcheck,graph,exercises}``
(also ``python -m tinygrad_lm``).

Expected failures (a missing file, a bad flag value, an unknown character in a prompt) print
one clear line on stderr and exit with status 2; they never show a traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import sys
from typing import NoReturn, Sequence

from . import exercises
from .data.corpora import DEFAULT_CORPUS, DataError


def _train_parser(sub: argparse._SubParsersAction) -> None:
    from .train import PRESETS, TrainConfig

    d = TrainConfig()
    p = sub.add_parser("train", help="train a GPT on a text corpus",
                       description="Train a GPT language model. With no arguments: the 'cpu' "
                       "preset (nanoGPT's small CPU recipe) on the built-in corpus, offline, "
                       "into ./out. A directory that holds a run is never replaced unless "
                       "--overwrite is given; --resume continues it with its saved settings.")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="a starting configuration that the other flags override (default: "
                   "cpu; shakespeare with --data shakespeare; finetune with --init-from)")
    p.add_argument("--config", default=None, metavar="FILE.toml", help="flag values from a "
                   "TOML file, keys named like the flags with underscores (max_iters = 3); "
                   "flags on the command line win")
    p.add_argument("--data", default=None, help=f"a text file, or a built-in corpus name: "
                   f"'{DEFAULT_CORPUS}' (no download) or 'shakespeare' (default: {d.data})")
    p.add_argument("--out", default=None, help="directory for checkpoints and logs (default: out)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: $TINYGRAD_LM_DEVICE or cpu)")
    p.add_argument("--init-from", default=None, metavar="PATH", help="fine-tune pretrained "
                   "weights: a Hugging Face GPT-2 directory or model.safetensors (its "
                   "tokenizer beside it), a tinygrad-lm export, or gpt2, gpt2-medium, "
                   "gpt2-large, gpt2-xl (downloaded once); defaults to --preset finetune")
    p.add_argument("--tokenizer", choices=["char", "bpe"], default=None)
    p.add_argument("--vocab-size", type=int, default=None, help="BPE vocabulary size")
    for flag, kind in [("max-iters", int), ("batch-size", int), ("block-size", int),
                       ("n-layer", int), ("n-head", int), ("n-embd", int), ("dropout", float),
                       ("lr", float), ("min-lr", float), ("warmup", int),
                       ("lr-decay-iters", int), ("weight-decay", float),
                       ("grad-clip", float), ("eval-interval", int), ("eval-iters", int),
                       ("seed", int), ("sample-tokens", int), ("grad-accum", int)]:
        p.add_argument(f"--{flag}", type=kind, default=None)
    p.add_argument("--pos-emb", choices=["learned", "rope"], default=None,
                   help="position embeddings: learned (GPT-2) or rotary (Llama) (default: learned)")
    p.add_argument("--norm", choices=["layernorm", "rmsnorm"], default=None,
                   help="the blocks' normalisation (default: layernorm)")
    p.add_argument("--mlp", choices=["gelu", "swiglu"], default=None,
                   help="the MLP: 4x GELU (GPT-2) or SwiGLU (Llama) (default: gelu)")
    p.add_argument("--n-kv-head", type=int, default=None, help="key/value heads, each shared "
                   "by --n-head / --n-kv-head query heads (default: --n-head)")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out with "
                   "its saved settings (a larger --max-iters trains it longer)")
    p.add_argument("--overwrite", action="store_true", help="start over in an --out that holds "
                   "a run (it is replaced when the new run saves its first checkpoint)")
    p.add_argument("--ddp", action="store_true", help="data-parallel over the ranks started by "
                   "`mpirun -n N tinygrad-lm train --ddp` (MPI on cpu, NCCL on cuda)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _sample_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="print text sampled from a trained checkpoint",
                       description="Print text sampled from the model in --out, or from "
                       "pretrained weights with --init-from (only the text goes to stdout).")
    p.add_argument("--out", default="out", help="the training run's directory (default: out)")
    p.add_argument("--init-from", default=None, metavar="PATH", help="instead of --out: a "
                   "Hugging Face GPT-2 directory or model.safetensors (with GPT-2's vocab.json "
                   "and merges.txt, or tinygrad-lm export's tokenizer, beside it), or gpt2, "
                   "gpt2-medium, gpt2-large, gpt2-xl (downloaded once)")
    p.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    p.add_argument("--max-new-tokens", type=int, default=500)
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default: 0.8)")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--seed", type=int, default=None, help="same seed, same text")
    p.add_argument("--device", default=None)
    p.add_argument("--no-cache", action="store_true", help="recompute the whole context each step")
    p.add_argument("--context", choices=["slide", "halve"], default="slide",
                   help="once the text outgrows the model's window: slide the window by one "
                   "token each step (with learned positions the cache is refilled every step: "
                   "slow; with RoPE it rolls: fast) or halve the context (refilled once per "
                   "half window: fast) (default: slide)")


def _bench_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="time the GPT training step against PyTorch eager",
                       description="Benchmark the GPT train step (with --fused: each fused "
                       "op at the GPT sizes) against PyTorch eager, each library in its own "
                       "worker process, the workers taking turns; or, with --ops, each op, "
                       "both libraries in one process. Prints a table.")
    p.add_argument("--device", nargs="+", default=["cpu"], help="e.g. cpu cuda")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the results here")
    p.add_argument("--config", nargs="+", default=None, help="tiny baby small medium")
    p.add_argument("--quick", action="store_true", help="a fast smoke run")
    p.add_argument("--kernels", nargs="+", default=None, choices=["fast", "reference"],
                   help="tinygrad_lm's kernels to time in the step (default: fast)")
    p.add_argument("--contention", type=int, default=0, metavar="N",
                   help="time the step while N CPU-bound processes run")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--fused", action="store_true",
                       help="the fused ops at the GPT sizes (fast and reference kernels) instead")
    which.add_argument("--ops", action="store_true", help="the per-op benchmark instead")


def run_bench(args: argparse.Namespace) -> int:
    """``tinygrad-lm bench``: the GPT step, fused-op or per-op benchmark against PyTorch."""
    from benchmarks import bench_fused, bench_gpt, bench_ops

    argv = ["--device", *args.device] + (["--json", args.json] if args.json else []) + \
        (["--quick"] if args.quick else [])
    if args.ops:
        return bench_ops.main(argv)
    configs = ["--config", *args.config] if args.config else []
    if args.fused:
        return bench_fused.main(argv + configs)
    return bench_gpt.main(argv + configs + (["--kernels", *args.kernels] if args.kernels else [])
                          + ["--contention", str(args.contention)])


def _gradcheck_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gradcheck", help="check every op's gradient numerically",
                       description="Compare each op's and layer's backward with central "
                       "differences in float64 and print a table; exit 1 on any failure.")
    p.add_argument("--op", nargs="+", default=None, help="only these rows: a name as printed, or "
                   "a word of it (matmul: every matmul row)")
    p.add_argument("--no-second-order", action="store_true", help="skip gradgradcheck")


def run_gradcheck(args: argparse.Namespace) -> int:
    """``tinygrad-lm gradcheck``: the table of numerical gradient checks; 1 if any fails."""
    from .checks import format_results, run_all

    results = run_all(args.op, second_order=not args.no_second_order)
    print(format_results(results))
    failed = [r.name for r in results if not r.passed]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def run_train(args: argparse.Namespace) -> int:
    """``tinygrad-lm train``: a new run (preset < --config file < flags) or the resumed one,
    then a sample."""
    from .rundir import recover
    from .run_config import new_run, read_toml, resumed_run
    from .sample import generate_text
    from .train import TrainConfig, read_checkpoint, train

    names = {field.name for field in dataclasses.fields(TrainConfig)} | {"preset"}
    flags = {k: v for k, v in vars(args).items() if k in names and v is not None and v is not False}
    file_values = read_toml(args.config) if args.config else {}
    checkpoint = None
    if flags.get("resume"):
        if flags.get("overwrite"):
            raise ValueError("--resume continues the run in --out and --overwrite starts it "
                             "over: give one of them")
        out = flags.get("out", file_values.get("out", TrainConfig.out))
        recover(out)  # a commit that a killed run left half done
        checkpoint = read_checkpoint(out)
        cfg = resumed_run(checkpoint["train_config"], file_values,
                          {k: v for k, v in flags.items() if k != "resume"} | {"out": out})
        if checkpoint["iter"] >= cfg.max_iters:
            print(f"the run in {out} is finished ({checkpoint['iter']} of {cfg.max_iters} "
                  f"iterations); nothing to do. To train it longer: --resume --max-iters N "
                  f"with N above {checkpoint['iter']}", file=sys.stderr)
            return 0
    else:
        cfg = new_run(file_values, flags)
    trainer = train(cfg, checkpoint)
    if cfg.sample_tokens > 0 and trainer.is_main:
        print("--- sample ---", file=sys.stderr)
        model = trainer.model.eval()
        print(generate_text(model, trainer.tokenizer, "\n", cfg.sample_tokens, seed=cfg.seed))
    return 0


def check_sample_args(args: argparse.Namespace) -> None:
    """Refuse sampling settings that cannot work, naming the flag."""
    if args.max_new_tokens < 0:
        raise ValueError(f"--max-new-tokens must be at least 0, got {args.max_new_tokens}")
    if not math.isfinite(args.temperature) or args.temperature < 0:
        raise ValueError(f"--temperature must be at least 0 (0 = greedy), got {args.temperature}")
    if args.top_k is not None and args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise ValueError(f"--top-p must be above 0 and at most 1, got {args.top_p}")
    if args.seed is not None and args.seed < 0:
        raise ValueError(f"--seed must be at least 0, got {args.seed}")


def run_sample(args: argparse.Namespace) -> int:
    """``tinygrad-lm sample``: text from the checkpoint in ``--out``, on stdout only."""
    from .sample import generate_text, load_model, load_pretrained_model

    check_sample_args(args)
    model, tokenizer = (load_pretrained_model(args.init_from, args.device) if args.init_from
                        else load_model(args.out, args.device))
    text = generate_text(model, tokenizer, args.prompt, args.max_new_tokens, args.temperature,
                         args.top_k, args.top_p, args.seed, use_cache=not args.no_cache,
                         context=args.context)
    sys.stdout.write(text + ("" if text.endswith("\n") else "\n"))
    return 0


def _eval_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="a trained model's loss and perplexity on a whole split",
                       description="Score the run in --out (its best checkpoint, else its "
                       "latest) on every token of a split, in consecutive windows of its "
                       "context: the loss without the sampling noise of training's estimate, "
                       "and the perplexity exp(loss).")
    p.add_argument("--out", default="out", help="the training run's directory (default: out)")
    p.add_argument("--data", default=None, help="a text file or built-in corpus name "
                   "(default: the one the run trained on), read with the run's tokenizer")
    p.add_argument("--split", default="val", help="val (the last tenth, as in training) or "
                   "train (default: val)")
    p.add_argument("--batch-size", type=int, default=64, help="windows per forward pass")
    p.add_argument("--device", default=None)


def run_eval(args: argparse.Namespace) -> int:
    """``tinygrad-lm eval``: the whole-split loss and perplexity of a run's model."""
    from .evaluate import evaluate_run

    r = evaluate_run(args.out, args.data, args.split, args.batch_size, args.device)
    print(f"{r['split']} loss {r['loss']:.4f}, perplexity {r['perplexity']:.3f} over "
          f"{r['tokens']:,} tokens of {r['data']} (whole split; {r['checkpoint']}, "
          f"iteration {r['iter']})")
    return 0


def _export_parser(sub: argparse._SubParsersAction) -> None:
    from .export import FORMATS

    p = sub.add_parser("export", help="write a run's model as Hugging Face GPT-2 files",
                       description="Write the model of the run in --out (its best checkpoint, "
                       "else its latest) to OUT/<format>/: model.safetensors and config.json "
                       "in GPT-2's layout, and the run's tokenizer (GPT-2's vocab.json and "
                       "merges.txt for a fine-tuned GPT-2, else tokenizer.tlm). Prints the "
                       "directory.")
    p.add_argument("--out", default="out", help="the training run's directory (default: out)")
    p.add_argument("--format", choices=FORMATS, default=FORMATS[0])


def run_export(args: argparse.Namespace) -> int:
    """``tinygrad-lm export``: the run's model as a Hugging Face GPT-2 directory."""
    from .export import export_run

    print(export_run(args.out, args.format))
    return 0


def _graph_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("graph", help="draw the autograd graph of a tiny GPT's loss",
                       description="Draw the graph behind a tiny GPT's loss (ops, shapes, "
                       "dtypes, gradients) as SVG or Graphviz DOT, chosen by the file suffix. "
                       "Uses Graphviz's `dot` when installed, else its own layout.")
    p.add_argument("--output", "-o", default="gpt_graph.svg", help="a .svg or .dot file "
                   "(default: gpt_graph.svg)")
    p.add_argument("--n-layer", type=int, default=1, help="transformer blocks (default: 1)")
    p.add_argument("--no-grads", action="store_true", help="draw before backward: no gradients")
    p.add_argument("--no-graphviz", action="store_true", help="use the built-in layout even "
                   "when Graphviz is installed")


def run_graph(args: argparse.Namespace) -> int:
    """``tinygrad-lm graph``: the autograd graph of a tiny GPT's loss, drawn to a file."""
    from . import backend, viz

    if args.n_layer < 1:
        raise ValueError(f"--n-layer must be at least 1, not {args.n_layer}")
    backend.manual_seed(0)
    loss, params = viz.tiny_gpt_loss(args.n_layer)
    if not args.no_grads:
        loss.backward(retain_graph=True)  # keep the graph so it can still be drawn
    path = viz.draw(loss, args.output, params={**params, "loss": loss},
                    show_grads=not args.no_grads, use_graphviz=False if args.no_graphviz else None)
    print(path)
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (the usage is a --help away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per job."""
    parser = _Parser(prog="tinygrad-lm", description="Train and sample tiny GPT "
                                     "language models with a NumPy/CuPy autograd engine.")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _sample_parser(sub)
    _eval_parser(sub)
    _export_parser(sub)
    _bench_parser(sub)
    _gradcheck_parser(sub)
    _graph_parser(sub)
    exercises.add_parser(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    """An expected error as one line: its message, or what it is when it has none."""
    if isinstance(exc, MemoryError):
        return "out of memory: try a smaller model (--n-layer, --n-embd) or --batch-size"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``tinygrad-lm``; returns the exit status (2 for a usage error)."""
    from . import distributed
    from .train import TrainingError

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(message)s", level=logging.INFO, stream=sys.stderr)
    handlers = {"train": run_train, "sample": run_sample, "eval": run_eval,
                "export": run_export, "bench": run_bench, "gradcheck": run_gradcheck,
                "graph": run_graph, "exercises": exercises.run}
    try:
        return handlers[args.command](args)
    except (DataError, TrainingError, ValueError, OSError, RuntimeError, MemoryError) as exc:
        message = _one_line(exc)
        if distributed.get_world_size() > 1:  # the other ranks would wait for this one forever
            distributed.abort(f"{args.command}: error: {message}", status=2)
        print(f"tinygrad-lm {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
