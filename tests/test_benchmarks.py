"""The benchmark harness and the ops benchmark: they run, and their JSON says what it should.

No timing is asserted (machines differ); what is checked is the structure of the results,
that both libraries computed the same thing, and the harness's bookkeeping.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
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
    assert "tinygrad_lm_reference" not in row and result["contention"]["processes"] == 0
    if "torch" in row:
        assert row["tinygrad_lm"]["step_ratio"] > 0 and row["tinygrad_lm"]["forward_ratio"] > 0
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


# ---------------------------------------------------------------- worker processes, taking turns

LIBRARIES = ["tinygrad_lm", "tinygrad_lm_reference"] + (["torch"] if HAS_TORCH else [])


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """bench_gpt --quick with both kernel settings and one busy process."""
    path = tmp_path_factory.mktemp("bench") / "gpt.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_gpt", "--quick", "--kernels", "fast",
         "reference", "--contention", "1", "--json", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    data = json.loads(path.read_text())
    data["stdout"] = result.stdout
    return data


def test_each_library_runs_in_its_own_worker_process(gpt_run: dict) -> None:
    env = gpt_run["environment"]
    hellos = env["workers"]["cpu"]
    assert list(hellos) == LIBRARIES
    pids = [hello["pid"] for hello in hellos.values()]
    assert len(set(pids + [env["pid"]])) == len(pids) + 1  # distinct, none the parent
    for name, hello in hellos.items():
        imports = hello["imports"]
        library = hello["library"]
        # NumPy first, as users import it, then the worker's one library and never the other
        assert imports[0] == "numpy" and library in imports, (name, imports)
        assert ({"tinygrad_lm", "torch"} - {library}).isdisjoint(imports), (name, imports)
    assert hellos["tinygrad_lm"]["kernels"] == "fast"
    assert hellos["tinygrad_lm_reference"]["kernels"] == "reference"
    if HAS_TORCH:  # a fair race: PyTorch gets the threads tinygrad_lm runs on
        assert hellos["torch"]["threads"] == hellos["tinygrad_lm"]["threads"] >= 1


def test_gpt_run_records_the_cpu_beside_the_figures(gpt_run: dict) -> None:
    env = gpt_run["environment"]
    assert env["cpu"] and env["cpu_vendor"] and env["cpu_count"] >= 1
    assert f"CPU {env['cpu']} ({env['cpu_vendor']})" in gpt_run["stdout"].splitlines()[0]
    assert env["workers"]["cpu"]["tinygrad_lm"]["numpy"] == np.__version__
    for row in gpt_run["rows"]:  # the peak is measured again before each config
        gemm = row["sgemm_gflops"]
        assert gemm["numpy"] > 0 and ("torch" in gemm) == HAS_TORCH


def test_gpt_run_times_every_worker_and_ends_the_busy_processes(gpt_run: dict) -> None:
    (row,) = gpt_run["rows"]
    for lib in LIBRARIES:
        r = row[lib]
        for what in ("step", "forward"):
            assert 0 < r[what]["min_s"] <= r[what]["median_s"] <= r[what]["max_s"]
            assert r[what]["repeat"] == 5
        assert r["tokens_per_s"] > 0 and r["gflops"] > 0 and r["parameters"] > 0
        if HAS_TORCH and lib != "torch":
            assert r["step_ratio"] == pytest.approx(r["step"]["median_s"]
                                                    / row["torch"]["step"]["median_s"])
    assert {row[lib]["parameters"] for lib in LIBRARIES} == {row["tinygrad_lm"]["parameters"]}
    floors = {lib for lib in LIBRARIES if "matmuls" in row[lib]}  # the first worker and torch's
    assert floors == {"tinygrad_lm"} | ({"torch"} if HAS_TORCH else set())
    assert all(row[lib]["matmuls"]["median_s"] > 0 for lib in floors)
    assert "tiny cpu: the step's matmuls alone take" in gpt_run["stdout"]
    contention = gpt_run["contention"]
    assert contention["processes"] == 1 and len(contention["pids"]) == 1
    for pid in contention["pids"]:
        assert not Path(f"/proc/{pid}").exists(), "a busy process outlived the benchmark"


@pytest.fixture(scope="module")
def fused_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from benchmarks import bench_fused

    path = tmp_path_factory.mktemp("bench") / "fused.json"
    assert bench_fused.main(["--quick", "--repeat", "1", "--json", str(path)]) == 0
    return json.loads(path.read_text())


def test_fused_run_has_every_op_for_every_kernel_setting(fused_run: dict) -> None:
    from benchmarks import shapes

    rows = fused_run["rows"]
    assert [(r["op"], r["config"]) for r in rows] == [(op, "tiny") for op in shapes.FUSED_OPS]
    assert list(fused_run["environment"]["workers"]["cpu"]) == LIBRARIES
    for row in rows:
        for lib in LIBRARIES:
            assert row[lib]["median_s"] > 0 and row[lib]["repeat"] == 1
        assert row["reference_over_fast"] == pytest.approx(
            row["tinygrad_lm_reference"]["median_s"] / row["tinygrad_lm"]["median_s"])
        assert (row["fast_over_torch"] is None) == (not HAS_TORCH)
        if row["op"] in shapes.MODEL_OPS:  # no output to compare: the parameter count instead
            assert row["check_difference"] is None and row["parameters"] > 0
        else:  # the same inputs gave the same output and gradients in every worker
            assert row["check_difference"] < 1e-4, row["op"]
            assert row["shapes"] and all(isinstance(n, int) for n in row["shapes"][0])


def test_fused_goal_applies_at_baby_and_small_only() -> None:
    from benchmarks import bench_fused

    def row(config: str, ratio: float | None) -> dict:
        return {"config": config, "fast_over_torch": ratio}

    assert bench_fused.goal(row("tiny", 3.0)) == "-"
    assert bench_fused.goal(row("baby", 1.5)) == "met"
    assert bench_fused.goal(row("small", 1.51)) == "missed"
    assert bench_fused.goal(row("small", None)) == "-"


class _FakeWorker:
    """Answers like a worker, recording the order of the turns it is asked for."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def ask(self, cmd: str, **fields: object) -> dict:
        if cmd == "setup":
            return {"number": 3, "check": [1.0, 2.0], "info": {}}
        self.log.append(self.name)
        return {"samples": [0.5] * int(fields["samples"])}


def test_alternate_takes_turns_reversed_every_round() -> None:
    from benchmarks import workers

    log: list[str] = []
    pool = {name: _FakeWorker(name, log) for name in "abc"}
    timings, setups = workers.alternate(pool, "op", {}, Settings(repeat=7))
    assert log == list("abc") + list("cba") + list("abc")  # 3 rounds: turns of 3, 3 and 1
    assert all(len(t.samples) == 7 and t.number == 3 for t in timings.values())
    assert workers.check_difference(setups) == 0.0


def test_check_difference_is_relative() -> None:
    from benchmarks import workers

    setups = {"a": {"check": [100.0, 1.0]}, "b": {"check": [100.1, 1.0]}, "c": {"check": None}}
    assert workers.check_difference(setups) == pytest.approx(0.1 / 100.1)
    assert workers.check_difference({"a": {"check": None}}) is None


def test_a_failing_request_names_the_worker() -> None:
    from benchmarks import workers

    with workers.Workers(tl=workers.Worker("tl", workers.WorkerSpec("tinygrad_lm"))) as pool:
        assert pool["tl"].hello["pid"] != os.getpid()
        with pytest.raises(workers.WorkerError, match="the tl worker failed"):
            pool["tl"].ask("setup", task="no_such_task", args={}, warmup=0, target_s=0.0,
                           max_number=1)
        assert pool["tl"].ask("memory")["peak_bytes"] > 0  # it still answers
    with pytest.raises(workers.WorkerError, match="unknown device"):
        workers.Worker("tl", workers.WorkerSpec("tinygrad_lm", device="tpu"))


def test_busy_processes_run_until_the_block_ends() -> None:
    from benchmarks.contention import busy_processes

    with busy_processes(2) as pids:
        assert len(pids) == 2 and all(Path(f"/proc/{pid}").exists() for pid in pids)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    with busy_processes(1, limit_s=0.0) as (pid,):  # bounded in time even if never killed
        deadline = time.monotonic() + 30
        while _state(pid) != "Z" and time.monotonic() < deadline:  # Z: ended, not yet reaped
            time.sleep(0.01)
        assert _state(pid) == "Z"


def _state(pid: int) -> str:
    """A process's state letter from /proc (R running, S sleeping, Z ended)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_shapes_match_the_model_and_the_trainer() -> None:
    from benchmarks import shapes
    from tinygrad_lm.models import GPT, GPTConfig
    from tinygrad_lm.models.gpt import training_flops_per_token
    from tinygrad_lm.train import TrainConfig

    t = TrainConfig()
    assert shapes.ADAMW == {"lr": t.lr, "beta1": t.beta1, "beta2": t.beta2,
                            "weight_decay": t.weight_decay}
    c = shapes.CONFIGS["tiny"]
    model = GPT(GPTConfig(**shapes.model_kwargs("tiny")))
    matmul = sum(int(p.shape[0] * p.shape[1]) for k, p in model.named_parameters()
                 if len(p.shape) == 2 and "wpe" not in k)
    attention = 12 * c["n_layer"] * c["block_size"] * c["n_embd"]
    assert shapes.flops_per_step("tiny") == shapes.tokens("tiny") * (6 * matmul + attention)
    for name in shapes.CONFIGS:  # the count written out for the torch worker is the model's
        assert shapes.flops_per_step(name) == shapes.tokens(name) * \
            training_flops_per_token(GPTConfig(**shapes.model_kwargs(name)))
    for name in shapes.CONFIGS:  # the floor's matmuls do the counted FLOPs, no more
        assert sum(2 * math.prod(a) * b[-1] for a, b in shapes.step_matmuls(name)) == \
            shapes.flops_per_step(name)
    B, T, C = c["batch_size"], c["block_size"], c["n_embd"]
    assert shapes.op_shapes("gelu", "tiny") == [[B * T, 4 * C]]
    assert shapes.op_shapes("attention", "tiny") == [[B, c["n_head"], T, C // c["n_head"]]] * 3
    arrays, dout = shapes.op_inputs("cross_entropy", "tiny")
    assert dout is None and arrays[1].max() < shapes.VOCAB


def test_peak_memory_comes_from_a_fresh_worker() -> None:
    from benchmarks import bench_gpt, workers

    spec = workers.WorkerSpec("tinygrad_lm")
    assert 10 * 2**20 < bench_gpt.peak_memory("tinygrad_lm", spec, "tiny") < 2**32


def test_recipe_sweep_fits_the_budget_and_shares_calibrations(tmp_path: Path, capsys) -> None:
    from benchmarks import recipe_sweep as sweep

    n = sweep.iterations_within(100.0, step_s=0.05, fixed_s=3.0)
    per_eval = 15 * 0.05
    used = 3.0 - 2 * per_eval + n * 0.05 + (math.ceil(n / sweep.EVAL_INTERVAL) + 1) * per_eval
    assert used <= 100.0 < used + 0.05 + per_eval  # the most that fits
    assert sweep.shape_of({"lr": 3e-3, "preset": "llama"}) == \
        sweep.shape_of({"lr": 2e-3, "min_lr": 2e-4, "preset": "llama"})
    assert sweep.shape_of({"preset": "llama"}) != sweep.shape_of({"preset": "llama",
                                                                   "batch_size": 8})
    assert sweep.as_flags({"n_embd": 192, "lr": 0.003}) == ["--n-embd", "192", "--lr", "0.003"]
    rows = [{"name": "b", "flags": {"lr": 0.003}, "step_ms": 40.0, "iters": 9, "val_loss": 1.7},
            {"name": "nanogpt-recipe", "flags": {}, "step_ms": 30.0, "iters": 12,
             "val_loss": 1.9}]
    results = tmp_path / "sweep.json"
    results.write_text(json.dumps({"budget_s": 95.0, "rows": rows}))
    assert sweep.main(["--results", str(results), "--plot", str(tmp_path / "s.svg")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[2].startswith("b ") and table[3].startswith("nanogpt-recipe")  # best first
    svg = (tmp_path / "s.svg").read_text()
    assert "after 95 s of training" in svg and "1.700" in svg and "1.900" in svg
