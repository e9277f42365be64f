"""Shared test setup: hypothesis profiles, the ``device`` fixture and a fixed seed.

Select a profile with ``HYPOTHESIS_PROFILE=dev`` (many examples, for local bug hunting);
the default ``ci`` profile is derandomized so every run checks the same examples.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

import tinygrad_lm as tl
from tinygrad_lm import backend

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=15, print_blob=True,
    # the autouse seed fixture is function-scoped but stateless between examples
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture])
settings.register_profile(
    "dev", max_examples=200, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _cuda_missing() -> str | None:
    """Why ``"cuda"`` cannot be used here, or None when it can."""
    try:
        backend.get_device("cuda")
    except Exception as exc:  # no CuPy, no driver or no GPU: each is a reason to skip
        return str(exc)
    return None


@pytest.fixture(params=["cpu", "cuda"])
def device(request: pytest.FixtureRequest) -> str:
    """Each test that takes ``device`` runs on cpu and, when a GPU with CuPy exists, on cuda."""
    if request.param == "cuda":
        reason = _cuda_missing()
        if reason is not None:
            pytest.skip(f"cuda unavailable: {reason}")
    return request.param


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Every test starts from the same random state, so failures reproduce."""
    tl.manual_seed(0)
