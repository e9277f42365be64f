"""Benchmarks: tinygrad_lm timed against PyTorch (and the raw BLAS) in the same run."""
