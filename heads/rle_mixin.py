"""RLELossMixin: what a head trained with the RLE loss knows, shared by the two RLE heads.

A head with an RLE ``loss_module`` (:class:`rle.losses.RLELoss`) predicts mu and sigma; its loss,
its logged components, its confidence and its predictive density follow from the loss module
alone, whatever produces mu (an FC layer in :class:`heads.RLEHead`, a soft-argmax in
:class:`heads.HeatmapRLEHead`).

The predictive density is the one the loss is the negative log of, at fixed sigma: with
``u = (mu - target) / sigma``, ``log p(target) = log r(u) - log Z - sum_d log sigma_d`` where
``log r`` is :func:`rle.losses.residual_log_density` (the flow's density counted as the loss
counts it, times the Q term) and ``Z = int r(u) du`` its normaliser
(:func:`residual_log_normaliser`): ``r`` alone does not integrate to 1.

Shape letters: B batch, K keypoints, D coordinate dims.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from heads.base import HeadOutput
from rle._quadrature import halving_panels
from rle.losses import (
    VARIANTS,
    RLELoss,
    flow_marginal_density,
    residual_log_density,
    rle_confidence,
)

__all__ = ["RLELossMixin", "residual_log_normaliser"]

_REF_EPS = 1e-9  # the references' 1e-9 on sigma (rle.losses)


def residual_log_normaliser(
    flow: nn.Module,
    *,
    variant: str = "official",
    q: str = "laplace",
    residual: bool = True,
    per_panel: Optional[int] = None,
    num_samples: int = 20000,
) -> float:
    """``log Z``, ``Z = int exp(residual_log_density(u)) du`` over ``R^D``: the normaliser of
    the residual density the RLE loss implies (:func:`rle.losses.residual_log_density`).

    Tensor-product quadrature (:func:`rle._quadrature.halving_panels`) on ``[-L, L]^D``, ``L``
    4x the 99.9 %
    quantile of ``|u|`` over ``num_samples`` flow samples (fixed seed: deterministic), as
    :func:`rle.losses.residual_quantiles` sizes its grid, with 6 to 14 (3-D: 8) halving panels
    per side so that the innermost is at most half the samples' median; within ~1e-4 of a
    3001^2 trapezoid reference on trained-like 2-D flows. ``variant="paper"`` without the Q
    term is the flow itself, normalised: exactly 0.

    Args:
        flow: a 2-D or 3-D flow with ``log_prob`` and ``inverse`` (:class:`~rle.flow.RealNVP`).
        variant, q, residual: as :func:`rle.losses.rle_loss`.
        per_panel: Gauss-Legendre nodes per panel; ``None``: 8 in 2-D (at most 50176 points), 4 in
            3-D (at most 262144 points, ~2 s on a CPU).
        num_samples: flow samples that size the domain.

    Returns:
        ``log Z`` (float, nats).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    d = getattr(flow, "features", None)
    if d not in (2, 3):
        raise ValueError(f"residual_log_normaliser needs a 2-D or 3-D flow, got features={d}")
    if variant == "paper" and not residual:
        return 0.0
    per_panel = (8 if d == 2 else 4) if per_panel is None else per_panel
    if not isinstance(per_panel, int) or per_panel < 1:
        raise ValueError(f"per_panel must be a positive int, got {per_panel!r}")
    device = next(flow.parameters()).device
    # float32 even under autocast: a float16 flow would move log Z by far more than 1e-4
    with torch.no_grad(), torch.autocast(device_type=device.type, enabled=False):
        gen = torch.Generator().manual_seed(0)
        samples, _ = flow.inverse(torch.randn(num_samples, d, generator=gen).to(device))
        absz = samples.abs().flatten().cpu()
        half = 4 * float(absz.quantile(0.999)) + 1e-6
        # enough halvings that the inner panel is at most half the median |z|: a flow
        # trained with its variance pinned can put its peak far inside a 6-panel inner panel
        ratio = half / max(float(absz.median()), half * 1e-9)
        panels = int(np.clip(math.ceil(math.log2(ratio)) + 2, 6, 14 if d == 2 else 8))
        nodes, weights = halving_panels(half, panels, per_panel)
        mesh = np.meshgrid(*[nodes] * d, indexing="ij")
        log_w = sum(np.log(w) for w in np.meshgrid(*[weights] * d, indexing="ij")).ravel()
        grid = torch.tensor(np.stack(mesh, -1).reshape(-1, d), dtype=torch.float32, device=device)
        # the flow sees float32 (its training precision), the density maths is float64
        logp = residual_log_density(grid.double(), flow, variant=variant, q=q, residual=residual)
    terms = logp.cpu().numpy() + log_w
    top = terms.max()
    return float(top + math.log(np.exp(terms - top).sum()))


class RLELossMixin:
    """Loss, logged components and confidence of a head that owns an RLE ``loss_module``.

    Mix in before the head base (``class MyHead(RLELossMixin, BaseHead)``) and call
    :meth:`_init_loss_module` in ``__init__`` where the head creates its loss module (the place
    matters: the flow's initialisation draws from the global RNG). ``forward`` must fill
    ``coords``, ``sigma`` and ``sigma_logits`` of :class:`heads.HeadOutput`.
    """

    has_sigma = True
    loss_module: RLELoss

    def _init_loss_module(self, loss_cfg: Optional[Mapping]) -> None:
        """Create ``self.loss_module = RLELoss(num_dims=self.num_dims, **loss_cfg)``.

        Args:
            loss_cfg: keyword arguments of :class:`rle.losses.RLELoss` (``variant``, ``q``,
                ``residual``, ``reduction``, ``use_2d_flow_for_2d_joints``, ``flow_cfg``), or
                ``None`` for the defaults.
        """
        if loss_cfg is not None and not isinstance(loss_cfg, Mapping):
            raise TypeError(
                f"loss_cfg must be a dict of RLELoss arguments or None, got "
                f"{type(loss_cfg).__name__}"
            )
        self.loss_module = RLELoss(num_dims=self.num_dims, **dict(loss_cfg or {}))

    def loss(
        self,
        feats_or_output,
        target: torch.Tensor,
        target_weight: Optional[torch.Tensor] = None,
    ) -> Dict[str, torch.Tensor]:
        """The RLE loss of mu and sigma, and its components.

        Args:
            feats_or_output: backbone features or this head's :class:`heads.HeadOutput`.
            target: ``(B, K, D)`` normalised coordinates.
            target_weight: ``(B, K)``, ``(B, K, 1)``, ``(B, K, D)`` or ``None``.

        Returns:
            ``loss_rle`` (weighted by ``loss_weight``), and the detached components ``rle_nf``
            (flow term), ``rle_q`` (Q term) and ``rle_log_sigma`` (mean ``log sigma``).
        """
        output = self._output(feats_or_output)
        self._check_target(output, target, target_weight)
        out = self.loss_module(output.coords, output.sigma_logits, target, target_weight)
        return {
            "loss_rle": self.loss_weight * out.loss,
            "rle_nf": out.nf_term.detach(),
            "rle_q": out.q_term.detach(),
            "rle_log_sigma": out.log_sigma.detach().mean(),
        }

    def scores(self, output: HeadOutput) -> torch.Tensor:
        """Keypoint confidence ``(B, K)``: :func:`rle.losses.rle_confidence` of sigma, clamped to
        ``[0, 1]``."""
        return rle_confidence(output.sigma).clamp(0.0, 1.0)

    def predictive_sigma(self, feats_or_output) -> torch.Tensor:
        """sigma ``(B, K, D)`` of the output (normalised units): the scale of the loss's
        density, also for :class:`heads.HeatmapRLEHead` (not the spread of its map)."""
        return self._output(feats_or_output).sigma

    def log_normaliser(self) -> float:
        """:func:`residual_log_normaliser` of the loss's flow and variant, cached: recomputed
        only when a flow parameter's value (compared exactly with a saved copy, so an optimiser
        step, ``load_state_dict`` or an in-place edit through ``.data`` all count), device or
        dtype, or the variant changed."""
        lm = self.loss_module
        config = (lm.variant, lm.q, lm.residual)
        params = [p.detach() for p in lm.flow.parameters()]
        cache = self.__dict__.get("_log_normaliser_cache")
        if (
            cache is not None
            and cache[0] == config
            and len(cache[1]) == len(params)
            and all(
                a.device == b.device and a.dtype == b.dtype and torch.equal(a, b)
                for a, b in zip(cache[1], params)
            )
        ):
            return cache[2]
        value = residual_log_normaliser(lm.flow, variant=lm.variant, q=lm.q, residual=lm.residual)
        # a plain attribute (not a buffer): never saved, and a copied head recomputes it
        self.__dict__["_log_normaliser_cache"] = (config, [p.clone() for p in params], value)
        return value

    def _log_scale(self, output: HeadOutput, dtype: torch.dtype) -> torch.Tensor:
        """``log s`` ``(B, K, D)`` of the scale the loss divides the residual by."""
        lm = self.loss_module
        eps = math.log(_REF_EPS)
        if output.sigma_logits is not None:
            logits = output.sigma_logits.to(dtype)
            if lm.variant == "official" and logits.shape[-1] == 3:
                log_s = torch.logaddexp(F.logsigmoid(logits), logits.new_tensor(eps))
            else:
                log_s = F.logsigmoid(logits).clamp_min(math.log(lm.min_sigma))
        else:
            log_s = output.sigma.to(dtype).clamp_min(lm.min_sigma).log()
        if lm.variant == "mmpose":  # its residual is D / (sigma + 1e-9)
            log_s = torch.logaddexp(log_s, log_s.new_tensor(eps))
        return log_s

    def log_likelihood(self, feats_or_output, target: torch.Tensor) -> torch.Tensor:
        """Log density ``(B, K)`` of ``target`` ``(B, K, D)`` (normalised) under the density the
        RLE loss defines (module docstring), per unit of normalised volume, 2-D and 3-D.

        ``log r(u) - log Z - sum_d log s_d`` with ``u = (mu - target) / s`` and ``s`` the scale
        the loss divides by (sigma floored at ``min_sigma``; ``+ 1e-9`` where the variant adds
        it). A 3-D head always scores with its 3-D flow (the 2-D flow of
        ``use_2d_flow_for_2d_joints`` serves training on 2-D-only joints; there is no weight
        here to select it). For ``variant="paper"`` it is minus the loss at
        ``reduction="none"`` up to a constant; the official and MMPose losses count
        ``log sigma`` twice, so as functions of sigma they are no normalised NLL, and this is
        the density of their residual at the predicted sigma. Computed in float32 (float64 for
        float64 inputs) outside autocast, as the loss; differentiable.
        """
        output = self._output(feats_or_output)
        self._check_target(output, target, None)
        lm = self.loss_module
        b, k, d = output.coords.shape
        dtype = torch.float64 if output.coords.dtype == torch.float64 else torch.float32
        with torch.autocast(device_type=output.coords.device.type, enabled=False):
            log_s = self._log_scale(output, dtype)
            u = (output.coords.to(dtype) - target.to(dtype)) / log_s.exp()
            log_r = residual_log_density(
                u.reshape(-1, d), lm.flow, variant=lm.variant, q=lm.q, residual=lm.residual
            ).reshape(b, k)
            return log_r - self.log_normaliser() - log_s.sum(-1)

    def interval_scale(self, levels: Sequence[float]) -> Optional[Dict[float, float]]:
        """Quantiles of the density the RLE loss implies
        (:meth:`rle.losses.RLELoss.residual_quantiles`): ``coords +- k * sigma`` is the
        ``level`` interval. Not a fixed Laplace quantile: the loss learns only the product of
        sigma and the flow's scale. ``None`` for 3-D heads (no 3-D integration yet)."""
        if self.num_dims != 2:
            return None
        return self.loss_module.residual_quantiles(levels)

    def residual_density(self, grid) -> Optional[np.ndarray]:
        """The flow's density of the first residual coordinate on ``grid`` (2-D heads; ``None``
        for 3-D)."""
        if self.num_dims != 2:
            return None
        return flow_marginal_density(self.loss_module.flow, grid)
