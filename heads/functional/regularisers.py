"""DSNT's heatmap regularisers and per-location losses (dsntnn semantics, per location).

Shape letters: B batch, K keypoints, D coordinate dims, H/W map size (Dz depth bins).
"""

from __future__ import annotations

from typing import Sequence

import torch

from heads.functional._maps import check_coords, check_positive, marginals, sizes_xyz, spatial_dims
from rle.coords import coordinate_grid

__all__ = ["euclidean_losses", "gaussian_heatmaps", "js_reg", "kl_reg", "variance_reg"]

_KL_EPS = 1e-24  # dsntnn's epsilon inside log and in the Gaussian normaliser


def gaussian_heatmaps(
    mu: torch.Tensor, sizes: Sequence[int], sigma: float, normalize: bool = True
) -> torch.Tensor:
    """Separable, sub-pixel Gaussians evaluated at bin centres (dsntnn's ``make_gauss``).

    Args:
        mu: ``(B, K, D)`` centres, normalised coordinates.
        sizes: map size in coordinate order ``(W[, H[, Dz]])``.
        sigma: standard deviation in bins (pixels of the map).
        normalize: divide by the sum over the map (plus 1e-24, as dsntnn).

    Returns:
        ``(B, K, [Dz,] [H,] W)`` maps.
    """
    check_positive("sigma", sigma)
    sizes = tuple(int(s) for s in sizes)
    if mu.dim() != 3 or mu.shape[-1] != len(sizes):
        raise ValueError(
            f"mu must have shape (B, K, D) with D == len(sizes) == {len(sizes)}, "
            f"got {tuple(mu.shape)}"
        )
    d = len(sizes)
    gauss = None
    for axis, n in enumerate(sizes):
        grid = coordinate_grid(n, dtype=mu.dtype, device=mu.device)
        # std sigma/n in normalised units (dsntnn: 2 sigma/n in its doubled frame)
        g = torch.exp(-0.5 * ((grid - mu[..., axis : axis + 1]) * (n / sigma)) ** 2)
        g = g.reshape(*mu.shape[:2], *([1] * (d - 1 - axis)), n, *([1] * axis))
        gauss = g if gauss is None else gauss * g
    if not normalize:
        return gauss
    return gauss / (gauss.flatten(-d).sum(-1).reshape(*mu.shape[:2], *([1] * d)) + _KL_EPS)


def _kl_map(p: torch.Tensor, q: torch.Tensor, d: int) -> torch.Tensor:
    return (p * ((p + _KL_EPS).log() - (q + _KL_EPS).log())).flatten(-d).sum(-1)


def _check_reg_inputs(heatmaps, mu_t, name="heatmaps") -> int:
    d = spatial_dims(heatmaps, name)
    check_coords(mu_t, heatmaps, d, "mu_t")
    return d


def kl_reg(heatmaps: torch.Tensor, mu_t: torch.Tensor, sigma_t: float = 1.0) -> torch.Tensor:
    """KL(heatmaps || Gaussian(mu_t, sigma_t)) per location, in nats, ``(B, K)``.

    Args:
        heatmaps: ``(B, K, *spatial)`` probability maps.
        mu_t: ``(B, K, D)`` target centres, normalised coordinates.
        sigma_t: target standard deviation in bins.
    """
    d = _check_reg_inputs(heatmaps, mu_t)
    q = gaussian_heatmaps(mu_t, sizes_xyz(heatmaps, d), sigma_t)
    return _kl_map(heatmaps, q, d)


def js_reg(heatmaps: torch.Tensor, mu_t: torch.Tensor, sigma_t: float = 1.0) -> torch.Tensor:
    """Jensen-Shannon divergence to Gaussian(mu_t, sigma_t) per location, in nats, ``(B, K)``.

    Same arguments as :func:`kl_reg`. dsntnn's ``js_reg_losses`` (whose ``mu_t`` is in its
    doubled frame) gives the same numbers.
    """
    d = _check_reg_inputs(heatmaps, mu_t)
    q = gaussian_heatmaps(mu_t, sizes_xyz(heatmaps, d), sigma_t)
    m = 0.5 * (heatmaps + q)
    return 0.5 * _kl_map(heatmaps, m, d) + 0.5 * _kl_map(q, m, d)


def variance_reg(heatmaps: torch.Tensor, sigma_t: float = 1.0) -> torch.Tensor:
    """``sum_axes (Var_px - sigma_t^2)^2`` per location, ``(B, K)`` (dsntnn semantics: the
    variance of each marginal in bins, squared error to the target variance).
    """
    d = spatial_dims(heatmaps, "heatmaps")
    check_positive("sigma_t", sigma_t)
    total = None
    for m in marginals(heatmaps, d):
        n = m.shape[-1]
        grid = coordinate_grid(n, dtype=m.dtype, device=m.device)
        mean = torch.matmul(m, grid).unsqueeze(-1)
        var_px = (m * (grid - mean) ** 2).sum(-1) * (n * n)
        err = (var_px - sigma_t**2) ** 2
        total = err if total is None else total + err
    return total


def euclidean_losses(coords: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Euclidean distance per location, ``(B, K, D) x (B, K, D) -> (B, K)``."""
    if coords.shape != target.shape:
        raise ValueError(
            f"target must have the shape of coords {tuple(coords.shape)}, got {tuple(target.shape)}"
        )
    return torch.linalg.vector_norm(coords - target, dim=-1)
