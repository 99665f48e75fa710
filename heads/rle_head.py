"""RLEHead: pooled features -> mu and sigma, trained with the residual log-likelihood loss."""

from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import nn
from torch.nn import functional as F

from heads.base import BaseHead, HeadOutput
from rle.losses import RLELoss, rle_confidence
from rle.registry import MODELS

__all__ = ["RLEHead"]


@MODELS.register_module()
class RLEHead(BaseHead):
    """Regression with RLE (Li et al., ICCV 2021), 2-D or 3-D.

    Global average pooling, then ``fc_coord`` (mu) and ``fc_sigma`` (sigma logits). As in the
    official model, ``fc_coord`` acts on the L2-normalised pooled feature
    (``normalize_feats=True``): the coordinate scale does not follow the feature norm.

    Args:
        in_channels, num_keypoints, num_dims, loss_weight, init_cfg: see :class:`BaseHead`.
        normalize_feats: divide ``fc_coord``'s product by the feature norm (official RLE).
        loss_cfg: keyword arguments of :class:`rle.losses.RLELoss` (``variant``, ``q``,
            ``residual``, ``reduction``, ``use_2d_flow_for_2d_joints``, ``flow_cfg``).
    """

    has_sigma = True

    def __init__(
        self,
        in_channels: int,
        num_keypoints: int,
        num_dims: int = 2,
        normalize_feats: bool = True,
        loss_cfg: Optional[dict] = None,
        loss_weight: float = 1.0,
        init_cfg=None,
    ) -> None:
        if init_cfg is None:
            init_cfg = dict(type="Normal", layer="Linear", std=0.01, bias=0)
        super().__init__(in_channels, num_keypoints, num_dims, loss_weight, init_cfg)
        self.normalize_feats = normalize_feats
        self.fc_coord = nn.Linear(in_channels, num_keypoints * num_dims)
        self.fc_sigma = nn.Linear(in_channels, num_keypoints * num_dims)
        self.loss_module = RLELoss(num_dims=num_dims, **dict(loss_cfg or {}))

    def forward(self, feats) -> HeadOutput:
        x = F.adaptive_avg_pool2d(self._feature_map(feats), 1).flatten(1)
        shape = (x.shape[0], self.num_keypoints, self.num_dims)
        if self.normalize_feats:
            # clamp: an all-zero feature (dead ReLUs) would otherwise divide by zero
            norm = torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min(1e-6)
            coords = F.linear(x, self.fc_coord.weight) / norm + self.fc_coord.bias
        else:
            coords = self.fc_coord(x)
        sigma_logits = self.fc_sigma(x).view(shape)
        return HeadOutput(coords.view(shape), torch.sigmoid(sigma_logits), None, None, sigma_logits)

    def loss(self, feats_or_output, target, target_weight=None) -> Dict[str, torch.Tensor]:
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
        return rle_confidence(output.sigma).clamp(0.0, 1.0)
