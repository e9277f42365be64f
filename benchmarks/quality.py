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
from tinygrad_lm.data.batches import TokenDataset  # noqa: E402
from tinygrad_lm.sample import generate_text, load_model  # noqa: E402
from tinygrad_lm.train import CHECKPOINT  # noqa: E402


@tl.no_grad()
def full_split_loss(model: tl.nn.Module, ids, block: int, batch: int = 64) -> float:
    """Mean next-token loss over consecutive, non-overlapping windows of the whole split."""
    n = (len(ids) - 1) // block
    total, count = 0.0, 0
    for start in range(0, n, batch):
        rows = range(start, min(n, start + batch))
        x = [ids[r * block:(r + 1) * block] for r in rows]
        y = [ids[r * block + 1:(r + 1) * block + 1] for r in rows]
        _, loss = model(tl.Tensor(x, dtype="int64"), tl.Tensor(y, dtype="int64"))
        total += loss.item() * len(x)
        count += len(x)
    return total / count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="shakespeare")
    parser.add_argument("--out", default="runs/quality")
    parser.add_argument("--skip-train", action="store_true", help="evaluate an existing run")
    parser.add_argument("--seed", type=int, default=1337, help="the training run's seed")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    out = Path(args.out)
    wall = None
    if not args.skip_train:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tinygrad_lm", "train", "--preset", "cpu",
                        "--data", args.data, "--out", str(out), "--seed", str(args.seed), "--quiet",
                        "--sample-tokens", "0"],
                       check=True)
        wall = time.perf_counter() - started
    model, _ = load_model(out)
    ckpt = tl.load(out / CHECKPOINT)
    model.load_state_dict(ckpt["model"])  # the final model, not the best one
    model.eval()
    block = model.config.block_size
    dataset = TokenDataset.open(out / "data")
    evals = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    last = [e for e in evals if "val_loss" in e][-1]
    result = {"iterations": last["iter"], "val_loss_20_batches": last["val_loss"],
              "train_loss_20_batches": last["train_loss"],
              "val_loss_full_split": full_split_loss(model, dataset.val, block),
              "wall_s": wall}
    tl.manual_seed(1337)
    result["sample"] = generate_text(model, load_model(out)[1], "\n", 500, temperature=0.8, seed=1337)
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
