"""RLELossMixin: what a head trained with the RLE loss knows, shared by the two RLE heads.

A head with an RLE ``loss_module`` (:class:`rle.losses.RLELoss`) predicts mu and sigma; its loss,
its logged components and its confidence follow from the loss module alone, whatever produces mu
(an FC layer in :class:`heads.RLEHead`, a soft-argmax in :class:`heads.HeatmapRLEHead`).

Shape letters: B batch, K keypoints, D coordinate dims.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Dict, Optional, Sequence

import numpy as np
import torch

from heads.base import HeadOutput
from rle.losses import RLELoss, flow_marginal_density, rle_confidence

__all__ = ["RLELossMixin"]


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
