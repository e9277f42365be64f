"""nanoGPT's CPU recipe on tiny-shakespeare: val loss and wall time, measured.

Trains (or, with ``--skip-train``, reads) a run of ``tinygrad-lm train`` with the recipe the
nanoGPT README gives for a CPU (4 layers, 4 heads, 128 wide, block 64, batch 12, 2000
iterations, lr 1e-3 -> 1e-4, warm-up 100, no dropout, eval every 250 iterations on 20
batches), then evaluates the final model on the *whole* validation split in consecutive
windows, which removes the sampling noise of the 20-batch estimate.

    python -m benchmarks.quality --data ../shared/data/tinyshakespeare.txt --out runs/quality
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tinygrad_lm as tl  # noqa: E402
from tinygrad_lm.data.corpora import load_corpus  # noqa: E402
from tinygrad_lm.evaluate import split_ids, split_loss  # noqa: E402
from tinygrad_lm.sample import generate_text, load_model  # noqa: E402
from tinygrad_lm.train import CHECKPOINT  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="shakespeare")
    parser.add_argument("--out", default="runs/quality")
    parser.add_argument("--skip-train", action="store_true", help="evaluate an existing run")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run already in --out (train refuses otherwise)")
    parser.add_argument("--seed", type=int, default=1337, help="the training run's seed")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    out = Path(args.out)
    wall = None
    if not args.skip_train:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tinygrad_lm", "train", "--preset", "cpu",
                        "--data", args.data, "--out", str(out), "--seed", str(args.seed), "--quiet",
                        "--sample-tokens", "0"] + (["--overwrite"] if args.overwrite else []),
                       check=True)
        wall = time.perf_counter() - started
    model, tokenizer = load_model(out)
    ckpt = tl.load(out / CHECKPOINT)
    model.load_state_dict(ckpt["model"])  # the final model, not the best one
    model.eval()
    val_ids = split_ids(load_corpus(args.data), tokenizer, "val")
    evals = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    last = [e for e in evals if "val_loss" in e][-1]
    result = {"iterations": last["iter"], "val_loss_20_batches": last["val_loss"],
              "train_loss_20_batches": last["train_loss"],
              "val_loss_full_split": split_loss(model, val_ids, model.config.block_size)[0],
              "wall_s": wall}
    tl.manual_seed(1337)
    result["sample"] = generate_text(model, tokenizer, "\n", 500, temperature=0.8, seed=1337)
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
