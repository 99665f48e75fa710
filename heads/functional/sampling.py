"""Sampling-argmax (Li et al., NeurIPS 2021): differentiable samples of the keypoint location,
with fixed or learned basis widths, and the predictive mixture the basis defines.

Widths are in bins (index units) along every axis: the half-width of the uniform and triangular
bases (support ``[-w, w]``), the standard deviation of the gaussian one. The fixed bases are
:data:`FIXED_WIDTHS`. Variances and densities are returned in normalised units (:mod:`rle.coords`).

Shape letters: B batch, K keypoints, D coordinate dims, H/W map size (Dz depth bins), S samples,
N bins of a map.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple, Union

import torch
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from heads.functional._maps import (
    check_coords,
    check_positive,
    limit_logits,
    marginals,
    sizes_xyz,
    spatial_dims,
)
from heads.functional.integral import heatmap_variance, soft_argmax, spatial_softmax
from rle.coords import index_to_norm, norm_to_index

__all__ = [
    "BASES",
    "FIXED_WIDTHS",
    "SAMPLING_VARIANTS",
    "basis_variance",
    "mixture_log_likelihood",
    "mixture_variance",
    "sampling_argmax",
    "sampling_argmax_tau",
]

#: the continuous bases of the bin jitter
BASES = ("uniform", "triangular", "gaussian")
#: the width (bins) of each fixed basis: uniform ``U(-1/2, 1/2)``, triangular on ``[-1, 1]``,
#: gaussian ``N(0, 1)``
FIXED_WIDTHS = {"uniform": 0.5, "triangular": 1.0, "gaussian": 1.0}
#: variance of each basis of width w: ``w^2 / divisor`` (uniform on [-w, w]: w^2/3; symmetric
#: triangular on [-w, w]: w^2/6; gaussian of std w: w^2)
_VARIANCE_DIVISOR = {"uniform": 3.0, "triangular": 6.0, "gaussian": 1.0}
#: the two Gumbel-softmax formulas (see :func:`sampling_argmax`)
SAMPLING_VARIANTS = ("official", "textbook")
_BASIS_ALIASES = {"uni": "uniform", "tri": "triangular", "gauss": "gaussian"}
#: what the width arguments take (see :func:`sampling_argmax`)
Width = Union[None, float, torch.Tensor]


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


def _interp_indices(positions: torch.Tensor, n: int):
    """Indices into the zero-padded ``(n + 2)`` bins of the left and right neighbours of
    ``positions`` (index units, in ``[-1, n]``), and the fraction of the way to the right one."""
    left = positions.floor()
    frac = positions - left
    idx = (left + 1).long().clamp(0, n + 1)
    idx_r = (left + 2).long().clamp(0, n + 1)
    return idx, idx_r, frac


def _interp_zero_padded(marginal: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of ``marginal`` (bins 0..n-1, zero outside) at ``positions`` in
    index units, positions in ``[-1, n]``."""
    padded = F.pad(marginal, (1, 1))
    idx, idx_r, frac = _interp_indices(positions, marginal.shape[-1])
    lv = padded.gather(-1, idx)
    rv = padded.gather(-1, idx_r)
    return lv + (rv - lv) * frac


def _renormalise(weights: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """``weights / weights.sum(-1)``, or ``fallback`` on the rows whose sum underflows: every
    weight underflowed or fell outside the support (a 1-bin map; float16), and 0 / 0 is NaN.

    "Underflows" is a sum below ``sqrt(tiny)`` of the dtype (1e-19 in float32, 8e-3 in
    float16): the quotient's gradient divides by the squared sum, which must stay a normal
    number. Other rows get exactly the plain quotient and its gradient.
    """
    total = weights.sum(-1, keepdim=True)
    ok = total >= torch.finfo(weights.dtype).tiny ** 0.5
    # divide by 1 on the fallback rows, so the unused branch has no NaN gradient either
    return torch.where(ok, weights / torch.where(ok, total, 1), fallback)


def _normalise_basis(basis: str) -> str:
    basis = _BASIS_ALIASES.get(basis, basis)
    if basis not in BASES:
        raise ValueError(f"basis must be one of {BASES} (or uni/tri), got {basis!r}")
    return basis


def _draw(shape, like: torch.Tensor, generator, normal: bool = False) -> torch.Tensor:
    if normal:
        return torch.randn(shape, generator=generator, dtype=like.dtype, device=like.device)
    return torch.rand(shape, generator=generator, dtype=like.dtype, device=like.device)


def _width_kind(width: Width, maps: torch.Tensor, name: str = "basis_width") -> Optional[str]:
    """``None``, ``"scalar"``, ``"keypoint"`` (``(K,)``) or ``"location"`` (``maps.shape``).
    Tensors: shapes only (their sign would be a device sync every step)."""
    if width is None:
        return None
    if isinstance(width, (int, float)) and not isinstance(width, bool):
        check_positive(name, width)
        return "scalar"
    if not isinstance(width, torch.Tensor) or not width.is_floating_point():
        got = width.dtype if isinstance(width, torch.Tensor) else type(width).__name__
        raise TypeError(
            f"{name} must be None, a positive float or a floating-point tensor (K,) or "
            f"(B, K, *spatial), got {got}"
        )
    k = maps.shape[1]
    if tuple(width.shape) == (k,):
        return "keypoint"
    if width.shape == maps.shape:
        return "location"
    raise ValueError(
        f"{name} must have shape (K,) = ({k},) or the maps' (B, K, *spatial) = "
        f"{tuple(maps.shape)}, got {tuple(width.shape)}"
    )


def _axis_widths(
    samples: torch.Tensor, margs: List[torch.Tensor], width, kind: Optional[str], d: int
) -> list:
    """The width of each bin of each axis, broadcastable against ``(B, K, S, n_axis)`` (``None``
    for the fixed basis).

    Per location, bin ``j`` of an axis is the slice of the map at ``j``: its width is the
    sample-weighted mean width of the slice, ``marginal(q * w) / marginal(q)`` (a one-hot sample
    gets its location's width). A marginal too small to divide by (the gradient divides by its
    square) weighs nothing anyway: the sample's mean width.
    """
    if kind is None:
        return [None] * d
    if kind != "location":
        return [width] * d
    weighted = marginals(samples * width.unsqueeze(2), d)
    mean = weighted[0].sum(-1, keepdim=True)
    floor = torch.finfo(samples.dtype).tiny ** 0.5
    out = []
    for mw, m in zip(weighted, margs):
        ok = m >= floor
        out.append(torch.where(ok, mw / torch.where(ok, m, 1), mean))
    return out


def _triangular_width_term(
    marginal: torch.Tensor, positions: torch.Tensor, eps: torch.Tensor, raw: torch.Tensor, width
) -> torch.Tensor:
    """What a triangular basis of half-width ``w`` adds to the integral of the fixed one (w = 1).

    The fixed basis weighs the jittered position ``x = j + eps`` by the interpolated marginal,
    ``sum_i m_i tri(x - i)``: mass from the two bins ``i`` around ``x``, each at offset ``x - i``
    from its centre. Width ``w`` (of bin ``i``) scales those offsets about their centres, which
    adds ``sum_x sum_i m_i tri(x - i) (w_i - 1) (x - i) / Z``: with ``g_i = m_i (w_i - 1)`` and
    ``x`` a fraction ``f`` past its left bin ``L``, ``f (1 - f) (g_L - g_(L+1))`` per position. On a
    one-hot marginal this makes the sample ``bin + w * offset``, the fixed basis's offset scaled;
    at ``w = 1`` it adds exactly 0. Rows whose weights fell back to the marginal
    (:func:`_renormalise`) integrate ``m_j (j + w_j eps_j)``: they add ``sum g_j eps_j``.
    """
    g = marginal * (width - 1)
    n = marginal.shape[-1]
    padded = F.pad(g, (1, 1))
    idx, idx_r, frac = _interp_indices(positions, n)
    diff = padded.gather(-1, idx) - padded.gather(-1, idx_r)
    total = raw.sum(-1, keepdim=True)
    ok = total >= torch.finfo(raw.dtype).tiny ** 0.5  # the test of _renormalise
    main = (frac * (1 - frac) * diff).sum(-1, keepdim=True) / torch.where(ok, total, 1)
    fallback = (g * eps).sum(-1, keepdim=True)
    return torch.where(ok, main, fallback).squeeze(-1)


def _sample_coords(
    flat_logits: torch.Tensor,
    spatial: Tuple[int, ...],
    gumbel_u: torch.Tensor,
    jitter: List[torch.Tensor],
    tau: float,
    basis: str,
    variant: str,
    clip: bool,
    reweight: bool,
    inplace: bool = False,
    width=None,
    width_kind: Optional[str] = None,
) -> torch.Tensor:
    """Sampled coordinates ``(B, K, S, D)`` (normalised) from given noise.

    ``inplace=True`` lets the (freshly drawn) ``gumbel_u`` buffer become the Gumbel noise and
    then the perturbed logits: one ``(B, K, S, N)`` buffer instead of four. ``width``: None (the
    fixed basis), a float, ``(1, K, 1, 1)`` per keypoint or ``(B, K, *spatial)`` per location
    (``width_kind``), in bins.
    """
    logits = flat_logits.unsqueeze(2)
    if inplace:
        gumbel = gumbel_u.log_().neg_().log_().neg_()
        if variant == "official":
            z = gumbel.div_(tau).add_(logits)
        else:
            z = gumbel.add_(logits).div_(tau)
    else:
        gumbel = -torch.log(-torch.log(gumbel_u))
        z = logits + gumbel / tau if variant == "official" else (logits + gumbel) / tau
    samples = F.softmax(z, dim=-1)
    del z, gumbel
    samples = samples.view(*samples.shape[:3], *spatial)
    d = len(spatial)
    margs = marginals(samples, d)
    widths = _axis_widths(samples, margs, width, width_kind, d)
    coords = []
    for axis, marginal in enumerate(margs):
        n = marginal.shape[-1]
        base = torch.arange(n, dtype=marginal.dtype, device=marginal.device)
        noise = jitter[axis]
        w = widths[axis]
        extra = None
        # a width w scales the jitter (reparameterised: the sample is affine in w); the fixed
        # basis's own width gives its samples bit for bit (2 * 0.5 and 1 are exact factors)
        if basis == "uniform":
            positions = base + (noise - 0.5) if w is None else base + (2 * w) * (noise - 0.5)
            weights = marginal
        elif basis == "triangular":
            eps = _triangular_inverse_cdf(noise)
            positions = base + eps
            weights = _interp_zero_padded(marginal, positions)
            if w is not None:
                extra = _triangular_width_term(marginal, positions, eps, weights, w)
            # every jittered position outside the support (a 1-bin map, u = 0): the marginal
            weights = _renormalise(weights, marginal)
        else:
            positions = base + noise if w is None else base + w * noise
            weights = marginal
            if reweight:
                # the re-weighting reads the standardised noise: it is the basis's shape, the
                # same at every width
                weights = weights * torch.exp(-2 * noise**2)
                # all weights too small to divide by (a 1-bin map: from |eps| ~ 1.6 in float16,
                # ~ 4.7 in float32): the same weights in log space, softmax(log m - 2 eps^2)
                log_m = torch.log(marginal.clamp_min(torch.finfo(marginal.dtype).tiny))
                weights = _renormalise(weights, F.softmax(log_m - 2 * noise**2, dim=-1))
        index = _integral(weights, positions, clip)
        if extra is not None:
            index = index + extra
        coords.append(index_to_norm(index, n))
    return torch.stack(coords, dim=-1)


def sampling_argmax(
    logits: torch.Tensor,
    tau: float = 1.0,
    num_samples: int = 30,
    basis: str = "triangular",
    *,
    training: bool = True,
    variant: str = "official",
    noise: Optional[Dict[str, torch.Tensor]] = None,
    generator: Optional[torch.Generator] = None,
    clip_integral: bool = False,
    gaussian_reweight: Optional[bool] = None,
    chunk_size: Optional[int] = None,
    basis_width: Width = None,
) -> torch.Tensor:
    """Sampling-argmax: differentiable samples of the keypoint location.

    Training draws ``S`` Gumbel-softmax samples of the map, takes each sample's per-axis
    marginals and jitters every bin position ``w = j + eps`` by the continuous basis:
    ``uniform`` (``eps ~ U(-1/2, 1/2)``), ``triangular`` (``eps`` on ``[-1, 1]`` by inverse CDF,
    weights re-evaluated by linear interpolation of the marginal at ``w`` and renormalised) or
    ``gaussian`` (``eps ~ N(0, 1)``, weights times ``exp(-2 eps^2)`` renormalised). The
    coordinate is ``sum(weights * w)``. At test time it is exactly :func:`soft_argmax`.

    ``basis_width`` replaces the fixed width (:data:`FIXED_WIDTHS`), reparameterised: the jitter
    is ``w * eps`` (``eps`` of the unit basis: ``U(-1, 1)``, triangular on ``[-1, 1]``,
    ``N(0, 1)``; the gaussian re-weighting reads the standardised ``eps``; the triangular basis
    scales each interpolated offset about the centre of the bin it weighs,
    :func:`_triangular_width_term`). Samples are affine in ``w``; on a one-hot map they are
    ``bin + w * offset``, inside ``[bin - w, bin + w]`` for the uniform and triangular bases; the
    fixed basis's own width gives the fixed basis's samples bit for bit.

    Defined at the edges: a map with ``+inf`` logits samples among those bins, an all ``-inf``
    map samples uniformly (the limits :func:`spatial_softmax` takes), and a basis whose weights
    all underflow (a 1-bin map; float16) falls back to the same weights computed stably, so
    samples and gradients stay finite in float32, float16 and bfloat16.

    Args:
        logits: ``(B, K, *spatial)`` unnormalised maps (1-D, 2-D or 3-D).
        tau: Gumbel-softmax temperature (see :func:`sampling_argmax_tau`).
        num_samples: S.
        basis: ``"uniform"``, ``"triangular"`` or ``"gaussian"`` (``uni``/``tri`` accepted).
        training: ``False`` returns the soft-argmax ``(B, K, D)``.
        variant: ``"official"`` computes ``softmax(h + g / tau)`` as the official code (a Concrete
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
        basis_width: positive widths in bins (uniform/triangular half-width, gaussian std),
            the same along every axis: ``None`` (the fixed basis, today's samples bit for bit),
            a float, ``(K,)`` per keypoint, or ``(B, K, *spatial)`` per location (the width of
            the bin a sample lands in; a soft sample uses the sample-weighted mean width of each
            slice of the map). Unused at test time (checked all the same).

    Returns:
        training: samples ``(B, K, S, D)``; otherwise coords ``(B, K, D)``; normalised.

    Raises:
        TypeError: ``basis_width`` is neither None, a float nor a floating-point tensor.
        ValueError: ``basis_width`` is not positive (a float) or has another shape than
            ``(K,)`` or ``logits.shape``; see also the other arguments.
    """
    d = spatial_dims(logits, "logits")
    basis = _normalise_basis(basis)
    width_kind = _width_kind(basis_width, logits)
    check_positive("tau", tau)
    if variant not in SAMPLING_VARIANTS:
        raise ValueError(f"variant must be one of {SAMPLING_VARIANTS}, got {variant!r}")
    if not training:
        if not clip_integral:
            return soft_argmax(logits)
        heatmaps = spatial_softmax(logits)
        out = []
        for m in marginals(heatmaps, d):
            n = m.shape[-1]
            base = torch.arange(n, dtype=m.dtype, device=m.device)
            out.append(index_to_norm(_integral(m, base, True), n))
        return torch.stack(out, -1)
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    reweight = (d < 3) if gaussian_reweight is None else gaussian_reweight
    spatial = tuple(logits.shape[2:])
    sizes = sizes_xyz(logits, d)
    b, k = logits.shape[:2]
    # +inf bins share the samples, an all -inf map samples uniformly (spatial_softmax's limits;
    # inf - inf would make every sample NaN)
    flat = limit_logits(logits.flatten(-d))
    axes = "xyz"[:d]
    prefix = "z_" if basis == "gaussian" else "u_"
    width = basis_width
    if width_kind == "keypoint":
        width = basis_width.to(flat.dtype).view(1, k, 1, 1)
    elif width_kind == "location":
        width = basis_width.to(flat.dtype)

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
            variant,
            clip_integral,
            reweight,
            width=width,
            width_kind=width_kind,
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
            flat, spatial, gumbel_u, jitter, tau, basis, variant, clip_integral, reweight, True,
            width, width_kind,
        )  # fmt: skip

    chunks = []
    for start in range(0, num_samples, chunk_size):
        count = min(chunk_size, num_samples - start)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())

        def run(flat_logits, chunk_width, seed=seed, count=count):
            # regenerated identically when checkpointing recomputes the forward pass
            g = torch.Generator(device=flat_logits.device).manual_seed(seed)
            u, jit = draw(count, g)
            return _sample_coords(
                flat_logits, spatial, u, jit, tau, basis, variant, clip_integral, reweight, True,
                chunk_width, width_kind,
            )  # fmt: skip

        # the width goes in as an argument: the checkpoint's gradient reaches it
        chunks.append(checkpoint(run, flat, width, use_reentrant=False))
    return torch.cat(chunks, dim=2)


def sampling_argmax_tau(epoch: float, num_dims: int = 2) -> float:
    """The reference temperature schedules: 2-D ``max(0.5, 2 - 3 epoch / 50)`` (2 -> 0.5 over 25
    epochs); 3-D ``max(0.5, 5 - epoch / 50)``."""
    if num_dims == 3:
        return max(0.5, 5.0 - epoch / 50.0)
    return max(0.5, 2.0 - epoch * 3.0 / 50.0)


# -- the predictive distribution: the mixture the basis defines ------------------------------
def basis_variance(basis: str, width: Width = None) -> Union[float, torch.Tensor]:
    """Variance of the basis (one axis), in squared units of ``width`` (bins).

    Uniform on ``[-w, w]``: ``w^2 / 3``; symmetric triangular on ``[-w, w]``: ``w^2 / 6``;
    gaussian of standard deviation ``w``: ``w^2``. The fixed bases (``width=None``,
    :data:`FIXED_WIDTHS`): 1/12, 1/6 and 1.

    Args:
        basis: ``"uniform"``, ``"triangular"`` or ``"gaussian"`` (``uni``/``tri``/``gauss``).
        width: ``None``, a positive float (a float is returned) or a tensor of widths.
    """
    basis = _normalise_basis(basis)
    if width is None:
        width = FIXED_WIDTHS[basis]
    elif not isinstance(width, torch.Tensor):
        check_positive("width", width)
    return width**2 / _VARIANCE_DIVISOR[basis]


def _check_heatmaps_width(heatmaps: torch.Tensor, width: Width, basis: str):
    d = spatial_dims(heatmaps, "heatmaps")
    basis = _normalise_basis(basis)
    kind = _width_kind(width, heatmaps, "width")
    if kind is None:
        width = FIXED_WIDTHS[basis]
    elif kind == "keypoint":
        width = width.to(heatmaps.dtype).view(1, -1, *([1] * d))  # against (B, K, *spatial)
    elif kind == "location":
        width = width.to(heatmaps.dtype)
    return d, basis, kind, width


def mixture_variance(heatmaps: torch.Tensor, basis: str, width: Width = None) -> torch.Tensor:
    """Per-axis variance of the predictive mixture ``p(x) = sum_j pi_j basis(x - c_j; w_j)``.

    Each axis of a sample is jittered independently given its bin, so by the law of total
    variance the variance along an axis of ``n`` bins is the map's
    (:func:`~heads.functional.integral.heatmap_variance`) plus the mean basis variance
    ``E_pi[basis_variance(w)] / n^2`` (bins -> normalised units). A one-hot map has exactly the
    basis variance.

    Args:
        heatmaps: ``(B, K, W)``, ``(B, K, H, W)`` or ``(B, K, Dz, H, W)`` probability maps ``pi``
            (each summing to 1; not checked).
        basis: ``"uniform"``, ``"triangular"`` or ``"gaussian"``.
        width: widths in bins: ``None`` (:data:`FIXED_WIDTHS`), a float, ``(K,)`` or the shape
            of ``heatmaps`` (per location).

    Returns:
        variances ``(B, K, D)`` in squared normalised units, order ``(x, y[, z])``.
    """
    d, basis, kind, width = _check_heatmaps_width(heatmaps, width, basis)
    spread = basis_variance(basis, width)
    if kind == "location":
        spread = (heatmaps * spread).flatten(-d).sum(-1, keepdim=True)
    elif kind == "keypoint":
        spread = spread.view(1, -1, 1)
    sizes = torch.tensor(sizes_xyz(heatmaps, d), dtype=heatmaps.dtype, device=heatmaps.device)
    return heatmap_variance(heatmaps) + spread / sizes**2


def _log_unit_basis(basis: str, z: torch.Tensor) -> torch.Tensor:
    """Log density of the unit basis at ``z``; ``-inf`` outside a compact support, with a zero
    (not NaN) gradient there."""
    if basis == "gaussian":
        return -0.5 * z**2 - 0.5 * math.log(2 * math.pi)
    if basis == "uniform":
        inside = z.abs() <= 1
        # a tensor branch: Python scalars alone would make a default-dtype (float32) result
        return torch.where(inside, torch.full_like(z, math.log(0.5)), -math.inf)
    height = 1 - z.abs()
    inside = height > 0
    return torch.where(inside, torch.log(torch.where(inside, height, 1)), -math.inf)


def mixture_log_likelihood(
    heatmaps: torch.Tensor,
    target: torch.Tensor,
    basis: str,
    width: Width = None,
    *,
    min_prob: Optional[float] = None,
) -> torch.Tensor:
    """Log density of ``target`` under the predictive mixture of a sampling-argmax map.

    ``p(x) = sum_l pi_l prod_a basis((x_a - c_la) / w_l) / w_l``: every bin ``l`` of the map
    carries the basis centred on it, one independent factor per axis (the sampler jitters each
    axis independently given the bin), ``w_l`` its width in bins. Computed in log space
    (``logsumexp`` over the bins); per unit volume of normalised coordinates (``prod_a n_a``
    times the density in bins).

    Args:
        heatmaps: ``(B, K, W)``, ``(B, K, H, W)`` or ``(B, K, Dz, H, W)`` probability maps.
        target: ``(B, K, D)`` normalised coordinates on the bin-centre grid of :mod:`rle.coords`
            (subtract a head's ``grid_offset`` first).
        basis: ``"uniform"``, ``"triangular"`` or ``"gaussian"``.
        width: widths in bins: ``None`` (:data:`FIXED_WIDTHS`), a float, ``(K,)`` or the shape
            of ``heatmaps``.
        min_prob: ``None``, or a floor in ``(0, 1]``: the density becomes
            ``p + min_prob * prod_a n_a`` (the floor of
            :func:`~heads.functional.integral.heatmap_log_likelihood`, a bin of probability
            ``min_prob``; added rather than a maximum so that the gradient stays finite).

    Returns:
        ``(B, K)`` log densities; without ``min_prob``, ``-inf`` where no bin's support
        (uniform, triangular) reaches the target.
    """
    d, basis, kind, width = _check_heatmaps_width(heatmaps, width, basis)
    check_coords(target, heatmaps, d, "target")
    if not target.is_floating_point():
        raise TypeError(f"target must be a floating-point tensor, got {target.dtype}")
    if min_prob is not None and not (isinstance(min_prob, (int, float)) and 0 < min_prob <= 1):
        raise ValueError(f"min_prob must be a number in (0, 1], got {min_prob!r}")
    target = target.to(heatmaps.dtype)
    log_width = math.log(width) if kind in (None, "scalar") else torch.log(width)
    positive = heatmaps > 0
    # log 0 = -inf with a zero gradient (log's own is inf * 0 = NaN)
    total = torch.where(positive, torch.log(torch.where(positive, heatmaps, 1)), -math.inf)
    for axis, n in enumerate(sizes_xyz(heatmaps, d)):
        x = norm_to_index(target[..., axis], n)
        offset = x.unsqueeze(-1) - torch.arange(n, dtype=heatmaps.dtype, device=heatmaps.device)
        shape = [1] * d
        shape[d - 1 - axis] = n
        offset = offset.view(*offset.shape[:2], *shape)
        total = total + (_log_unit_basis(basis, offset / width) - log_width + math.log(n))
    total = total.flatten(-d)
    if min_prob is not None:
        # one more term of the logsumexp: an all -inf row would give a NaN gradient
        floor = math.log(min_prob) + math.log(total.shape[-1])
        total = torch.cat([total, total.new_full((*total.shape[:-1], 1), floor)], dim=-1)
    return torch.logsumexp(total, dim=-1)
