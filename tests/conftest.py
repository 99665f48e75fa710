"""Shared fixtures: golden reference numbers (tests/data) and helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared"


def decimal64(t: torch.Tensor) -> torch.Tensor:
    """float32 constants -> the float64 decimals they were written as (0.3, not 0.30000001...).

    The golden float64 expectations were computed from the decimal constants."""
    flat = t.detach().cpu().numpy().astype(np.float32).ravel()
    return torch.tensor([float(str(v)) for v in flat], dtype=torch.float64).reshape(t.shape)


@pytest.fixture(scope="session")
def rle_golden():
    return torch.load(DATA / "rle_reference.pt", weights_only=True)


@pytest.fixture(scope="session")
def dec_golden():
    return torch.load(DATA / "decoders_reference.pt", weights_only=True)


def assert_close(actual, expected, rtol, atol):
    torch.testing.assert_close(actual, expected.to(actual.dtype), rtol=rtol, atol=atol)


TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-10)}
