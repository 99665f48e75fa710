"""Quadrature rules for the densities the RLE loss implies: the graded axis of
:func:`rle.losses.residual_quantiles` and the halving panels of
:func:`heads.rle_mixin.residual_log_normaliser`, both resolving a peak far narrower than the
tails they are sized to."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["graded_axis", "halving_panels"]


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


def halving_panels(half: float, panels: int, per_panel: int):
    """Nodes and weights ``(2 * panels * per_panel,)`` on ``[-half, half]``: Gauss-Legendre
    panels whose widths halve towards 0 on each side. The split at 0 puts the Laplace Q term's
    kink on a panel edge, and the narrow inner panels resolve the peak of a density much
    narrower than ``half`` (which is sized to the flow's tails)."""
    x, w = np.polynomial.legendre.leggauss(per_panel)
    edges = np.concatenate([[0.0], half * 2.0 ** -np.arange(panels - 1, -1, -1, dtype=float)])
    lo, hi = edges[:-1, None], edges[1:, None]
    nodes = ((hi - lo) / 2 * x + (hi + lo) / 2).ravel()
    weights = ((hi - lo) / 2 * w).ravel()
    return np.concatenate([-nodes[::-1], nodes]), np.concatenate([weights[::-1], weights])
