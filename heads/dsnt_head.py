"""DSNTHead: DSNT coordinates with a heatmap regulariser (dsntnn semantics)."""

from __future__ import annotations

from typing import Dict, Optional

import torch

from heads.base import HeatmapHead
from heads.functional import dsnt, euclidean_losses, js_reg, kl_reg, variance_reg
from rle.losses import apply_weight, mask_unweighted
from rle.registry import MODELS

__all__ = ["DSNTHead"]

_REGS = (None, "js", "kl", "variance")


@MODELS.register_module()
class DSNTHead(HeatmapHead):
    """DSNT (Nibali et al. 2018): ``mean_k [ euclidean(coords, target) + w * reg(heatmap) ]``.

    Both terms are per location and averaged over the weighted joints, so their scales are
    comparable (MMPose sums JS over pixels while averaging the coordinate term: its JS term
    dominates by ~400x). Distances are measured in dsntnn's ``[-1, 1]`` frame
    (``coord_scale=2``), which makes the objective equal to dsntnn's.

    Args:
        reg: ``"js"`` (default), ``"kl"``, ``"variance"`` or ``None``.
        sigma_t: target Gaussian standard deviation in heatmap bins.
        reg_weight: weight of the regulariser.
        coord_scale: factor on normalised distances (2 = dsntnn's frame).
        other arguments: see :class:`heads.base.HeatmapHead` (``grid``, ``input_size``,
            ``keypoint_scores``; with ``grid="mmpose"`` the regulariser's target Gaussian
            follows the grid).
    """

    def __init__(
        self,
        *args,
        reg: Optional[str] = "js",
        sigma_t: float = 1.0,
        reg_weight: float = 1.0,
        coord_scale: float = 2.0,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        if reg not in _REGS:
            raise ValueError(f"reg must be one of {_REGS}, got {reg!r}")
        if not sigma_t > 0:
            raise ValueError(f"sigma_t must be positive, got {sigma_t!r}")
        self.reg = reg
        self.sigma_t = float(sigma_t)
        self.reg_weight = float(reg_weight)
        self.coord_scale = float(coord_scale)

    def decode(self, logits: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        return dsnt(heatmaps)

    def loss(self, feats_or_output, target, target_weight=None) -> Dict[str, torch.Tensor]:
        output = self._output(feats_or_output)
        self._check_target(output, target, target_weight)
        b, k, _ = target.shape
        joint_w = (
            target.new_ones(b, k)
            if target_weight is None
            else target_weight.reshape(b, k, -1).amax(-1).to(target.dtype)
        )
        denom = joint_w.sum().clamp(min=1)
        # a NaN label of an unsupervised joint would reach both terms (and their gradients)
        target = mask_unweighted(target, joint_w.unsqueeze(-1))
        euc = euclidean_losses(output.coords * self.coord_scale, target * self.coord_scale)
        losses = {"loss_kpt": self.loss_weight * apply_weight(euc, joint_w).sum() / denom}
        if self.reg is not None:
            heatmaps = output.heatmaps
            # the target Gaussian lives on the bin-centre grid of the map: move the target
            # there from the decoding grid (grid="mmpose"), as the coordinates were moved
            offset = self.grid_offset(heatmaps)
            if offset is not None:
                target = target - offset
            if self.reg == "variance":
                reg = variance_reg(heatmaps, self.sigma_t)
            elif self.reg == "js":
                reg = js_reg(heatmaps, target, self.sigma_t)
            else:
                reg = kl_reg(heatmaps, target, self.sigma_t)
            losses["loss_reg"] = self.reg_weight * apply_weight(reg, joint_w).sum() / denom
        return losses
