"""Shared fixtures: golden reference numbers (tests/data) and helpers."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import pytest
import torch

from rle.flow import RealNVP

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


def golden_flows(golden: dict, dtype: torch.dtype) -> Tuple[RealNVP, RealNVP]:
    """The 2-D and 3-D reference flows of ``rle_reference.pt``, loaded and cast to ``dtype``."""
    f2 = RealNVP(2).to(dtype)
    f2.load_reference_state_dict(golden["flow2d_state_dict"])
    f3 = RealNVP(3).to(dtype)
    f3.load_reference_state_dict(golden["flow3d_state_dict"])
    return f2, f3


def average_loss(losses: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """dsntnn's ``average_loss``: the mean of per-location losses ``(B, K)`` over ``mask``, the
    denominator clamped at 1 (how the golden dsntnn objectives were reduced)."""
    if mask is None:
        return losses.sum() / max(losses.numel(), 1)
    if mask.shape != losses.shape:
        raise ValueError(f"mask must have shape {tuple(losses.shape)}, got {tuple(mask.shape)}")
    return (losses * mask).sum() / mask.sum().clamp(min=1)


class SpikyFlow(torch.nn.Module):
    """A stand-in 2-D flow whose density is a spike in wide tails, the shape a flow trained
    with its variance pinned grows: ``w N(0, s^2 I) + (1 - w) N(0, I)`` (isotropic). Offers what
    the density tools use: ``features``, ``log_prob`` and ``inverse`` (noise -> data)."""

    features = 2

    def __init__(self, weight: float = 0.97, scale: float = 0.002):
        super().__init__()
        self.weight, self.scale = weight, scale
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # the tools read the device off it

    def log_prob(self, u: torch.Tensor) -> torch.Tensor:
        r2 = (u.double() ** 2).sum(1)
        s2 = self.scale**2
        narrow = math.log(self.weight) - math.log(2 * math.pi * s2) - r2 / (2 * s2)
        wide = math.log(1 - self.weight) - math.log(2 * math.pi) - r2 / 2
        return torch.logaddexp(narrow, wide).to(u.dtype)

    def inverse(self, z: torch.Tensor):
        gen = torch.Generator().manual_seed(1)
        narrow = torch.rand(z.shape[0], generator=gen) < self.weight
        return torch.where(narrow[:, None], z * self.scale, z), torch.zeros(z.shape[0])
