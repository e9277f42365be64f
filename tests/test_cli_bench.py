"""`tinygrad-lm bench` says what it cannot measure and never shows a share above the peak
without saying why (issue #14, item 6)."""
from __future__ import annotations

from benchmarks import bench_gpt, harness


def test_no_usable_device_is_an_error_not_an_empty_table(capsys):
    assert bench_gpt.main(["--device", "tpu", "--quick"]) == 2
    captured = capsys.readouterr()
    assert "skipping device tpu" in captured.err and "nothing was measured" in captured.err
    assert captured.out == ""


def test_missing_pytorch_is_said(monkeypatch, capsys):
    monkeypatch.setattr(harness, "torch_installed", lambda: False)
    assert harness.devices_to_run(["cpu"]) == (["cpu"], {})
    assert "PyTorch is not installed" in capsys.readouterr().err


def test_the_share_is_of_the_fastest_sgemm_and_flagged_above_it():
    gemm = {"n": 2048, "numpy": 200.0, "torch": 250.0}
    assert bench_gpt.sgemm_peak(gemm) == (250.0, "torch")
    step = {"median_s": 1.0, "min_s": 1.0, "max_s": 1.0}
    row = {"config": "small", "device": "cpu", "sgemm_gflops": gemm,
           "tinygrad_lm": {"step": step, "forward": step, "tokens_per_s": 1.0, "gflops": 225.0,
                           "step_ratio": 1.0},
           "torch": {"step": step, "forward": step, "tokens_per_s": 1.0, "gflops": 300.0}}
    table = bench_gpt.report([row])
    assert " 90% " in table and "120%!" in table
    assert "more than the sgemm peak measured before this config" in table
