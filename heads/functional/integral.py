"""Integral decoders: softmax, expectation (DSNT), soft-argmax (IPR), its debiased form, the
heatmap confidence, and the map read as a predictive density (its spread and its likelihood).

Expectations are computed marginal-first (sum the probabilities to one 1-D marginal per axis, then
dot with the 1-D grid): no full-size coordinate grid is ever built.

Shape letters: B batch, K keypoints, D coordinate dims, H/W map size (Dz depth bins).
"""

from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import torch
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from heads.functional._maps import (
    bin_grid,
    check_coords,
    check_positive,
    exporting,
    finite_logits,
    limit_marginals,
    limit_peak,
    marginals,
    sizes_xyz,
    spatial_dims,
)
from rle.coords import from_frame, to_frame

__all__ = [
    "DEBIASED_VARIANTS",
    "debiased_soft_argmax",
    "dsnt",
    "heatmap_confidence",
    "heatmap_expectation",
    "heatmap_log_likelihood",
    "heatmap_variance",
    "soft_argmax",
    "spatial_softmax",
]

#: the formulas :func:`debiased_soft_argmax` implements
DEBIASED_VARIANTS = ("stable", "mmpose")


def spatial_softmax(logits: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Softmax over all spatial bins of each map: ``heatmaps = softmax(beta * logits)``.

    Args:
        logits: ``(B, K, W)``, ``(B, K, H, W)`` or ``(B, K, Dz, H, W)`` unnormalised maps.
        beta: inverse temperature (IPR's beta).

    Returns:
        heatmaps of the same shape, each map summing to 1. A map with ``+inf`` logits puts its
        mass on those bins, split equally; an all ``-inf`` map is uniform (both finite, with
        finite gradients; softmax alone gives NaN). NaN logits give NaN.
    """
    d = spatial_dims(logits, "logits")
    check_positive("beta", beta)
    flat = logits.flatten(-d)
    if beta != 1.0:
        flat = flat * beta
    return F.softmax(finite_logits(flat), dim=-1).view_as(logits)


def _expect(marginal: torch.Tensor) -> torch.Tensor:
    return torch.matmul(marginal, bin_grid(marginal.shape[-1], marginal.dtype, marginal.device))


def heatmap_expectation(heatmaps: torch.Tensor) -> torch.Tensor:
    """Expected location of normalised heatmaps (DSNT), marginal-first.

    Args:
        heatmaps: ``(B, K, W)``, ``(B, K, H, W)`` or ``(B, K, Dz, H, W)`` probability maps
            (each summing to 1; not checked). A map with ``+inf`` entries (an overflowed
            unnormalised map) is read as uniform over them.

    Returns:
        coords ``(B, K, D)`` in normalised coordinates, order ``(x, y[, z])``.
    """
    d = spatial_dims(heatmaps, "heatmaps")
    return torch.stack([_expect(m) for m in limit_marginals(heatmaps, d)], dim=-1)


def heatmap_variance(heatmaps: torch.Tensor) -> torch.Tensor:
    """Per-axis variance of normalised heatmaps: the second central moment of each marginal.

    The spread of the map as a distribution of the location, on the bin-centre grid of
    :func:`rle.coords.coordinate_grid` (bin ``j`` of ``n`` at ``(j + 0.5)/n - 0.5``, width
    ``1/n``). A constant shift of the grid (``grid="mmpose"`` of the heads) leaves it unchanged.
    A one-hot map gives exactly 0; a map uniform over ``n`` bins gives the discrete uniform
    variance ``(n^2 - 1) / 12`` bins^2, i.e. ``(n^2 - 1) / (12 n^2)`` normalised^2. Computed
    two-pass (``sum_j p_j (g_j - mean)^2``): never negative, no cancellation.

    Args:
        heatmaps: ``(B, K, W)``, ``(B, K, H, W)`` or ``(B, K, Dz, H, W)`` probability maps
            (each summing to 1; not checked). A map with ``+inf`` entries is read as uniform
            over them, as :func:`heatmap_expectation` does.

    Returns:
        ``(B, K, D)`` variance in normalised units squared, order ``(x, y[, z])``; its square
        root is the per-axis standard deviation.
    """
    d = spatial_dims(heatmaps, "heatmaps")
    out = []
    for m in limit_marginals(heatmaps, d):
        grid = bin_grid(m.shape[-1], m.dtype, m.device)
        mean = torch.matmul(m, grid).unsqueeze(-1)
        out.append((m * (grid - mean) ** 2).sum(-1))
    return torch.stack(out, dim=-1)


def heatmap_log_likelihood(
    heatmaps: torch.Tensor,
    target: torch.Tensor,
    *,
    offset: Optional[torch.Tensor] = None,
    min_prob: float = 1e-12,
) -> torch.Tensor:
    """Log density of ``target`` under a heatmap read as a piecewise-constant density.

    The map puts probability ``p_j`` uniformly on bin ``j``, a box of widths ``1/n`` per axis
    in normalised units (:mod:`rle.coords`), so the density at a point of bin ``j`` is
    ``p_j * prod_d n_d`` per unit of normalised volume. The bins are half-open,
    ``[j/n - 0.5, (j + 1)/n - 0.5)``, with the last one closed at ``+0.5``.

    A target outside the map (or NaN) has density 0 and a bin of probability 0 would give
    ``-inf``: the probability is floored at ``min_prob`` (so the density at
    ``min_prob * prod_d n_d``), which keeps means over keypoints finite. The floor is the
    lowest value this returns, ``log(min_prob) + sum_d log n_d`` (-27.6 + log of the bin
    count at the default).

    Args:
        heatmaps: ``(B, K, W)``, ``(B, K, H, W)`` or ``(B, K, Dz, H, W)`` probability maps
            (each summing to 1; not checked).
        target: ``(B, K, D)`` normalised coordinates, order ``(x, y[, z])``.
        offset: ``(D,)`` position of the map's grid relative to the bin-centre grid, in
            normalised units (a head's ``grid_offset``: bin ``j`` then covers the box above
            plus ``offset``), or ``None`` for 0.
        min_prob: floor on the bin probability, ``0 < min_prob <= 1``.

    Returns:
        ``(B, K)`` log density, nats per unit of normalised volume, in ``heatmaps``' dtype.
    """
    d = spatial_dims(heatmaps, "heatmaps")
    check_coords(target, heatmaps, d, "target")
    if not (isinstance(min_prob, (int, float)) and 0 < min_prob <= 1):
        raise ValueError(f"min_prob must be a number in (0, 1], got {min_prob!r}")
    target = target.to(heatmaps.dtype)
    if offset is not None:
        if not isinstance(offset, torch.Tensor) or offset.shape not in ((d,), (1, 1, d)):
            raise ValueError(f"offset must be a tensor of shape (D,) = ({d},) or None")
        target = target - offset.to(target)
    sizes = sizes_xyz(heatmaps, d)
    flat_index = torch.zeros(target.shape[:-1], dtype=torch.long, device=target.device)
    inside = torch.ones(target.shape[:-1], dtype=torch.bool, device=target.device)
    stride = 1
    for axis, n in enumerate(sizes):  # x is the fastest-varying index of the flattened map
        pos = (target[..., axis] + 0.5) * n  # in bins from the map's low edge
        ok = (pos >= 0) & (pos <= n)
        inside &= ok
        # clamp before the cast: the index of a NaN or far-away target is never used
        index = torch.where(ok, pos, 0).floor().clamp(0, n - 1).long()
        flat_index += index * stride
        stride *= n
    prob = heatmaps.flatten(-d).gather(-1, flat_index.unsqueeze(-1)).squeeze(-1)
    prob = torch.where(inside, prob, 0).clamp_min(min_prob)
    return prob.log() + sum(math.log(n) for n in sizes)


def dsnt(heatmaps: torch.Tensor) -> torch.Tensor:
    """DSNT (Nibali et al. 2018): :func:`heatmap_expectation` under dsntnn's name.

    ``dsntnn.dsnt(h) == 2 * dsnt(h)`` (dsntnn's frame is ``(2j+1)/n - 1``).
    """
    return heatmap_expectation(heatmaps)


class _SoftArgmax(torch.autograd.Function):
    """Softmax + marginal-first expectation with a fused backward.

    ``dJ_a / dh_i = beta p_i (g_a(i) - J_a)``, so the gradient is ``p`` times an outer sum of
    one small vector per axis: two passes over the map instead of autograd's expand-add and
    softmax backward. Only ``p`` is saved, as autograd would.
    """

    @staticmethod
    def _expectation(p, d):
        grids, coords = [], []
        for m in marginals(p, d):
            grid = bin_grid(m.shape[-1], m.dtype, m.device)
            grids.append(grid)
            coords.append(torch.matmul(m, grid))
        return grids, torch.stack(coords, dim=-1)

    @staticmethod
    def forward(ctx, logits, beta, d):
        # optimistic: the plain softmax, and the +-inf guard of spatial_softmax only when a
        # coordinate came out NaN (an infinite or NaN logit): finite maps, the every-step case,
        # skip its pass over the logits; the result is the same either way, bit for bit
        flat = logits.flatten(-d)
        p = F.softmax(flat * beta if beta != 1.0 else flat, dim=-1).view_as(logits)
        grids, coords = _SoftArgmax._expectation(p, d)
        if bool(torch.isnan(coords).any()):
            p = spatial_softmax(logits, beta)
            grids, coords = _SoftArgmax._expectation(p, d)
        ctx.save_for_backward(p, coords)
        ctx.grids = grids
        ctx.beta = beta
        ctx.d = d
        return coords

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        p, coords = ctx.saved_tensors
        d = ctx.d
        out = None
        for axis, grid in enumerate(ctx.grids):
            # (B, K, n): beta * dL/dJ_a * (g_a - J_a), broadcast along the other axes
            g = grad[..., axis : axis + 1]
            a = (grid - coords[..., axis : axis + 1]) * (g if ctx.beta == 1.0 else g * ctx.beta)
            shape = [1] * d
            shape[d - 1 - axis] = grid.shape[0]
            a = a.reshape(*a.shape[:-1], *shape)
            if out is None:
                out = p * a
            else:
                out.addcmul_(p, a)
        return out, None, None


def soft_argmax(logits: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Soft-argmax / integral regression (IPR): expectation of ``softmax(beta * logits)``.

    Marginal-first with a fused backward (first-order differentiable; use
    ``heatmap_expectation(spatial_softmax(logits, beta))`` for higher-order gradients).

    Args:
        logits: ``(B, K, W)``, ``(B, K, H, W)`` or ``(B, K, Dz, H, W)``.
        beta: inverse temperature.

    Returns:
        coords ``(B, K, D)``, normalised, order ``(x, y[, z])``.
    """
    d = spatial_dims(logits, "logits")
    check_positive("beta", beta)
    if exporting():
        # the graph of the guarded path, without the NaN check (data-dependent control flow)
        # or the custom backward: the value _SoftArgmax returns on every input
        return _SoftArgmax._expectation(spatial_softmax(logits, beta), d)[1]
    return _SoftArgmax.apply(logits, float(beta), d)


def heatmap_confidence(heatmaps: torch.Tensor) -> torch.Tensor:
    """Keypoint confidence of a heatmap head: the peak probability of each map, ``(B, K)``.

    (MMPose's integral heads report 1 for every keypoint, which carries no information.) A map
    with ``+inf`` entries is read as uniform over them, as :func:`heatmap_expectation` does.
    """
    return limit_peak(heatmaps, spatial_dims(heatmaps, "heatmaps"))


def debiased_soft_argmax(
    logits: torch.Tensor,
    beta: float = 1.0,
    *,
    heatmaps: Optional[torch.Tensor] = None,
    variant: str = "stable",
    max_ratio: float = 0.99,
    return_ratio: bool = False,
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Soft-argmax with the background bias removed (Gu, Yang, Yao, ICCV 2021).

    Softmax gives every background bin (logit 0) mass ``exp(0) = 1``, pulling the expectation
    toward the map centre ``c``. With ``C = sum_i exp(beta h_i)`` over the N bins and
    ``r = N / C``: ``J_hat = (1 - r) J + r c``, so ``J = (J_hat - r c) / (1 - r)``. In the
    normalised convention the grid-matched centre is exactly ``c = 0``.

    ``r`` is computed as ``exp(log N - logsumexp(beta h))`` (no overflow at large logits). A map
    with ``+inf`` logits has ``C = inf`` and ``r = 0`` (no correction of the limit map of
    :func:`spatial_softmax`); an all ``-inf`` map (uniform, ``C = 0``) gets the guarded ``r``,
    and its coordinates stay 0. Gradients stay finite (``variant="stable"``). The
    correction is singular at ``r = 1`` and meaningless for ``r > 1`` (negative background
    logits): ``r`` is clamped at ``max_ratio`` so the amplification ``1 / (1 - r)`` stays bounded
    and gradients stay finite. It is only meaningful when the network is trained through it.

    Args:
        logits: ``(B, K, *spatial)`` unnormalised maps.
        beta: inverse temperature, used for both the softmax and ``C``.
        heatmaps: ``softmax(beta * logits)`` if already computed (a head reuses its own).
        variant: ``"stable"`` (above) or ``"mmpose"``: MMPose's formula verbatim, for comparison
            (``C`` from the raw logits ignoring beta, sum instead of mean, centre 1/2 in its
            ``j/n`` frame; numerically a no-op and NaN at logits ~100 in fp32).
        max_ratio: guard on ``r`` (0 < max_ratio < 1).
        return_ratio: also return ``r`` ``(B, K, 1)``.

    Returns:
        coords ``(B, K, D)`` normalised (and ``r`` if asked).
    """
    d = spatial_dims(logits, "logits")
    check_positive("beta", beta)
    if not 0 < max_ratio < 1:
        raise ValueError(f"max_ratio must be in (0, 1), got {max_ratio}")
    if variant not in DEBIASED_VARIANTS:
        raise ValueError(f"variant must be one of {DEBIASED_VARIANTS}, got {variant!r}")
    if heatmaps is None:
        heatmaps = spatial_softmax(logits, beta)
    elif heatmaps.shape != logits.shape:
        raise ValueError(
            f"heatmaps must have the shape of logits {tuple(logits.shape)}, "
            f"got {tuple(heatmaps.shape)}"
        )
    coords = heatmap_expectation(heatmaps)
    flat = logits.flatten(-d)
    if variant == "mmpose":
        big_c = flat.exp().sum(-1, keepdim=True)
        ratio = 1.0 / big_c
        sizes = sizes_xyz(logits, d)
        # MMPose's formula lives in its j/n frame, whose centre is 1/2
        j_over_n = to_frame(coords, sizes, "mmpose")
        debiased = big_c / (big_c - 1) * (j_over_n - 1 / (2 * big_c))
        coords = from_frame(debiased, sizes, "mmpose")
    else:
        log_n = math.log(flat.shape[-1])
        # logsumexp of a +inf or all -inf map is +-inf with a NaN gradient; of the clamped map
        # it is +-3e38: r = 0 (no correction), or r large and guarded below
        log_ratio = log_n - torch.logsumexp(finite_logits(flat * beta), dim=-1, keepdim=True)
        # clamp in log space: exp of an unclamped log_ratio can overflow to inf, and the
        # clamp's zero gradient times inf would be NaN
        guarded = torch.exp(log_ratio.clamp(max=math.log(max_ratio)))
        coords = coords / (1.0 - guarded)
        ratio = torch.exp(log_ratio)
    return (coords, ratio) if return_ratio else coords
