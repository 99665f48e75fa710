r"""Residual log-likelihood estimation (RLE) loss, functional and as a module owning the flow.

With ``D = pred - target``, ``sigma = sigmoid(sigma_logits)`` and the normalised residual
``u = D / sigma``, the three variants are (sums over coordinates ``d``, joints ``k`` with weight
``w``; ``log phi = flow.log_prob(u)`` is one value per joint):

``variant="official"`` (Jeff-sjtu/res-loglikelihood-regression, ``criterion.RLELoss``)::

    L = sum_k sum_d w_kd [ (log s_d - log phi)
                           + (log s_d + log sqrt(2 pi) + |D_d| / (sqrt2 s_d + 1e-9)) ]

  ``log phi`` is broadcast against ``log sigma`` and so counted once per coordinate, ``log sigma``
  twice. The 3-D model adds ``1e-9`` to sigma, and joints whose z weight is 0 (2-D-only data)
  use the 2-D flow on ``(x, y)``. ``q="gaussian"`` replaces the last term by
  ``D_d^2 / (2 s_d^2)``.

``variant="mmpose"`` (MMPose 1.x ``RLELoss``), ``u = D / (sigma + 1e-9)``::

    L = sum_k sum_d w_kd [ (log s_d - log phi) + (log(2 s_d) + |u_d|) ]            (laplace)
    L = sum_k sum_d w_kd [ (log s_d - log phi) + (log(sqrt(2 pi) s_d) + u_d^2 / 2) ] (gaussian)

``variant="paper"`` (Eq. 8 of the paper read literally: one ``log phi`` and one ``log sigma`` per
joint, a unit-scale Q on ``u``)::

    L = sum_k [ sum_d w_kd (log s_d + log 2 + |u_d|) - w_k log phi ]                 (laplace)

``residual=False`` drops the Q term (direct likelihood estimation, DLE).

The density each variant implies (:func:`residual_log_density`, :func:`residual_quantiles`):
read as a negative log-likelihood of the normalised residual ``u`` at fixed sigma, the loss is
``-(m log phi(u) + sum_d log q(u_d))`` with ``m = D`` for the official and MMPose variants
(``log phi`` counted once per coordinate) and ``m = 1`` for the paper's, and ``q`` the Q term's
unit density (official Laplace: scale sqrt2; MMPose and paper Laplace: scale 1; Gaussian:
N(0, 1); none without ``residual``). The loss constrains only the product of sigma and the
flow's scale, so intervals ``mu +- k sigma`` must take ``k`` from this density, not from a
fixed Laplace or Gaussian.

Reductions: ``"batchmean"`` divides the weighted sum by the batch size B, as both repositories
do; ``"mean"`` divides by the summed joint weights; ``"sum"``; ``"none"`` returns ``(B, K)``.

**Negative values are correct.** The loss is a negative log-*density* of a continuous residual
in normalised units; densities exceed 1 as soon as sigma is small, so a well-trained model has a
negative loss. Never clamp it at 0: that removes the gradient.

Numerics: ``log sigma`` comes from ``logsigmoid`` of the logit (``sigmoid`` underflows to 0 at
logit -88.7 in fp32, which gives ``log 0`` and NaN in the references); sigma is floored at
``min_sigma`` (default 1e-9 in normalised units, ~2e-7 px on a 192-px crop) in both the residual
and the log term, so an extreme logit gives a finite loss with zero gradient instead of inf/NaN;
the normal log-density is closed form; the loss is computed in fp32 (or fp64) even under
autocast, and the gradients sent back to float16/bfloat16 inputs saturate at the dtype's largest
value instead of overflowing to inf (they grow like ``1 / sigma`` and pass float16's 65504 for
logits below about -8). A joint (or coordinate) of weight 0 never reaches the loss: a NaN or
infinite residual there is replaced by 0 before anything is computed from it, and the weighting
is a ``torch.where`` mask, not ``0 * x`` (which is NaN for an infinite ``x``); on finite inputs
both give the plain product, bit for bit. :func:`coordinate_loss` does the same.

Shape letters: B batch, K keypoints, D coordinate dims (2 or 3).
"""

from __future__ import annotations

import math
from typing import Dict, NamedTuple, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rle._quadrature import graded_axis as _graded_axis
from rle.flow import RealNVP

__all__ = [
    "COORDINATE_LOSSES",
    "Q_DISTRIBUTIONS",
    "RLELoss",
    "RLELossOutput",
    "VARIANTS",
    "apply_weight",
    "coordinate_loss",
    "flow_marginal_density",
    "mask_unweighted",
    "residual_log_density",
    "residual_quantiles",
    "rle_confidence",
    "rle_loss",
]

VARIANTS = ("official", "mmpose", "paper")
Q_DISTRIBUTIONS = ("laplace", "gaussian")
REDUCTIONS = ("batchmean", "mean", "sum", "none")
COORDINATE_LOSSES = ("l1", "l2", "smooth_l1", "euclidean")

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_LOG_2 = math.log(2.0)
_SQRT_2 = math.sqrt(2.0)
_REF_EPS = 1e-9  # the 1e-9 constants of both reference implementations


class RLELossOutput(NamedTuple):
    """What :func:`rle_loss` returns.

    Attributes:
        loss: the reduced loss (``(B, K)`` for ``reduction="none"``).
        nf_term: the flow part (``log sigma - log phi`` terms), reduced like ``loss``.
        q_term: the Q part (zero when ``residual=False``), reduced like ``loss``.
        log_sigma: ``(B, K, D)`` log sigma used by the loss.
        log_phi: ``(B, K, 1)`` flow log-density of the normalised residual.
    """

    loss: torch.Tensor
    nf_term: torch.Tensor
    q_term: torch.Tensor
    log_sigma: torch.Tensor
    log_phi: torch.Tensor


def apply_weight(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``values * weight`` where a weight of 0 gives exactly 0 even for a NaN or infinite value
    (``0 * inf`` is NaN); bit-identical to the product on finite values."""
    return torch.where(weight != 0, values, 0) * weight


def mask_unweighted(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``values`` with its NaN/inf entries of weight 0 replaced by 0, before anything is computed
    from them: masking only the product would still send ``0 * NaN`` gradients back through the
    computation. Finite entries are returned unchanged (the same values, bit for bit)."""
    return torch.where((weight == 0) & ~torch.isfinite(values), 0, values)


class _SaturatingCast(torch.autograd.Function):
    """``x.to(dtype)`` whose backward clamps the gradient to the range of ``x``'s own dtype
    before casting it back (a float16 input would otherwise get inf)."""

    @staticmethod
    def forward(ctx, x, dtype):
        ctx.source = x.dtype
        return x.to(dtype)

    @staticmethod
    def backward(ctx, grad):
        limit = torch.finfo(ctx.source).max
        return grad.clamp(-limit, limit).to(ctx.source), None


def _upcast(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if x.dtype in (torch.float16, torch.bfloat16) and x.requires_grad:
        return _SaturatingCast.apply(x, dtype)
    return x.to(dtype)


def _check_choice(name: str, value: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _expand_weight(target_weight: Optional[torch.Tensor], pred: torch.Tensor) -> torch.Tensor:
    b, k, d = pred.shape
    if target_weight is None:
        return pred.new_ones(b, k, d)
    if not isinstance(target_weight, torch.Tensor):
        raise TypeError(f"target_weight must be a torch.Tensor, got {type(target_weight).__name__}")
    tw = target_weight.to(pred.dtype)
    if tw.shape == (b, k):
        tw = tw.unsqueeze(-1)
    if tw.dim() != 3 or tw.shape[:2] != (b, k) or tw.shape[2] not in (1, d):
        raise ValueError(
            f"target_weight must have shape (B, K), (B, K, 1) or (B, K, D) = ({b}, {k}[, 1|{d}]), "
            f"got {tuple(target_weight.shape)}"
        )
    return tw.expand(b, k, d)


def _check_inputs(pred, sigma_logits, target) -> None:
    for name, t in (("pred", pred), ("sigma_logits", sigma_logits), ("target", target)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if pred.dim() != 3:
        raise ValueError(f"pred must have shape (B, K, D), got {tuple(pred.shape)}")
    for name, t in (("sigma_logits", sigma_logits), ("target", target)):
        if t.shape != pred.shape:
            raise ValueError(
                f"{name} must have the shape of pred (B, K, D) = {tuple(pred.shape)}, "
                f"got {tuple(t.shape)}"
            )


def _reduce(per_joint: torch.Tensor, joint_weight: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return per_joint
    total = per_joint.sum()
    if reduction == "sum":
        return total
    if reduction == "batchmean":
        return total / max(per_joint.shape[0], 1)
    denom = joint_weight.sum()
    return torch.where(denom > 0, total / denom.clamp_min(torch.finfo(total.dtype).tiny), total * 0)


def rle_loss(
    pred: torch.Tensor,
    sigma_logits: torch.Tensor,
    target: torch.Tensor,
    flow: nn.Module,
    target_weight: Optional[torch.Tensor] = None,
    *,
    flow_2d: Optional[nn.Module] = None,
    variant: str = "official",
    q: str = "laplace",
    residual: bool = True,
    reduction: str = "batchmean",
    min_sigma: float = 1e-9,
) -> RLELossOutput:
    """RLE negative log-likelihood of ``target`` under ``(pred, sigma)`` and the flow.

    Args:
        pred: ``(B, K, D)`` predicted mu, normalised coordinates (any frame shared with
            ``target``: the loss only sees the residual).
        sigma_logits: ``(B, K, D)`` unnormalised sigma; ``sigma = sigmoid(sigma_logits)``.
        target: ``(B, K, D)`` ground-truth coordinates.
        flow: a density with ``log_prob((N, D)) -> (N,)`` (a :class:`~rle.flow.RealNVP`).
        target_weight: ``(B, K)``, ``(B, K, 1)`` or ``(B, K, D)`` weights (visibility);
            ``None`` = all ones.
        flow_2d: for ``D == 3``: the 2-D flow used for joints whose z weight is 0 (official
            RegressFlow3D semantics); ``None`` sends every joint through ``flow``.
        variant: ``"official"``, ``"mmpose"`` or ``"paper"`` (module docstring).
        q: ``"laplace"`` or ``"gaussian"``.
        residual: ``False`` drops the Q term (DLE).
        reduction: ``"batchmean"`` (sum / B), ``"mean"`` (sum / summed joint weights),
            ``"sum"`` or ``"none"`` (``(B, K)``).
        min_sigma: floor on sigma (normalised units) that keeps extreme logits finite.

    Returns:
        :class:`RLELossOutput`. The loss is routinely negative; that is correct.
    """
    _check_choice("variant", variant, VARIANTS)
    _check_choice("q", q, Q_DISTRIBUTIONS)
    _check_choice("reduction", reduction, REDUCTIONS)
    _check_inputs(pred, sigma_logits, target)
    b, k, d = pred.shape
    features = getattr(flow, "features", d)
    if features != d:
        raise ValueError(f"flow has {features} features but pred has D={d} (pred shape (B, K, D))")

    compute_dtype = torch.float64 if pred.dtype == torch.float64 else torch.float32
    device_type = pred.device.type
    # fp32 maths even under autocast: the flow's exp/log and the 1e-9 constants need it
    with torch.autocast(device_type=device_type, enabled=False):
        pred = _upcast(pred, compute_dtype)
        target = _upcast(target, compute_dtype)
        logits = _upcast(sigma_logits, compute_dtype)
        w = _expand_weight(target_weight, pred)
        joint_w = w.amax(dim=-1)  # (B, K)

        if variant == "official" and d == 3:
            # RegressFlow3D: sigma = sigmoid + 1e-9 everywhere (this also bounds it below)
            log_sigma = torch.logaddexp(F.logsigmoid(logits), logits.new_tensor(math.log(_REF_EPS)))
            sigma = torch.sigmoid(logits) + _REF_EPS
        else:
            log_sigma = F.logsigmoid(logits).clamp_min(math.log(min_sigma))
            sigma = log_sigma.exp()

        diff = mask_unweighted(pred - target, w)
        u = diff / (sigma + _REF_EPS) if variant == "mmpose" else diff / sigma
        log_phi = _flow_log_prob(flow, flow_2d, u, w).reshape(b, k, 1)

        if variant == "paper":
            nf = apply_weight(log_sigma, w).sum(-1) - apply_weight(log_phi.squeeze(-1), joint_w)
        else:
            nf = apply_weight(log_sigma - log_phi, w).sum(-1)

        if residual:
            if variant == "official":
                if q == "laplace":
                    q_elem = log_sigma + _LOG_SQRT_2PI + diff.abs() / (_SQRT_2 * sigma + _REF_EPS)
                else:
                    q_elem = log_sigma + _LOG_SQRT_2PI + 0.5 * (diff / sigma) ** 2
            elif variant == "mmpose":
                if q == "laplace":
                    q_elem = log_sigma + _LOG_2 + u.abs()
                else:
                    q_elem = log_sigma + _LOG_SQRT_2PI + 0.5 * u**2
            else:  # paper: log sigma already counted in nf, unit-scale Q on u
                q_elem = (_LOG_2 + u.abs()) if q == "laplace" else (_LOG_SQRT_2PI + 0.5 * u**2)
            q_joint = apply_weight(q_elem, w).sum(-1)
        else:
            q_joint = torch.zeros_like(nf)

        nf_term = _reduce(nf, joint_w, reduction)
        q_term = _reduce(q_joint, joint_w, reduction)
        loss = nf_term + q_term
    return RLELossOutput(loss, nf_term, q_term, log_sigma, log_phi)


def _flow_log_prob(flow, flow_2d, u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    d = u.shape[-1]
    param = next(flow.parameters(), None)
    # a float32 flow with float64 inputs (or the reverse) evaluates in the flow's own dtype
    flat = u.reshape(-1, d) if param is None else u.reshape(-1, d).to(param.dtype)
    return _log_prob_rows(flow, flow_2d, flat, w).to(u.dtype)


def _log_prob_rows(flow, flow_2d, flat: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    d = flat.shape[-1]
    if flow_2d is None or d != 3:
        return flow.log_prob(flat)
    is_3d = (w[..., 2] > 0).reshape(-1)
    if bool(is_3d.all()):
        return flow.log_prob(flat)
    idx3 = is_3d.nonzero().squeeze(1)
    idx2 = (~is_3d).nonzero().squeeze(1)
    out = flat.new_zeros(flat.shape[0])
    if idx3.numel():
        out = out.index_put((idx3,), flow.log_prob(flat[idx3]))
    return out.index_put((idx2,), flow_2d.log_prob(flat[idx2, :2]))


def residual_log_density(
    u: torch.Tensor,
    flow: nn.Module,
    *,
    variant: str = "official",
    q: str = "laplace",
    residual: bool = True,
) -> torch.Tensor:
    """Unnormalised log-density of the normalised residual that the RLE loss implies.

    ``m * log phi(u) + sum_d log q(u_d)`` up to a constant (module docstring): the loss of
    :func:`rle_loss` at fixed sigma is its negative.

    Args:
        u: ``(N, D)`` normalised residuals ``(mu - target) / sigma``.
        flow: the loss's flow (``log_prob((N, D)) -> (N,)``), ``D`` features.
        variant, q, residual: as :func:`rle_loss`.

    Returns:
        ``(N,)`` log-density (not normalised), in ``u``'s dtype.
    """
    _check_choice("variant", variant, VARIANTS)
    _check_choice("q", q, Q_DISTRIBUTIONS)
    if not isinstance(u, torch.Tensor) or u.dim() != 2:
        raise ValueError(f"u must be a tensor of shape (N, D), got {getattr(u, 'shape', u)!r}")
    d = u.shape[1]
    if getattr(flow, "features", d) != d:
        raise ValueError(f"flow has {flow.features} features but u has D={d} (shape (N, D))")
    param = next(flow.parameters(), None)
    logp = flow.log_prob(u if param is None else u.to(param.dtype)).to(u.dtype)
    logp = logp * (1 if variant == "paper" else d)
    if residual:
        if q == "gaussian":
            logp = logp - 0.5 * (u**2).sum(1)
        else:
            scale = _SQRT_2 if variant == "official" else 1.0
            logp = logp - u.abs().sum(1) / scale
    return logp


def residual_quantiles(
    flow: nn.Module,
    levels: Sequence[float] = (0.5, 0.68, 0.95),
    *,
    variant: str = "official",
    q: str = "laplace",
    residual: bool = True,
    grid_size: int = 801,
    num_samples: int = 20000,
) -> Dict[float, float]:
    """Quantiles of one coordinate of ``|u|`` under the density the 2-D RLE loss implies.

    ``{level: k}`` with ``P(|u_d| <= k) = level``, so ``mu +- k * sigma`` is the ``level``
    interval of each coordinate. The density (:func:`residual_log_density`) is integrated on
    a ``grid_size``-square graded grid (:func:`rle._quadrature.graded_axis`): its half-width is
    4x the 99.9 % quantile of ``|z|`` over ``num_samples`` samples of the flow (fixed seed, so the
    result is deterministic), and its spacing grows from 1/50 of their median ``|z|`` at 0,
    so a density whose peak is far narrower than its tails (a flow trained with its variance
    pinned grows such a spike) is resolved instead of falling inside one grid cell. The x and
    y marginals are pooled; the quantile is interpolated on their cumulative integral.

    Args:
        flow: a 2-D flow with ``log_prob`` and ``inverse`` (:class:`~rle.flow.RealNVP`).
        levels: each in ``(0, 1)``.
        variant, q, residual: as :func:`rle_loss`.
        grid_size: points per axis of the integration grid.
        num_samples: flow samples that size the grid.

    Returns:
        ``{level: quantile}`` in units of sigma.
    """
    features = getattr(flow, "features", None)
    if features != 2:
        raise ValueError(f"residual_quantiles needs a 2-D flow, got features={features}")
    levels = [float(lv) for lv in levels]
    if not levels or not all(0 < lv < 1 for lv in levels):
        raise ValueError(f"levels must be a non-empty sequence in (0, 1), got {levels}")
    device = next(flow.parameters()).device
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        samples, _ = flow.inverse(torch.randn(num_samples, 2, generator=gen).to(device))
        absz = samples.abs().flatten().cpu()
        half = 4 * float(absz.quantile(0.999)) + 1e-6
        axis, weights = _graded_axis(half, float(absz.median()) / 50, grid_size)
        grid = torch.tensor(
            np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2),
            dtype=torch.float32,
            device=device,
        )
        # the flow sees the float32 grid (its training precision), the density maths is float64
        logp = residual_log_density(
            grid.double(), flow, variant=variant, q=q, residual=residual
        ).cpu().numpy()
    p = np.exp(logp - logp.max()).reshape(grid_size, grid_size)
    # pooled marginal density of one coordinate, symmetrised about 0 (the grid is symmetric)
    marg = (p @ weights + weights @ p) / 2
    mid = grid_size // 2
    dens = (marg[mid:] + marg[mid::-1]) / 2
    absu = axis[mid:]
    cdf = np.concatenate([[0.0], np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(absu))])
    cdf /= cdf[-1]
    return {lv: float(np.interp(lv, cdf, absu)) for lv in levels}


def flow_marginal_density(flow: nn.Module, grid: np.ndarray) -> np.ndarray:
    """The flow's own density of the first coordinate, ``int phi(x, y) dy``, on ``grid``.

    Args:
        flow: a 2-D flow (:class:`~rle.flow.RealNVP`).
        grid: ``(G,)`` values of the first coordinate; ``y`` is integrated over ``[-10, 10]``.

    Returns:
        ``(G,)`` density values.
    """
    features = getattr(flow, "features", None)
    if features != 2:
        raise ValueError(f"flow_marginal_density needs a 2-D flow, got features={features}")
    grid = np.asarray(grid, dtype=np.float64)
    ys = np.linspace(-10, 10, 401)
    pts = torch.tensor(
        np.stack(np.meshgrid(grid, ys, indexing="ij"), -1).reshape(-1, 2),
        dtype=torch.float32,
        device=next(flow.parameters()).device,
    )
    with torch.no_grad():
        dens = flow.log_prob(pts).exp().cpu().numpy().reshape(len(grid), len(ys))
    return dens.sum(1) * (ys[1] - ys[0])


def rle_confidence(sigma: torch.Tensor) -> torch.Tensor:
    """Keypoint confidence of RLE, ``1 - mean_d sigma``: ``(B, K, D) -> (B, K)``.

    sigma is in the units it was trained in: the official and MMPose sigmas differ by sqrt2
    (their Laplace scales are ``sqrt2 * sigma`` and ``sigma``), so their scores differ too.
    """
    if sigma.dim() != 3:
        raise ValueError(f"sigma must have shape (B, K, D), got {tuple(sigma.shape)}")
    return 1.0 - sigma.mean(dim=-1)


def coordinate_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    target_weight: Optional[torch.Tensor] = None,
    *,
    kind: str = "l1",
    reduction: str = "batchmean",
    smooth_l1_beta: float = 0.01,
) -> torch.Tensor:
    """Weighted coordinate regression loss (the baselines' and the heatmap heads' loss).

    Args:
        pred: ``(B, K, D)`` coordinates, or ``(B, K, S, D)`` samples (sampling-argmax: the
            per-sample losses are averaged over S, the expectation of the error).
        target: ``(B, K, D)``.
        target_weight: ``(B, K)``, ``(B, K, 1)`` or ``(B, K, D)``; ``None`` = ones.
        kind: ``"l1"``, ``"l2"`` (squared error), ``"smooth_l1"`` (Huber with
            ``smooth_l1_beta`` in normalised units) or ``"euclidean"`` (per-joint distance).
        reduction: as :func:`rle_loss` (``"batchmean"`` = sum / B, the official IPR and
            sampling-argmax normalisation).

    Returns:
        the reduced loss (``(B, K)`` for ``reduction="none"``).
    """
    _check_choice("kind", kind, COORDINATE_LOSSES)
    _check_choice("reduction", reduction, REDUCTIONS)
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError("pred and target must be torch.Tensor")
    if target.dim() != 3:
        raise ValueError(f"target must have shape (B, K, D), got {tuple(target.shape)}")
    b, k, d = target.shape
    if pred.shape == target.shape:
        samples = pred.unsqueeze(2)
    elif pred.dim() == 4 and pred.shape[:2] == (b, k) and pred.shape[3] == d:
        samples = pred
    else:
        raise ValueError(
            f"pred must have shape (B, K, D) = {(b, k, d)} or (B, K, S, D), got {tuple(pred.shape)}"
        )
    w = _expand_weight(target_weight, target)
    diff = mask_unweighted(samples - target.unsqueeze(2), w.unsqueeze(2))
    if kind == "euclidean":
        per_joint = apply_weight(torch.linalg.vector_norm(diff, dim=-1).mean(2), w.amax(-1))
    else:
        if kind == "l1":
            elem = diff.abs()
        elif kind == "l2":
            elem = diff**2
        else:
            elem = F.smooth_l1_loss(
                diff, torch.zeros_like(diff), reduction="none", beta=smooth_l1_beta
            )
        per_joint = apply_weight(elem.mean(2), w).sum(-1)
    return _reduce(per_joint, w.amax(-1), reduction)


class RLELoss(nn.Module):
    """RLE loss module owning its flow(s); calls :func:`rle_loss`.

    Args:
        num_dims: D, 2 or 3.
        variant, q, residual, reduction, min_sigma: see :func:`rle_loss`.
        use_2d_flow_for_2d_joints: for ``num_dims == 3``, also own a 2-D flow for joints whose
            z weight is 0 (the official RegressFlow3D; mixed 2-D/3-D training data).
        flow_cfg: keyword arguments for :class:`~rle.flow.RealNVP` (``num_layers``,
            ``hidden_features``, ``init``).

    ``forward`` returns an :class:`RLELossOutput`.
    """

    def __init__(
        self,
        num_dims: int = 2,
        variant: str = "official",
        q: str = "laplace",
        residual: bool = True,
        reduction: str = "batchmean",
        min_sigma: float = 1e-9,
        use_2d_flow_for_2d_joints: bool = False,
        flow_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__()
        if num_dims not in (2, 3):
            raise ValueError(f"num_dims must be 2 or 3, got {num_dims}")
        _check_choice("variant", variant, VARIANTS)
        _check_choice("q", q, Q_DISTRIBUTIONS)
        _check_choice("reduction", reduction, REDUCTIONS)
        flow_cfg = dict(flow_cfg or {})
        self.num_dims = num_dims
        self.variant, self.q, self.residual = variant, q, residual
        self.reduction, self.min_sigma = reduction, min_sigma
        self.flow = RealNVP(features=num_dims, **flow_cfg)
        self.flow_2d = (
            RealNVP(features=2, **flow_cfg) if num_dims == 3 and use_2d_flow_for_2d_joints else None
        )

    def init_weights(self) -> None:
        """Re-initialise the flows with their own scheme (mmengine calls this after a parent's
        ``init_cfg``)."""
        self.flow.init_weights()
        if self.flow_2d is not None:
            self.flow_2d.init_weights()

    def forward(
        self,
        pred: torch.Tensor,
        sigma_logits: torch.Tensor,
        target: torch.Tensor,
        target_weight: Optional[torch.Tensor] = None,
    ) -> RLELossOutput:
        return rle_loss(
            pred,
            sigma_logits,
            target,
            self.flow,
            target_weight,
            flow_2d=self.flow_2d,
            variant=self.variant,
            q=self.q,
            residual=self.residual,
            reduction=self.reduction,
            min_sigma=self.min_sigma,
        )

    def residual_quantiles(self, levels: Sequence[float] = (0.5, 0.68, 0.95)) -> Dict[float, float]:
        """:func:`residual_quantiles` of this loss's (2-D) flow and variant."""
        return residual_quantiles(
            self.flow, levels, variant=self.variant, q=self.q, residual=self.residual
        )

    def extra_repr(self) -> str:
        return (
            f"num_dims={self.num_dims}, variant={self.variant!r}, q={self.q!r}, "
            f"residual={self.residual}, reduction={self.reduction!r}"
        )
