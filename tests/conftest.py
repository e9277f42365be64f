"""Shared test setup: hypothesis profiles, the ``device`` fixture and a fixed seed.

Select a profile with ``HYPOTHESIS_PROFILE=dev`` (many examples, for local bug hunting);
the default ``ci`` profile is derandomized so every run checks the same examples.

``TINYGRAD_LM_DEVICE=cuda`` points the whole suite at a GPU: tensors made without
``device=`` land there (the library's default device), and the ``cuda`` half of the
``device`` fixture fails instead of skipping when CuPy or the GPU is missing.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

import tinygrad_lm as tl
from tinygrad_lm import backend

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=20, print_blob=True,
    # the autouse seed fixture is function-scoped but stateless between examples
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture])
settings.register_profile(
    "dev", max_examples=200, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# the GPU asked for by the environment (e.g. "cuda:1"), else the first one
_ENV_DEVICE = os.environ.get("TINYGRAD_LM_DEVICE", "cpu")
CUDA = _ENV_DEVICE if _ENV_DEVICE.startswith("cuda") else "cuda"


def _cuda_missing() -> str | None:
    """Why ``CUDA`` cannot be used here, or None when it can."""
    try:
        backend.get_device(CUDA)
    except Exception as exc:  # no CuPy, no driver or no GPU: each is a reason to skip
        return str(exc)
    return None


@pytest.fixture(params=["cpu", "cuda"])
def device(request: pytest.FixtureRequest) -> str:
    """Each test that takes ``device`` runs on cpu and, when a GPU with CuPy exists, on cuda."""
    if request.param == "cpu":
        return "cpu"
    reason = _cuda_missing()
    if reason is not None:
        if CUDA == _ENV_DEVICE:
            pytest.fail(f"TINYGRAD_LM_DEVICE={_ENV_DEVICE}, which is unavailable: {reason}")
        pytest.skip(f"cuda unavailable: {reason}")
    return backend.get_device(CUDA).name  # "cuda:0", as Tensor.device spells it


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Every test starts from the same random state, so failures reproduce."""
    tl.manual_seed(0)
