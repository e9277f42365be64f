"""Which recipe trains the best tiny-shakespeare model in the time nanoGPT's CPU recipe takes?

Three phases, each printed as it ends:

1. **Budget.** With ``--nanogpt DIR`` (a checkout of karpathy/nanoGPT), time nanoGPT's CPU
   recipe end to end (its README's laptop command: 4 layers, 4 heads, 128 wide, block 64,
   batch 12, 2000 iterations, no dropout); or give the seconds with ``--budget``.
2. **Calibration**, on a quiet machine: each model shape (the candidates that differ only in
   their optimizer settings share one) trains 200 iterations, which gives its ms per step
   (the median) and the fixed cost of a run (start-up, data, evaluations, checkpoints).
   From those, the number of iterations that fits the budget.
3. **Training**: every candidate trains that many iterations (its cosine schedule ends
   there), and its final model is scored on the *whole* validation split
   (``tinygrad_lm.evaluate``). The loss depends only on the configuration and the number of
   iterations, so with ``--jobs 2`` two candidates train at once, one thread each.

    python -m benchmarks.recipe_sweep --data ../shared/data/tinyshakespeare.txt \\
        --nanogpt ../nanoGPT --jobs 2 --json runs/sweep.json --plot docs/images/recipe_sweep.svg

``--confirm SEED ...`` then checks the chosen preset (``--preset shakespeare``, the default of
``--data shakespeare``) against nanoGPT itself, the two taking turns on a quiet machine:
whole-run wall times, and whole-split val losses (nanoGPT's saved model is scored by the
same evaluator, through PyTorch, which reads its checkpoint).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness, machine  # noqa: E402
from tinygrad_lm.evaluate import evaluate_run  # noqa: E402

# nanoGPT's README command for a CPU: its config evaluates every 250 steps, here on 20
# batches instead of 200 (as tinygrad_lm's cpu preset does); the final model is saved
NANOGPT_FLAGS = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False",
                 "--eval_iters=20", "--log_interval=250", "--block_size=64", "--batch_size=12",
                 "--n_layer=4", "--n_head=4", "--n_embd=128", "--max_iters=2000",
                 "--lr_decay_iters=2000", "--dropout=0.0", "--always_save_checkpoint=True"]

EVAL_INTERVAL = 500  # every candidate evaluates on 20 batches this often, as the preset does

# name -> train flags on top of the cpu preset (nanoGPT's recipe: lr 1e-3, block 64, batch 12)
CANDIDATES: dict[str, dict[str, Any]] = {
    "nanogpt-recipe": {},
    "lr2e-3": {"lr": 2e-3, "min_lr": 2e-4},
    "lr3e-3": {"lr": 3e-3, "min_lr": 3e-4},
    "lr5e-3": {"lr": 5e-3, "min_lr": 5e-4},
    "llama-lr3e-3": {"lr": 3e-3, "min_lr": 3e-4, "preset": "llama"},
    "block128-lr3e-3": {"lr": 3e-3, "min_lr": 3e-4, "block_size": 128},
    "batch24-lr3e-3": {"lr": 3e-3, "min_lr": 3e-4, "batch_size": 24},
    "wide192-lr3e-3": {"lr": 3e-3, "min_lr": 3e-4, "n_embd": 192, "n_head": 6},
    "deep6-lr3e-3": {"lr": 3e-3, "min_lr": 3e-4, "n_layer": 6},
    "shallow3-wide192-lr3e-3": {"lr": 3e-3, "min_lr": 3e-4, "n_layer": 3, "n_embd": 192,
                                "n_head": 6},
    # round 2, around the best of round 1 (llama-lr3e-3)
    "llama-lr2e-3": {"lr": 2e-3, "min_lr": 2e-4, "preset": "llama"},
    "llama-lr5e-3": {"lr": 5e-3, "min_lr": 5e-4, "preset": "llama"},
    "llama-kv1-lr3e-3": {"lr": 3e-3, "min_lr": 3e-4, "preset": "llama", "n_kv_head": 1},
    "llama-batch8-lr3e-3": {"lr": 3e-3, "min_lr": 3e-4, "preset": "llama", "batch_size": 8},
}


def as_flags(values: dict[str, Any]) -> list[str]:
    """``{"n_embd": 192}`` -> ``["--n-embd", "192"]``."""
    flags = []
    for key, value in values.items():
        flags += ["--" + key.replace("_", "-"), str(value)]
    return flags


def time_nanogpt(nanogpt: Path, data: Path, out: Path) -> float:
    """Seconds nanoGPT's CPU recipe takes end to end, its checkpoint written into ``out``.
    Its data files are prepared first from ``data`` (nanoGPT's own prepare.py), unless the
    checkout holds them; an input.txt there that is not ``data`` is an error, never replaced."""
    prepared = nanogpt / "data" / "shakespeare_char"
    if not (prepared / "val.bin").exists():
        given = prepared / "input.txt"
        if not given.exists():
            shutil.copy(data, given)
        elif given.read_bytes() != data.read_bytes():
            raise SystemExit(f"recipe_sweep: {given} is not {data}; prepare nanoGPT's data "
                             f"yourself or remove that file")
        subprocess.run([sys.executable, "prepare.py"], cwd=prepared, check=True,
                       stdout=subprocess.DEVNULL)
    started = time.perf_counter()
    subprocess.run([sys.executable, "train.py", *NANOGPT_FLAGS, f"--out_dir={out}"],
                   cwd=nanogpt, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def nanogpt_val_loss(out: Path, data: Path) -> float:
    """The whole-split val loss of the model nanoGPT's run saved, scored by the evaluator the
    candidates get (nanoGPT's state_dict names are tinygrad_lm's; PyTorch reads its file)."""
    import torch

    from tinygrad_lm.data.corpora import load_corpus
    from tinygrad_lm.data.tokenizers import CharTokenizer
    from tinygrad_lm.evaluate import split_ids, split_loss
    from tinygrad_lm.models import GPT, GPTConfig

    ckpt = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=False)
    model = GPT(GPTConfig(**ckpt["model_args"]))
    model.load_state_dict({k.removeprefix("_orig_mod."): v.numpy()
                           for k, v in ckpt["model"].items()})
    text = load_corpus(str(data))
    ids = split_ids(text, CharTokenizer.train(text), "val")
    return split_loss(model.eval(), ids, model.config.block_size)[0]


def confirm(nanogpt: Path, data: Path, work: Path, seeds: list[int],
            overwrite: bool) -> list[dict[str, Any]]:
    """nanoGPT's recipe and ``train --preset shakespeare`` taking turns, once per seed (nanoGPT
    keeps its own seed): the wall time of each whole run and its whole-split val loss."""
    rows = []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as scratch:
            row: dict[str, Any] = {"seed": seed,
                                   "nanogpt_wall_s": time_nanogpt(nanogpt, data, Path(scratch)),
                                   "nanogpt_val_loss": nanogpt_val_loss(Path(scratch), data)}
        out = work / f"confirm-{seed}"
        row["wall_s"] = train("shakespeare", {"preset": "shakespeare", "seed": seed}, data, out,
                              overwrite=overwrite)
        row["val_loss"] = evaluate_run(out, str(data))["loss"]
        print(f"seed {seed}: nanoGPT {row['nanogpt_wall_s']:.1f} s, val "
              f"{row['nanogpt_val_loss']:.4f}; --preset shakespeare {row['wall_s']:.1f} s, val "
              f"{row['val_loss']:.4f}", flush=True)
        rows.append(row)
    return rows


def train(name: str, flags: dict[str, Any], data: Path, out: Path, threads: int | None = None,
          overwrite: bool = False) -> float:
    """Run ``tinygrad-lm train`` quietly into ``out`` (replacing a run there only with
    ``overwrite``; else train's refusal ends the sweep); its wall seconds."""
    env = dict(os.environ)
    if threads is not None:
        env.update(OPENBLAS_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads),
                   OMP_NUM_THREADS=str(threads))
    command = [sys.executable, "-m", "tinygrad_lm", "train", "--data", str(data),
               "--out", str(out), "--quiet", "--sample-tokens", "0", *as_flags(flags)] \
        + (["--overwrite"] if overwrite else [])
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"recipe_sweep: {name}: {result.stderr.strip()}")
    return time.perf_counter() - started


OPTIMIZER_FLAGS = ("lr", "min_lr", "warmup", "weight_decay", "beta1", "beta2", "grad_clip")
CALIBRATION_STEPS = 200


def shape_of(flags: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The flags that change the time of a step: all but the optimizer's."""
    return tuple(sorted((k, v) for k, v in flags.items() if k not in OPTIMIZER_FLAGS))


def calibrate(name: str, flags: dict[str, Any], data: Path) -> dict[str, float]:
    """ms per step (median of steps 11-200) and the fixed seconds of a 200-step run (in a
    temporary directory)."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / name
        wall = train(name, {**flags, "max_iters": CALIBRATION_STEPS,
                            "eval_interval": CALIBRATION_STEPS}, data, out)
        steps = [json.loads(line)["ms"] for line in
                 (out / "metrics.jsonl").read_text().splitlines() if '"ms"' in line]
    step_s = statistics.median(steps[10:]) / 1e3
    return {"step_s": step_s, "fixed_s": wall - sum(steps) / 1e3}


def iterations_within(budget: float, step_s: float, fixed_s: float) -> int:
    """The most iterations whose run, at ``step_s`` a step, fits ``budget`` seconds. A run of
    n iterations evaluates ceil(n / EVAL_INTERVAL) + 1 times; the calibration run's
    fixed cost held two evaluations, and one evaluation (40 forward batches) costs about 15
    steps."""
    per_eval = 15 * step_s
    base = fixed_s - 2 * per_eval
    n = int((budget - base - 2 * per_eval) / (step_s + per_eval / EVAL_INTERVAL))
    while n > 1 and base + n * step_s + (math.ceil(n / EVAL_INTERVAL) + 1) * per_eval > budget:
        n -= 1
    return max(n, 1)


def run_candidate(name: str, flags: dict[str, Any], iters: int, data: Path, work: Path,
                  threads: int | None, overwrite: bool) -> dict[str, Any]:
    """Train ``name`` for ``iters`` iterations and score it on the whole validation split."""
    out = work / name
    wall = train(name, {**flags, "max_iters": iters, "eval_interval": EVAL_INTERVAL}, data,
                 out, threads, overwrite)
    scored = evaluate_run(out, str(data))
    return {"name": name, "flags": flags, "iters": iters, "wall_s": wall,
            "val_loss": scored["loss"]}


def plot(rows: list[dict[str, Any]], path: Path, budget: float) -> None:
    """A horizontal bar per candidate: its whole-split val loss (lower is better)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    from svgplot import BLUE, GREY, Figure

    rows = sorted(rows, key=lambda r: r["val_loss"])
    low = math.floor(min(r["val_loss"] for r in rows) * 20) / 20 - 0.05
    high = math.ceil(max(r["val_loss"] for r in rows) * 20) / 20
    left, width, bar = 190, 420, 22
    fig = Figure(left + width + 70, 60 + bar * len(rows) + 40)
    fig.text((left + width) / 2 + 40, 22, f"val loss (whole split) after {budget:.0f} s of "
             f"training", size=13, bold=True)

    def px(v: float) -> float:
        return left + (v - low) / (high - low) * width

    for k, row in enumerate(rows):
        y = 40 + k * bar
        fig.rect(left, y + 3, px(row["val_loss"]) - left, bar - 6,
                 GREY if row["name"] == "nanogpt-recipe" else BLUE)
        fig.text(left - 8, y + bar / 2 + 4, row["name"], size=11, anchor="end")
        fig.text(px(row["val_loss"]) + 6, y + bar / 2 + 4, f"{row['val_loss']:.3f}",
                 size=11, anchor="start")
    axis = 40 + bar * len(rows) + 4
    fig.line(left, axis, left + width, axis, "#333333")
    for tick in [low + 0.05 * i for i in range(round((high - low) / 0.05) + 1)]:
        fig.line(px(tick), axis, px(tick), axis + 4, "#333333")
        fig.text(px(tick), axis + 16, f"{tick:.2f}", size=10)
    path.write_text(fig.svg(), encoding="utf-8")


def report(rows: list[dict[str, Any]], seconds: float, args: argparse.Namespace) -> None:
    """The table, best first, and the JSON and SVG when asked for."""
    rows = sorted(rows, key=lambda r: r["val_loss"])
    print(harness.format_table(
        ["candidate", "flags", "ms/step", "iterations", "val loss (whole split)"],
        [[r["name"], " ".join(as_flags(r["flags"])) or "(cpu preset)", f"{r['step_ms']:.1f}",
          r["iters"], f"{r['val_loss']:.4f}"] for r in rows]))
    if args.json:
        harness.write_json(args.json, {"machine": machine.machine(), "budget_s": seconds,
                                       "rows": rows})
    if args.plot:
        plot(rows, args.plot, seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="tinyshakespeare.txt")
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--nanogpt", type=Path, help="a nanoGPT checkout, to time its recipe")
    budget.add_argument("--budget", type=float, help="the seconds each run may take")
    budget.add_argument("--results", type=Path, nargs="+", help="instead of training: the "
                        "--json files of earlier sweeps, reported together")
    parser.add_argument("--confirm", type=int, nargs="+", metavar="SEED", default=None,
                        help="with --nanogpt: instead of the sweep, time nanoGPT's recipe and "
                        "--preset shakespeare in turns, once per seed")
    parser.add_argument("--only", nargs="+", choices=sorted(CANDIDATES), default=None)
    parser.add_argument("--jobs", type=int, default=1, help="candidates trained at once")
    parser.add_argument("--work", type=Path, default=Path("runs/recipe_sweep"),
                        help="where each candidate's run is kept, in a folder of its name")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the runs an earlier sweep left in --work")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None, help="an SVG of the results")
    args = parser.parse_args(argv)
    if args.results:
        sweeps = [json.loads(path.read_text()) for path in args.results]
        report([row for sweep in sweeps for row in sweep["rows"]], sweeps[0]["budget_s"], args)
        return 0
    if args.data is None:
        parser.error("--data is needed to train")
    args.work.mkdir(parents=True, exist_ok=True)
    data = args.data.resolve()
    where = machine.machine()
    print(f"CPU {where['cpu']} ({where['cpu_vendor']}), {where['cpu_count']} cores", flush=True)
    if args.confirm:
        if not args.nanogpt:
            parser.error("--confirm needs --nanogpt")
        rows = confirm(args.nanogpt.resolve(), data, args.work, args.confirm, args.overwrite)
        if args.json:
            harness.write_json(args.json, {"machine": where, "confirm": rows})
        return 0
    if args.nanogpt:
        with tempfile.TemporaryDirectory() as scratch:
            seconds = time_nanogpt(args.nanogpt.resolve(), data, Path(scratch))
    else:
        seconds = args.budget
    print(f"budget: {seconds:.1f} s" + (" (nanoGPT's CPU recipe, end to end)"
                                         if args.nanogpt else ""), flush=True)
    names = args.only or list(CANDIDATES)
    plans: dict[str, dict[str, float]] = {}
    by_shape: dict[tuple[tuple[str, Any], ...], dict[str, float]] = {}
    for name in names:
        shape = shape_of(CANDIDATES[name])
        if shape not in by_shape:
            by_shape[shape] = calibrate(name, CANDIDATES[name], data)
            by_shape[shape]["iters"] = iterations_within(seconds, **by_shape[shape])
        plans[name] = by_shape[shape]
        print(f"{name}: {plans[name]['step_s'] * 1e3:.1f} ms/step, "
              f"{plans[name]['fixed_s']:.1f} s fixed -> {plans[name]['iters']} iterations",
              flush=True)
    threads = max(1, machine.cpu_count() // args.jobs) if args.jobs > 1 else None
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda n: run_candidate(n, CANDIDATES[n], plans[n]["iters"], data,
                                                     args.work, threads, args.overwrite),
                                   names))
    for row in rows:
        row["step_ms"] = plans[row["name"]]["step_s"] * 1e3
    report(rows, seconds, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
