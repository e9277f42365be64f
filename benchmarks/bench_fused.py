"""Fused kernels against their compositions of primitives, and against PyTorch eager.

Each op of ``tinygrad_lm.fused`` that a GPT step leans on (layer norm, softmax
cross-entropy, causal attention) is timed three ways in the same run, at the shapes of the
small GPT preset (batch 12, context 64, width 128, 4 heads, vocabulary 65):

- ``fused``: ``Op.apply`` (one graph node, a hand-derived backward on raw arrays);
- ``reference``: ``Op.reference``, the same computation composed of primitive Tensor ops
  (what the library would do without the fused kernel);
- ``torch``: the matching ``torch.nn.functional`` call.

Forward alone and forward+backward, medians of interleaved samples; the ratios say how much
fusing saves (reference / fused) and how far we are from PyTorch (fused / torch). Before
timing, the three are checked to compute the same output and gradients.

    python -m benchmarks.bench_fused [--device cpu cuda] [--json out.json] [--quick]
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

if __package__ in (None, ""):  # run as `python benchmarks/bench_fused.py`: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tinygrad_lm as tl  # noqa: E402  (before NumPy: see tinygrad_lm/parallel.py)
import numpy as np  # noqa: E402
from benchmarks import harness  # noqa: E402
from benchmarks.harness import Candidate, Settings  # noqa: E402
from tinygrad_lm import fused  # noqa: E402

BATCH, CONTEXT, WIDTH, HEADS, VOCAB = 12, 64, 128, 4, 65
EPS = 1e-5
MODES = ("fwd", "fwd+bwd")
KINDS = ("fused", "reference", "torch")


@dataclass(frozen=True)
class FusedSpec:
    """One fused op: its inputs (``float`` arrays get gradients, ``index`` arrays are class
    ids below ``VOCAB``) and the three ways to compute it from those inputs. ``threaded``
    ops run on BLAS thread pools and are timed with ``Settings.threaded``."""

    name: str
    shapes: tuple[tuple[int, ...], ...]
    kinds: tuple[str, ...]
    fused: Callable[..., tl.Tensor]
    reference: Callable[..., tl.Tensor]
    torch: Callable[..., Any]
    threaded: bool = False


def specs(torch: Any) -> list[FusedSpec]:
    """The benchmarked ops at GPT-like shapes. Cross-entropy is the mean over the batch, as
    in training; attention is causal with a precomputed mask (built once, as a model does)."""
    head = WIDTH // HEADS
    scale = 1.0 / math.sqrt(head)
    causal = np.triu(np.full((CONTEXT, CONTEXT), -np.inf, dtype=np.float32), k=1)
    masks: dict[str, Any] = {}

    def mask_on(q: tl.Tensor) -> Any:  # one copy per device, made outside the timed call
        if q.device not in masks:
            masks[q.device] = tl.Tensor(causal, device=q.device).data
        return masks[q.device]

    def tnf() -> Any:
        return torch.nn.functional

    rows = BATCH * CONTEXT
    return [
        FusedSpec("layer_norm", ((BATCH, CONTEXT, WIDTH), (WIDTH,), (WIDTH,)),
                  ("float", "float", "float"),
                  lambda x, w, b: fused.LayerNorm.apply(x, w, b, eps=EPS),
                  lambda x, w, b: fused.LayerNorm.reference(x, w, b, eps=EPS),
                  lambda x, w, b: tnf().layer_norm(x, (WIDTH,), w, b, EPS)),
        FusedSpec("cross_entropy", ((rows, VOCAB), (rows,)), ("float", "index"),
                  lambda z, t: fused.CrossEntropy.apply(z, t, ignore_index=-100).mean(),
                  lambda z, t: fused.CrossEntropy.reference(z, t, ignore_index=-100).mean(),
                  lambda z, t: tnf().cross_entropy(z, t)),
        FusedSpec("attention", ((BATCH, HEADS, CONTEXT, head),) * 3, ("float",) * 3,
                  lambda q, k, v: fused.Attention.apply(q, k, v, mask=mask_on(q), scale=scale,
                                                        keep=None),
                  lambda q, k, v: fused.Attention.reference(q, k, v, mask=mask_on(q),
                                                            scale=scale, keep=None),
                  lambda q, k, v: tnf().scaled_dot_product_attention(q, k, v, is_causal=True),
                  threaded=True),
    ]


def _arrays(spec: FusedSpec, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.standard_normal(shape, dtype=np.float32) if kind == "float"
            else rng.integers(0, VOCAB, shape, dtype=np.int64)
            for shape, kind in zip(spec.shapes, spec.kinds)]


def _run_tl(fn: Callable[..., tl.Tensor], args: list[tl.Tensor], dout: Any) -> tl.Tensor:
    for t in args:
        t.grad = None
    out = fn(*args)
    out.backward(dout)
    return out


def prepare(spec: FusedSpec, device: str, torch: Any,
            rng: np.random.Generator) -> tuple[dict[str, dict[str, Candidate]], float]:
    """Candidates per mode for ``spec`` on ``device``, and the largest difference between
    any two of them in the forward output or an input gradient (they must agree before
    their times mean anything)."""
    arrays = _arrays(spec, rng)
    args = [tl.Tensor(a, device=device, requires_grad=a.dtype.kind == "f") for a in arrays]
    out = spec.fused(*args)
    dout_np = rng.standard_normal(out.shape, dtype=np.float32) if out.ndim else None
    dout = None if dout_np is None else tl.Tensor(dout_np, device=device)
    sync = harness.tinygrad_sync(device)
    candidates: dict[str, dict[str, Candidate]] = {mode: {} for mode in MODES}
    results: dict[str, list[np.ndarray]] = {}
    for kind in ("fused", "reference"):
        fn = getattr(spec, kind)
        candidates["fwd"][kind] = Candidate(lambda fn=fn: fn(*args), sync)
        candidates["fwd+bwd"][kind] = Candidate(lambda fn=fn: _run_tl(fn, args, dout), sync)
        out = _run_tl(fn, args, dout)
        results[kind] = [out.numpy()] + [t.grad.numpy() for t in args if t.requires_grad]

    tdev = harness.torch_device(torch, device)
    if tdev is not None:
        targs = [torch.from_numpy(a.copy()).to(tdev).requires_grad_(a.dtype.kind == "f")
                 for a in arrays]
        tdout = None if dout_np is None else torch.from_numpy(dout_np).to(tdev)

        def torch_step() -> Any:
            for t in targs:
                t.grad = None
            result = spec.torch(*targs)
            result.backward(tdout)
            return result

        tsync = harness.torch_sync(torch, tdev)
        candidates["fwd"]["torch"] = Candidate(lambda: spec.torch(*targs), tsync)
        candidates["fwd+bwd"]["torch"] = Candidate(torch_step, tsync)
        tout = torch_step()
        results["torch"] = [tout.detach().cpu().numpy()] + \
            [t.grad.cpu().numpy() for t in targs if t.requires_grad]
    base = results["fused"]
    diff = max(float(np.max(np.abs(a - b))) for other in results.values()
               for a, b in zip(base, other))
    return candidates, diff


def run(device: str, torch: Any, settings: Settings, rng: np.random.Generator) -> list[dict]:
    """Time every spec on ``device``; one JSON row per op and mode."""
    rows = []
    for spec in specs(torch):
        candidates, diff = prepare(spec, device, torch, rng)
        for mode in MODES:
            timings = harness.time_interleaved(
                candidates[mode], settings.threaded() if spec.threaded else settings)
            fused_t, ref_t, torch_t = (timings.get(k) for k in KINDS)
            rows.append({
                "op": spec.name, "device": device, "mode": mode,
                "shapes": [list(s) for s in spec.shapes],
                **{k: None if t is None else t.to_dict() for k, t in zip(KINDS, (fused_t, ref_t,
                                                                                  torch_t))},
                "reference_over_fused": harness.ratio(ref_t, fused_t),
                "fused_over_torch": None if torch_t is None else harness.ratio(fused_t, torch_t),
                "max_abs_diff": diff,
            })
    return rows


def table(rows: Sequence[dict]) -> str:
    """The rows of one device as aligned text."""
    def cell(timing: dict | None) -> str:
        return "-" if timing is None else harness.fmt_time(timing["median_s"])

    return harness.format_table(
        ["op", "mode", "fused", "reference", "torch", "reference/fused", "fused/torch",
         "max diff"],
        [[r["op"], r["mode"], cell(r["fused"]), cell(r["reference"]), cell(r["torch"]),
          harness.fmt_ratio(r["reference_over_fused"]), harness.fmt_ratio(r["fused_over_torch"]),
          f"{r['max_abs_diff']:.1e}"] for r in rows])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_fused",
        description="Time tinygrad_lm's fused layer norm, cross-entropy and attention against "
                    "their compositions of primitives and against PyTorch eager, forward and "
                    "forward+backward, at GPT-like shapes.")
    harness.add_common_args(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print a table per device, write JSON if asked."""
    args = _parser().parse_args(argv)
    settings = harness.settings_from_args(args)
    devices, skipped = harness.devices_to_run(args.device)
    if not devices:
        return 2
    torch = harness.import_torch()
    env = harness.environment()
    print(f"{env['cpu']} ({env['cpu_count']} CPUs), numpy {env['numpy']} "
          f"({env['blas']['threads']} BLAS threads), torch "
          f"{env['torch']['version'] if 'torch' in env else 'not installed'}; shapes: batch "
          f"{BATCH}, context {CONTEXT}, width {WIDTH}, {HEADS} heads, vocabulary {VOCAB}")
    rng = np.random.default_rng(0)
    rows: list[dict] = []
    for device in devices:
        device_rows = run(device, torch, settings, rng)
        rows += device_rows
        print(f"\n{device} (median per call; reference/fused > 1: fusing pays)")
        print(table(device_rows))
    if args.json is not None:
        harness.write_json(args.json, {
            "benchmark": "fused",
            "settings": {**dataclasses.asdict(settings), "quick": args.quick,
                         "devices": devices},
            "shapes": {"batch": BATCH, "context": CONTEXT, "width": WIDTH, "heads": HEADS,
                       "vocab": VOCAB},
            "environment": env,
            "rows": rows,
            "skipped": [{"device": d, "reason": r} for d, r in skipped.items()],
        })
    return 0


if __name__ == "__main__":
    sys.exit(main())
