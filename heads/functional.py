"""Heatmap decoders and regularisers for 1-D, 2-D and 3-D maps (pure functions).

The rank of the input decides the number of coordinate dims D: ``(B, K, W)`` -> 1-D,
``(B, K, H, W)`` -> 2-D, ``(B, K, Dz, H, W)`` -> 3-D. Every decoder returns coordinates in the
project's normalised convention (:mod:`rle.coords`): ``(..., D)`` in ``[-0.5, 0.5]`` of the map,
bin ``j`` at ``(j + 0.5)/n - 0.5``, order ``(x, y[, z])``. Convert to a reference frame with
:func:`rle.coords.to_frame`.

Expectations are computed marginal-first (sum the probabilities to one 1-D marginal per axis, then
dot with the 1-D grid): no full-size coordinate grid is ever built.

Shape letters: B batch, K keypoints, D coordinate dims, H/W map size (Dz depth bins), S samples.
"""

from __future__ import annotations

import functools
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch.autograd.function import once_differentiable
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from rle.coords import coordinate_grid

__all__ = [
    "average_loss",
    "debiased_soft_argmax",
    "dsnt",
    "euclidean_losses",
    "gaussian_heatmaps",
    "heatmap_confidence",
    "heatmap_expectation",
    "js_reg",
    "kl_reg",
    "sampling_argmax",
    "sampling_argmax_tau",
    "soft_argmax",
    "spatial_softmax",
    "variance_reg",
    "BASES",
]

BASES = ("uniform", "triangular", "gaussian")
_BASIS_ALIASES = {"uni": "uniform", "tri": "triangular", "gauss": "gaussian"}
_KL_EPS = 1e-24  # dsntnn's epsilon inside log and in the Gaussian normaliser


# ------------------------------------------------------------------------------------------------
# validation helpers
# ------------------------------------------------------------------------------------------------
def _spatial_dims(maps: torch.Tensor, name: str, extra: int = 0) -> int:
    """Number of coordinate dims of ``maps`` shaped ``(B, K, [S,]*spatial)``."""
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(maps).__name__}")
    if not maps.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {maps.dtype}")
    d = maps.dim() - 2 - extra
    if d not in (1, 2, 3):
        lead = "(B, K, S, " if extra else "(B, K, "
        raise ValueError(
            f"{name} must have shape {lead}W), {lead}H, W) or {lead}Dz, H, W), "
            f"got {tuple(maps.shape)}"
        )
    return d


def _check_coords(coords: torch.Tensor, maps: torch.Tensor, d: int, name: str) -> None:
    if not isinstance(coords, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(coords).__name__}")
    if coords.shape != (*maps.shape[:2], d):
        raise ValueError(
            f"{name} must have shape (B, K, D) = {(*maps.shape[:2], d)}, got {tuple(coords.shape)}"
        )


def _check_positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _sizes_xyz(maps: torch.Tensor, d: int) -> Tuple[int, ...]:
    """Map sizes in coordinate order ``(W, H, Dz)``."""
    return tuple(maps.shape[-1 - i] for i in range(d))


# ------------------------------------------------------------------------------------------------
# soft-argmax / DSNT
# ------------------------------------------------------------------------------------------------
def spatial_softmax(logits: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Softmax over all spatial bins of each map: ``heatmaps = softmax(beta * logits)``.

    Args:
        logits: ``(B, K, W)``, ``(B, K, H, W)`` or ``(B, K, Dz, H, W)`` unnormalised maps.
        beta: inverse temperature (IPR's beta).

    Returns:
        heatmaps of the same shape, each map summing to 1.
    """
    d = _spatial_dims(logits, "logits")
    _check_positive("beta", beta)
    flat = logits.flatten(-d)
    if beta != 1.0:
        flat = flat * beta
    return F.softmax(flat, dim=-1).view_as(logits)


def _marginals(heatmaps: torch.Tensor, d: int) -> List[torch.Tensor]:
    """1-D marginals of the last ``d`` dims, in coordinate order (x first)."""
    if d == 1:
        return [heatmaps]
    if d == 2:
        return [heatmaps.sum(-2), heatmaps.sum(-1)]
    plane = heatmaps.sum(-3)  # (.., H, W): shared by x and y
    return [plane.sum(-2), plane.sum(-1), heatmaps.sum((-2, -1))]


@functools.lru_cache(maxsize=64)
def _grid(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # cached: decoders run every step on the same few sizes (never modified in place)
    return coordinate_grid(n, dtype=dtype, device=device)


def _expect(marginal: torch.Tensor) -> torch.Tensor:
    return torch.matmul(marginal, _grid(marginal.shape[-1], marginal.dtype, marginal.device))


def heatmap_expectation(heatmaps: torch.Tensor) -> torch.Tensor:
    """Expected location of normalised heatmaps (DSNT), marginal-first.

    Args:
        heatmaps: ``(B, K, W)``, ``(B, K, H, W)`` or ``(B, K, Dz, H, W)`` probability maps
            (each summing to 1; not checked).

    Returns:
        coords ``(B, K, D)`` in normalised coordinates, order ``(x, y[, z])``.
    """
    d = _spatial_dims(heatmaps, "heatmaps")
    return torch.stack([_expect(m) for m in _marginals(heatmaps, d)], dim=-1)


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
    def forward(ctx, logits, beta, d):
        p = spatial_softmax(logits, beta)
        grids = []
        coords = []
        for m in _marginals(p, d):
            grid = _grid(m.shape[-1], m.dtype, m.device)
            grids.append(grid)
            coords.append(torch.matmul(m, grid))
        coords = torch.stack(coords, dim=-1)
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
    d = _spatial_dims(logits, "logits")
    _check_positive("beta", beta)
    return _SoftArgmax.apply(logits, float(beta), d)


def heatmap_confidence(heatmaps: torch.Tensor) -> torch.Tensor:
    """Keypoint confidence of a heatmap head: the peak probability of each map, ``(B, K)``.

    (MMPose's integral heads report 1 for every keypoint, which carries no information.)
    """
    d = _spatial_dims(heatmaps, "heatmaps")
    return heatmaps.flatten(-d).amax(dim=-1)


# ------------------------------------------------------------------------------------------------
# DSNT regularisers (dsntnn semantics, per location)
# ------------------------------------------------------------------------------------------------
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
    _check_positive("sigma", sigma)
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
    d = _spatial_dims(heatmaps, name)
    _check_coords(mu_t, heatmaps, d, "mu_t")
    return d


def kl_reg(heatmaps: torch.Tensor, mu_t: torch.Tensor, sigma_t: float = 1.0) -> torch.Tensor:
    """KL(heatmaps || Gaussian(mu_t, sigma_t)) per location, in nats, ``(B, K)``.

    Args:
        heatmaps: ``(B, K, *spatial)`` probability maps.
        mu_t: ``(B, K, D)`` target centres, normalised coordinates.
        sigma_t: target standard deviation in bins.
    """
    d = _check_reg_inputs(heatmaps, mu_t)
    q = gaussian_heatmaps(mu_t, _sizes_xyz(heatmaps, d), sigma_t)
    return _kl_map(heatmaps, q, d)


def js_reg(heatmaps: torch.Tensor, mu_t: torch.Tensor, sigma_t: float = 1.0) -> torch.Tensor:
    """Jensen-Shannon divergence to Gaussian(mu_t, sigma_t) per location, in nats, ``(B, K)``.

    Same arguments as :func:`kl_reg`. dsntnn's ``js_reg_losses`` (whose ``mu_t`` is in its
    doubled frame) gives the same numbers.
    """
    d = _check_reg_inputs(heatmaps, mu_t)
    q = gaussian_heatmaps(mu_t, _sizes_xyz(heatmaps, d), sigma_t)
    m = 0.5 * (heatmaps + q)
    return 0.5 * _kl_map(heatmaps, m, d) + 0.5 * _kl_map(q, m, d)


def variance_reg(heatmaps: torch.Tensor, sigma_t: float = 1.0) -> torch.Tensor:
    """``sum_axes (Var_px - sigma_t^2)^2`` per location, ``(B, K)`` (dsntnn semantics: the
    variance of each marginal in bins, squared error to the target variance).
    """
    d = _spatial_dims(heatmaps, "heatmaps")
    _check_positive("sigma_t", sigma_t)
    total = None
    for m in _marginals(heatmaps, d):
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


def average_loss(losses: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean of per-location losses ``(B, K)`` over the ``mask`` (dsntnn's ``average_loss``:
    the denominator is clamped at 1)."""
    if mask is None:
        return losses.sum() / max(losses.numel(), 1)
    if mask.shape != losses.shape:
        raise ValueError(f"mask must have shape {tuple(losses.shape)}, got {tuple(mask.shape)}")
    return (losses * mask).sum() / mask.sum().clamp(min=1)


# ------------------------------------------------------------------------------------------------
# debiased soft-argmax (Gu, Yang, Yao, ICCV 2021)
# ------------------------------------------------------------------------------------------------
def debiased_soft_argmax(
    logits: torch.Tensor,
    beta: float = 1.0,
    *,
    max_ratio: float = 0.99,
    form: str = "stable",
    return_ratio: bool = False,
    heatmaps: Optional[torch.Tensor] = None,
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Soft-argmax with the background bias removed.

    Softmax gives every background bin (logit 0) mass ``exp(0) = 1``, pulling the expectation
    toward the map centre ``c``. With ``C = sum_i exp(beta h_i)`` over the N bins and
    ``r = N / C``: ``J_hat = (1 - r) J + r c``, so ``J = (J_hat - r c) / (1 - r)``. In the
    normalised convention the grid-matched centre is exactly ``c = 0``.

    ``r`` is computed as ``exp(log N - logsumexp(beta h))`` (no overflow at large logits). The
    correction is singular at ``r = 1`` and meaningless for ``r > 1`` (negative background
    logits): ``r`` is clamped at ``max_ratio`` so the amplification ``1 / (1 - r)`` stays bounded
    and gradients stay finite. It is only meaningful when the network is trained through it.

    Args:
        logits: ``(B, K, *spatial)`` unnormalised maps.
        beta: inverse temperature, used for both the softmax and ``C``.
        max_ratio: guard on ``r`` (0 < max_ratio < 1).
        form: ``"stable"`` (above) or ``"mmpose"``: MMPose's formula verbatim for comparison
            (``C`` from the raw logits ignoring beta, sum instead of mean, centre 1/2 in its
            ``j/n`` frame; numerically a no-op and NaN at logits ~100 in fp32).
        return_ratio: also return ``r`` ``(B, K, 1)``.
        heatmaps: ``softmax(beta * logits)`` if already computed (a head reuses its own).

    Returns:
        coords ``(B, K, D)`` normalised (and ``r`` if asked).
    """
    d = _spatial_dims(logits, "logits")
    _check_positive("beta", beta)
    if not 0 < max_ratio < 1:
        raise ValueError(f"max_ratio must be in (0, 1), got {max_ratio}")
    if form not in ("stable", "mmpose"):
        raise ValueError(f"form must be 'stable' or 'mmpose', got {form!r}")
    if heatmaps is None:
        heatmaps = spatial_softmax(logits, beta)
    elif heatmaps.shape != logits.shape:
        raise ValueError(
            f"heatmaps must have the shape of logits {tuple(logits.shape)}, "
            f"got {tuple(heatmaps.shape)}"
        )
    coords = heatmap_expectation(heatmaps)
    flat = logits.flatten(-d)
    if form == "mmpose":
        big_c = flat.exp().sum(-1, keepdim=True)
        ratio = 1.0 / big_c
        sizes = torch.tensor(_sizes_xyz(logits, d), dtype=coords.dtype, device=coords.device)
        j_over_n = coords + 0.5 - 0.5 / sizes  # MMPose's j/n frame
        debiased = big_c / (big_c - 1) * (j_over_n - 1 / (2 * big_c))
        coords = debiased - 0.5 + 0.5 / sizes
    else:
        log_n = math.log(flat.shape[-1])
        log_ratio = log_n - torch.logsumexp(flat * beta, dim=-1, keepdim=True)
        # clamp in log space: exp of an unclamped log_ratio can overflow to inf, and the
        # clamp's zero gradient times inf would be NaN
        guarded = torch.exp(log_ratio.clamp(max=math.log(max_ratio)))
        coords = coords / (1.0 - guarded)
        ratio = torch.exp(log_ratio)
    return (coords, ratio) if return_ratio else coords


# ------------------------------------------------------------------------------------------------
# sampling-argmax (Li et al., NeurIPS 2021)
# ------------------------------------------------------------------------------------------------
class _ClipIntegral(torch.autograd.Function):
    """``sum(weights * positions)`` whose gradient to ``weights`` is ``amplitude * sign(w - J)``
    instead of ``w`` (the official sampling-argmax 2-D model's sign-clipped integral)."""

    @staticmethod
    def forward(ctx, weights, positions, amplitude):
        out = (weights * positions).sum(-1)
        ctx.save_for_backward(weights, positions, out)
        ctx.amplitude = amplitude
        return out

    @staticmethod
    def backward(ctx, grad_out):
        weights, positions, out = ctx.saved_tensors
        sign = torch.where(positions < out.unsqueeze(-1), -1.0, 1.0).to(grad_out.dtype)
        grad = grad_out.unsqueeze(-1)
        grad_w = grad * sign * ctx.amplitude
        grad_p = grad * weights if ctx.needs_input_grad[1] else None
        return grad_w, grad_p, None


def _integral(weights, positions, clip: bool, amplitude: float = 2.0):
    if clip:
        return _ClipIntegral.apply(weights, positions.expand_as(weights), amplitude)
    return (weights * positions).sum(-1)


def _triangular_inverse_cdf(u: torch.Tensor) -> torch.Tensor:
    # triangular density on [-1, 1] peaking at 0, by its inverse CDF
    return torch.where(u < 0.5, torch.sqrt(2 * u) - 1, 1 - torch.sqrt(2 - 2 * u))


def _interp_zero_padded(marginal: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of ``marginal`` (bins 0..n-1, zero outside) at ``positions`` in
    index units, positions in ``[-1, n]``."""
    n = marginal.shape[-1]
    padded = F.pad(marginal, (1, 1))
    left = positions.floor()
    frac = positions - left
    idx = (left + 1).long().clamp(0, n + 1)
    idx_r = (left + 2).long().clamp(0, n + 1)
    lv = padded.gather(-1, idx)
    rv = padded.gather(-1, idx_r)
    return lv + (rv - lv) * frac


def _normalise_basis(basis: str) -> str:
    basis = _BASIS_ALIASES.get(basis, basis)
    if basis not in BASES:
        raise ValueError(f"basis must be one of {BASES} (or uni/tri), got {basis!r}")
    return basis


def _draw(shape, like: torch.Tensor, generator, normal: bool = False) -> torch.Tensor:
    if normal:
        return torch.randn(shape, generator=generator, dtype=like.dtype, device=like.device)
    return torch.rand(shape, generator=generator, dtype=like.dtype, device=like.device)


def _sample_coords(
    flat_logits: torch.Tensor,
    spatial: Tuple[int, ...],
    gumbel_u: torch.Tensor,
    jitter: List[torch.Tensor],
    tau: float,
    basis: str,
    form: str,
    clip: bool,
    reweight: bool,
    inplace: bool = False,
) -> torch.Tensor:
    """Sampled coordinates ``(B, K, S, D)`` (normalised) from given noise.

    ``inplace=True`` lets the (freshly drawn) ``gumbel_u`` buffer become the Gumbel noise and
    then the perturbed logits: one ``(B, K, S, N)`` buffer instead of four.
    """
    logits = flat_logits.unsqueeze(2)
    if inplace:
        gumbel = gumbel_u.log_().neg_().log_().neg_()
        if form == "official":
            z = gumbel.div_(tau).add_(logits)
        else:
            z = gumbel.add_(logits).div_(tau)
    else:
        gumbel = -torch.log(-torch.log(gumbel_u))
        z = logits + gumbel / tau if form == "official" else (logits + gumbel) / tau
    samples = F.softmax(z, dim=-1)
    del z, gumbel
    samples = samples.view(*samples.shape[:3], *spatial)
    d = len(spatial)
    coords = []
    for axis, marginal in enumerate(_marginals(samples, d)):
        n = marginal.shape[-1]
        base = torch.arange(n, dtype=marginal.dtype, device=marginal.device)
        noise = jitter[axis]
        if basis == "uniform":
            positions = base + (noise - 0.5)
            weights = marginal
        elif basis == "triangular":
            positions = base + _triangular_inverse_cdf(noise)
            weights = _interp_zero_padded(marginal, positions)
            weights = weights / weights.sum(-1, keepdim=True)
        else:
            positions = base + noise
            weights = marginal
            if reweight:
                weights = weights * torch.exp(-2 * noise**2)
                weights = weights / weights.sum(-1, keepdim=True)
        index = _integral(weights, positions, clip)
        coords.append((index + 0.5) / n - 0.5)
    return torch.stack(coords, dim=-1)


def sampling_argmax(
    logits: torch.Tensor,
    tau: float = 1.0,
    num_samples: int = 30,
    basis: str = "triangular",
    *,
    training: bool = True,
    form: str = "official",
    noise: Optional[Dict[str, torch.Tensor]] = None,
    generator: Optional[torch.Generator] = None,
    clip_integral: bool = False,
    gaussian_reweight: Optional[bool] = None,
    chunk_size: Optional[int] = None,
) -> torch.Tensor:
    """Sampling-argmax: differentiable samples of the keypoint location.

    Training draws ``S`` Gumbel-softmax samples of the map, takes each sample's per-axis
    marginals and jitters every bin position ``w = j + eps`` by the continuous basis:
    ``uniform`` (``eps ~ U(-1/2, 1/2)``), ``triangular`` (``eps`` on ``[-1, 1]`` by inverse CDF,
    weights re-evaluated by linear interpolation of the marginal at ``w`` and renormalised) or
    ``gaussian`` (``eps ~ N(0, 1)``, weights times ``exp(-2 eps^2)`` renormalised). The
    coordinate is ``sum(weights * w)``. At test time it is exactly :func:`soft_argmax`.

    Args:
        logits: ``(B, K, *spatial)`` unnormalised maps (1-D, 2-D or 3-D).
        tau: Gumbel-softmax temperature (see :func:`sampling_argmax_tau`).
        num_samples: S.
        basis: ``"uniform"``, ``"triangular"`` or ``"gaussian"`` (``uni``/``tri`` accepted).
        training: ``False`` returns the soft-argmax ``(B, K, D)``.
        form: ``"official"`` computes ``softmax(h + g / tau)`` as the official code (a Concrete
            distribution with logits ``tau * h``); ``"textbook"`` ``softmax((h + g) / tau)``.
        noise: injected randomness (exact tests): ``gumbel_u`` ``(B, K, S, N)`` U(0,1) with
            N the number of bins, and per axis ``u_x``/``u_y``/``u_z`` (U(0,1), uniform and
            triangular bases) or ``z_x``/``z_y``/``z_z`` (N(0,1), gaussian basis), each
            ``(B, K, S, n_axis)``.
        generator: ``torch.Generator`` used when ``noise`` is None.
        clip_integral: use the official sign-clipped integral gradient (amplitude 2).
        gaussian_reweight: re-weight the marginal by ``exp(-2 eps^2)`` for the gaussian basis;
            ``None`` follows the references (2-D model: yes, 3-D model: no).
        chunk_size: process samples in chunks of this many with activation checkpointing,
            bounding memory to one chunk's ``(B, K, chunk, N)`` maps (generated noise only).

    Returns:
        training: samples ``(B, K, S, D)``; otherwise coords ``(B, K, D)``; normalised.
    """
    d = _spatial_dims(logits, "logits")
    basis = _normalise_basis(basis)
    _check_positive("tau", tau)
    if form not in ("official", "textbook"):
        raise ValueError(f"form must be 'official' or 'textbook', got {form!r}")
    if not training:
        if not clip_integral:
            return soft_argmax(logits)
        heatmaps = spatial_softmax(logits)
        out = []
        for m in _marginals(heatmaps, d):
            n = m.shape[-1]
            base = torch.arange(n, dtype=m.dtype, device=m.device)
            out.append((_integral(m, base, True) + 0.5) / n - 0.5)
        return torch.stack(out, -1)
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    reweight = (d < 3) if gaussian_reweight is None else gaussian_reweight
    spatial = tuple(logits.shape[2:])
    sizes = _sizes_xyz(logits, d)
    b, k = logits.shape[:2]
    flat = logits.flatten(-d)
    axes = "xyz"[:d]
    prefix = "z_" if basis == "gaussian" else "u_"

    if noise is not None:
        gumbel_u = noise.get("gumbel_u")
        expected = (b, k, num_samples, flat.shape[-1])
        if gumbel_u is None or tuple(gumbel_u.shape) != expected:
            got = None if gumbel_u is None else tuple(gumbel_u.shape)
            raise ValueError(
                f"noise['gumbel_u'] must have shape (B, K, S, N) = {expected}, got {got}"
            )
        jitter = []
        for axis, n in zip(axes, sizes):
            t = noise.get(prefix + axis)
            if t is None or tuple(t.shape) != (b, k, num_samples, n):
                got = None if t is None else tuple(t.shape)
                raise ValueError(
                    f"noise[{prefix + axis!r}] must have shape (B, K, S, {n}), got {got}"
                )
            jitter.append(t.to(flat.dtype))
        return _sample_coords(
            flat,
            spatial,
            gumbel_u.to(flat.dtype),
            jitter,
            tau,
            basis,
            form,
            clip_integral,
            reweight,
        )

    def draw(count: int, gen: Optional[torch.Generator]):
        gumbel_u = _draw((b, k, count, flat.shape[-1]), flat, gen)
        # keep u strictly inside (0, 1): log(-log(u)) is infinite at either end
        tiny = torch.finfo(flat.dtype).tiny
        gumbel_u.clamp_(tiny, 1 - torch.finfo(flat.dtype).eps)
        jitter = [_draw((b, k, count, n), flat, gen, basis == "gaussian") for n in sizes]
        return gumbel_u, jitter

    if chunk_size is None or chunk_size >= num_samples:
        gumbel_u, jitter = draw(num_samples, generator)
        return _sample_coords(
            flat, spatial, gumbel_u, jitter, tau, basis, form, clip_integral, reweight, True
        )

    chunks = []
    for start in range(0, num_samples, chunk_size):
        count = min(chunk_size, num_samples - start)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())

        def run(flat_logits, seed=seed, count=count):
            # regenerated identically when checkpointing recomputes the forward pass
            g = torch.Generator(device=flat_logits.device).manual_seed(seed)
            u, jit = draw(count, g)
            return _sample_coords(
                flat_logits, spatial, u, jit, tau, basis, form, clip_integral, reweight, True
            )

        chunks.append(checkpoint(run, flat, use_reentrant=False))
    return torch.cat(chunks, dim=2)


def sampling_argmax_tau(epoch: float, num_dims: int = 2) -> float:
    """The reference temperature schedules: 2-D ``max(0.5, 2 - 3 epoch / 50)`` (2 -> 0.5 over 25
    epochs); 3-D ``max(0.5, 5 - epoch / 50)``."""
    if num_dims == 3:
        return max(0.5, 5.0 - epoch / 50.0)
    return max(0.5, 2.0 - epoch * 3.0 / 50.0)
