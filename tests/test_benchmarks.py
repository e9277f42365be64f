"""The benchmark harness and the ops benchmark: they run, and their JSON says what it should.

No timing is asserted (machines differ); what is checked is the structure of the results,
that both libraries computed the same thing, and the harness's bookkeeping.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import harness
from benchmarks.harness import Candidate, Settings, Timing

ROOT = Path(__file__).resolve().parent.parent
HAS_TORCH = importlib.util.find_spec("torch") is not None
PRIMITIVES = {"add", "mul", "div", "exp", "log", "tanh", "sigmoid", "relu", "gelu", "sum",
              "max", "softmax", "log_softmax", "matmul", "reshape+permute", "gather", "cat",
              "where"}
FUSED_ROWS = {"layer_norm", "cross_entropy", "attention"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = tmp_path_factory.mktemp("bench") / "ops.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_ops", "--quick", "--json", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "overhead" in result.stdout
    return json.loads(path.read_text())


def test_quick_run_records_the_environment(quick_run: dict) -> None:
    env = quick_run["environment"]
    assert env["cpu_count"] >= 1 and env["cpu"]
    assert env["numpy"] == np.__version__
    assert env["blas"]["threads"] >= 1
    assert ("torch" in env) == HAS_TORCH
    if HAS_TORCH:
        assert env["torch"]["threads"] == env["blas"]["threads"]
    assert quick_run["sgemm_gflops"]["cpu"]["numpy"] > 0


def test_quick_run_has_a_row_per_op_and_mode(quick_run: dict) -> None:
    rows = [r for r in quick_run["rows"] if r["device"] == "cpu"]
    ops = {r["op"] for r in rows}
    assert PRIMITIVES | {"overhead"} <= ops
    # a fused op is either measured or listed as skipped, with the reason
    skipped = {s.get("op") for s in quick_run["skipped"]}
    for name in FUSED_ROWS:
        assert name in ops or name in skipped
    assert not PRIMITIVES & skipped, quick_run["skipped"]
    for op in ops:
        assert {r["mode"] for r in rows if r["op"] == op} == {"fwd", "fwd+bwd"}
    for row in rows:
        t = row["tinygrad_lm"]
        assert 0 < t["min_s"] <= t["median_s"] <= t["max_s"]
        assert t["repeat"] >= 5 and t["number"] >= 1
        assert row["shapes"] and all(isinstance(n, int) for n in row["shapes"][0])


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_quick_run_compares_with_torch(quick_run: dict) -> None:
    for row in quick_run["rows"]:
        assert row["torch"]["median_s"] > 0
        assert row["ratio"] == pytest.approx(row["tinygrad_lm"]["median_s"]
                                             / row["torch"]["median_s"])
        # the timed work is the same work: both libraries agree on the forward result
        assert row["max_abs_diff"] is not None and row["max_abs_diff"] < 1e-4, row["op"]
    head = quick_run["headline"]["cpu"]
    assert head["goal_ratio"] == 1.5
    assert head["fwd+bwd"]["ratio"] > 0 and head["fwd"]["ratio"] > 0
    matmul = [r for r in quick_run["rows"] if r["op"] == "matmul"]
    assert all(r["gflops"]["tinygrad_lm"] > 0 and r["gflops"]["torch"] > 0 for r in matmul)


def test_gpt_step_benchmark_quick_run(tmp_path: Path) -> None:
    """`tinygrad-lm bench --quick`, run from outside the repository (so `benchmarks` must come
    from the installed package): a timed row per library with ratios, JSON and (with
    matplotlib) the chart."""
    path = tmp_path / "gpt.json"
    subprocess.run([sys.executable, "-m", "tinygrad_lm", "bench", "--quick", "--json", str(path)],
                   cwd=tmp_path, check=True, capture_output=True, text=True, timeout=600)
    result = json.loads(path.read_text())
    (row,) = result["rows"]
    assert row["config"] == "tiny" and row["flops_per_step"] > 0
    assert row["tinygrad_lm"]["step"]["median_s"] > 0 and row["tinygrad_lm"]["gflops"] > 0
    if "torch" in row:
        assert row["step_ratio"] > 0 and row["forward_ratio"] > 0
        pytest.importorskip("matplotlib")
        assert path.with_suffix(".png").stat().st_size > 0


def test_runs_as_a_script() -> None:
    result = subprocess.run([sys.executable, "benchmarks/bench_ops.py", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--device" in result.stdout and "--quick" in result.stdout


def test_unknown_op_is_refused() -> None:
    from benchmarks import bench_ops

    with pytest.raises(SystemExit, match="unknown op"):
        bench_ops.main(["--ops", "no_such_op"])


def test_interleaving_alternates_and_synchronizes() -> None:
    calls: list[str] = []
    syncs: list[str] = []

    def candidate(name: str) -> Candidate:
        return Candidate(lambda: calls.append(name), lambda: syncs.append(name))

    settings = Settings(warmup=1, repeat=4, target_s=0.0)  # one call per sample
    timings = harness.time_interleaved({"a": candidate("a"), "b": candidate("b")}, settings)
    # warm-up (1 each), calibration (3 each), then rounds a b | b a | a b | b a
    assert calls == list("ab") + list("aaabbb") + list("abbaabba")
    # each sample drains the device before starting the clock and before stopping it
    assert syncs.count("a") == syncs.count("b") == 1 + 2 * 3 + 2 * 4
    for timing in timings.values():
        assert timing.number == 1 and len(timing.samples) == 4


def test_threaded_turns_take_blocks_after_settling() -> None:
    calls: list[str] = []
    pair = {name: Candidate(lambda name=name: calls.append(name)) for name in "ab"}
    harness.time_interleaved(pair, Settings(warmup=0, repeat=5, target_s=0.0, block=2))
    # calibration (3 each), then turns of 2, 2 and the last 1 sample, order reversed each round
    assert calls == list("aaabbb") + list("aabb") + list("bbaa") + list("ab")
    calls.clear()
    harness.time_interleaved(pair, Settings(warmup=0, repeat=2, target_s=0.0, block=2,
                                            settle_s=0.002))
    assert calls.count("a") > 3 + 2 and calls.count("b") > 3 + 2  # untimed settling calls
    assert Settings(repeat=3).threaded().block == 3 and Settings().threaded().settle_s > 0


def test_calibration_batches_fast_calls() -> None:
    timing = harness.time_fn(lambda: None, settings=Settings(warmup=0, repeat=2, target_s=1e-3))
    assert timing.number > 1


def test_timing_summary_and_ratio() -> None:
    slow, fast = Timing([3.0, 1.0, 2.0], 1), Timing([0.5, 1.0, 2.0, 0.25], 4)
    assert (slow.median, slow.min, slow.max) == (2.0, 1.0, 3.0)
    assert harness.ratio(slow, fast) == pytest.approx(2.0 / 0.75)
    assert slow.to_dict() == {"median_s": 2.0, "min_s": 1.0, "max_s": 3.0, "repeat": 3,
                              "number": 1}


@pytest.mark.parametrize("seconds, text", [(2.0, "2s"), (0.0123, "12.3ms"), (1.5e-5, "15us"),
                                           (5e-9, "5ns")])
def test_fmt_time(seconds: float, text: str) -> None:
    assert harness.fmt_time(seconds) == text


def test_format_table_aligns_columns() -> None:
    text = harness.format_table(["op", "time"], [["mul", "1.5us"], ["softmax", "12us"]])
    lines = text.splitlines()
    assert lines[0] == "op        time"
    assert lines[2] == "mul      1.5us"
    assert lines[3] == "softmax   12us"


def test_write_json_is_strict(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "out.json"
    harness.write_json(path, {"x": np.float32(1.5), "n": np.int64(3)})
    assert json.loads(path.read_text()) == {"x": 1.5, "n": 3}
    with pytest.raises(ValueError):
        harness.write_json(path, {"x": math.nan})


def test_repeat_must_be_positive() -> None:
    parser = argparse.ArgumentParser()
    harness.add_common_args(parser)
    assert harness.settings_from_args(parser.parse_args(["--quick"])) == harness.QUICK
    assert harness.settings_from_args(parser.parse_args(["--repeat", "7"])).repeat == 7
    with pytest.raises(SystemExit):
        harness.settings_from_args(parser.parse_args(["--repeat", "0"]))


def test_unavailable_device_is_skipped_with_a_reason() -> None:
    usable, skipped = harness.usable_devices(["cpu", "tpu"])
    assert usable == ["cpu"]
    assert "unknown device" in skipped["tpu"]
