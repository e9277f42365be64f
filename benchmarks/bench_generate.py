"""Generation speed with and without the key/value cache (tokens per second), per context policy.

The model is the ``small`` config (6 layers, 6 heads, 384 wide, block 256, vocab 65) with
random weights and learned positions (``--pos-emb rope``: rotary), greedy decoding, batch 1,
from a one-token prompt. Two lengths: 255 new
tokens (the text stays inside the 256-token window, where both context policies do the same
thing, so one row) and 500 (past the window; one row per policy). With ``slide`` the window
moves by one token per step and the cache is refilled from the whole window at each step;
with ``halve`` the context is cut to its last 128 tokens when it overflows and the cache is
refilled only then, once per 129 steps. Either way cached and uncached output must be identical.

    python -m benchmarks.bench_generate [--new 255 500] [--json PATH]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tinygrad_lm as tl  # noqa: E402
from benchmarks import harness  # noqa: E402
from tinygrad_lm.models import GPT, GPTConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--new", type=int, nargs="+", default=[255, 500])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--pos-emb", choices=["learned", "rope"], default="learned")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    tl.manual_seed(0)
    model = GPT(GPTConfig(block_size=256, vocab_size=65, n_layer=6, n_head=6, n_embd=384,
                          pos_emb=args.pos_emb))
    model.to(args.device).eval()
    prompt = tl.Tensor([[0]], device=args.device)
    sync = harness.tinygrad_sync(args.device)
    rows, results = [], []
    for new in args.new:
        fits = prompt.shape[1] + new <= model.config.block_size  # the policies never act
        for context in ["slide"] if fits else ["slide", "halve"]:
            speeds, outputs = {}, {}
            for use_cache in (True, False):
                sync()
                start = time.perf_counter()
                outputs[use_cache] = model.generate(prompt, new, temperature=0.0,
                                                    use_cache=use_cache, context=context)
                sync()
                speeds[use_cache] = new / (time.perf_counter() - start)
            same = bool((outputs[True].numpy() == outputs[False].numpy()).all())
            policy = "either" if fits else context
            results.append({"new_tokens": new, "pos_emb": args.pos_emb, "context": policy,
                            "cached_tok_s": speeds[True],
                            "uncached_tok_s": speeds[False],
                            "speedup": speeds[True] / speeds[False], "identical": same})
            rows.append([new, policy, f"{speeds[True]:.1f}", f"{speeds[False]:.1f}",
                         f"{speeds[True] / speeds[False]:.1f}x", "yes" if same else "NO"])
    print(f"positions: {args.pos_emb}")
    print(harness.format_table(["new tokens", "policy", "cached tok/s", "uncached tok/s",
                                "speed-up", "identical"], rows))
    if args.json:
        harness.write_json(args.json, {"benchmark": "generate", "environment": harness.environment(),
                                       "rows": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
