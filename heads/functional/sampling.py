"""Sampling-argmax (Li et al., NeurIPS 2021): differentiable samples of the keypoint location.

Shape letters: B batch, K keypoints, D coordinate dims, H/W map size (Dz depth bins), S samples,
N bins of a map.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from heads.functional._maps import (
    check_positive,
    limit_logits,
    marginals,
    sizes_xyz,
    spatial_dims,
)
from heads.functional.integral import soft_argmax, spatial_softmax
from rle.coords import index_to_norm

__all__ = ["BASES", "SAMPLING_VARIANTS", "sampling_argmax", "sampling_argmax_tau"]

#: the continuous bases of the bin jitter
BASES = ("uniform", "triangular", "gaussian")
#: the two Gumbel-softmax formulas (see :func:`sampling_argmax`)
SAMPLING_VARIANTS = ("official", "textbook")
_BASIS_ALIASES = {"uni": "uniform", "tri": "triangular", "gauss": "gaussian"}


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
) -> torch.Tensor:
    """Sampled coordinates ``(B, K, S, D)`` (normalised) from given noise.

    ``inplace=True`` lets the (freshly drawn) ``gumbel_u`` buffer become the Gumbel noise and
    then the perturbed logits: one ``(B, K, S, N)`` buffer instead of four.
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
    coords = []
    for axis, marginal in enumerate(marginals(samples, d)):
        n = marginal.shape[-1]
        base = torch.arange(n, dtype=marginal.dtype, device=marginal.device)
        noise = jitter[axis]
        if basis == "uniform":
            positions = base + (noise - 0.5)
            weights = marginal
        elif basis == "triangular":
            positions = base + _triangular_inverse_cdf(noise)
            weights = _interp_zero_padded(marginal, positions)
            # every jittered position outside the support (a 1-bin map, u = 0): the marginal
            weights = _renormalise(weights, marginal)
        else:
            positions = base + noise
            weights = marginal
            if reweight:
                weights = weights * torch.exp(-2 * noise**2)
                # all weights too small to divide by (a 1-bin map: from |eps| ~ 1.6 in float16,
                # ~ 4.7 in float32): the same weights in log space, softmax(log m - 2 eps^2)
                log_m = torch.log(marginal.clamp_min(torch.finfo(marginal.dtype).tiny))
                weights = _renormalise(weights, F.softmax(log_m - 2 * noise**2, dim=-1))
        index = _integral(weights, positions, clip)
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
) -> torch.Tensor:
    """Sampling-argmax: differentiable samples of the keypoint location.

    Training draws ``S`` Gumbel-softmax samples of the map, takes each sample's per-axis
    marginals and jitters every bin position ``w = j + eps`` by the continuous basis:
    ``uniform`` (``eps ~ U(-1/2, 1/2)``), ``triangular`` (``eps`` on ``[-1, 1]`` by inverse CDF,
    weights re-evaluated by linear interpolation of the marginal at ``w`` and renormalised) or
    ``gaussian`` (``eps ~ N(0, 1)``, weights times ``exp(-2 eps^2)`` renormalised). The
    coordinate is ``sum(weights * w)``. At test time it is exactly :func:`soft_argmax`.

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

    Returns:
        training: samples ``(B, K, S, D)``; otherwise coords ``(B, K, D)``; normalised.
    """
    d = spatial_dims(logits, "logits")
    basis = _normalise_basis(basis)
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
            flat, spatial, gumbel_u, jitter, tau, basis, variant, clip_integral, reweight, True
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
                flat_logits, spatial, u, jit, tau, basis, variant, clip_integral, reweight, True
            )

        chunks.append(checkpoint(run, flat, use_reentrant=False))
    return torch.cat(chunks, dim=2)


def sampling_argmax_tau(epoch: float, num_dims: int = 2) -> float:
    """The reference temperature schedules: 2-D ``max(0.5, 2 - 3 epoch / 50)`` (2 -> 0.5 over 25
    epochs); 3-D ``max(0.5, 5 - epoch / 50)``."""
    if num_dims == 3:
        return max(0.5, 5.0 - epoch / 50.0)
    return max(0.5, 2.0 - epoch * 3.0 / 50.0)
