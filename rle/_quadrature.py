"""Quadrature grids for the densities the RLE loss implies (:mod:`rle.losses`)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["graded_axis"]


def graded_axis(half: float, spacing: float, size: int):
    """``size`` (odd) nodes on ``[-half, half]``, symmetric with a node at 0, and their
    trapezoid weights: ``x = c * sinh(t)`` for evenly spaced ``t``, so the spacing is about
    ``spacing`` near 0 and grows geometrically outwards (relative spacing ``~ 2 asinh(half /
    c) / size`` in the tails), ``c`` chosen so that the innermost step equals ``spacing``."""
    size = size + 1 - size % 2
    spacing = min(max(spacing, half * 1e-9), 2 * half / (size - 1))
    # solve c * sinh(2 asinh(half / c) / (size - 1)) = spacing for c by bisection on log c
    lo, hi = math.log(spacing) - 1, math.log(half) + 30
    for _ in range(200):
        c = math.exp((lo + hi) / 2)
        step = c * math.sinh(2 * math.asinh(half / c) / (size - 1))
        lo, hi = (math.log(c), hi) if step < spacing else (lo, math.log(c))
    t = np.linspace(-1.0, 1.0, size) * math.asinh(half / c)
    axis = c * np.sinh(t)
    axis[size // 2] = 0.0
    gaps = np.diff(axis)
    weights = np.concatenate([[gaps[0] / 2], (gaps[1:] + gaps[:-1]) / 2, [gaps[-1] / 2]])
    return axis, weights
