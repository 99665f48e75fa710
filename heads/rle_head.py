"""RLEHead: pooled features -> mu and sigma, trained with the residual log-likelihood loss."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from heads.base import POOLED_INIT_CFG, BaseHead, HeadOutput
from heads.rle_mixin import RLELossMixin
from rle.amp import full_precision, upcast
from rle.registry import MODELS

__all__ = ["RLEHead"]


@MODELS.register_module()
class RLEHead(RLELossMixin, BaseHead):
    """Regression with RLE (Li et al., ICCV 2021), 2-D or 3-D.

    Global average pooling, then ``fc_coord`` (mu) and ``fc_sigma`` (sigma logits). As in the
    official model, ``fc_coord`` acts on the L2-normalised pooled feature
    (``normalize_feats=True``): the coordinate scale does not follow the feature norm. Loss and
    confidence: :class:`heads.rle_mixin.RLELossMixin`.

    Args:
        *args, **kwargs: ``in_channels``, ``num_keypoints``, ``num_dims``, ``loss_weight``,
            ``init_cfg`` of :class:`heads.base.BaseHead`.
        normalize_feats: divide ``fc_coord``'s product by the feature norm (official RLE).
        loss_cfg: keyword arguments of :class:`rle.losses.RLELoss` (``variant``, ``q``,
            ``residual``, ``reduction``, ``use_2d_flow_for_2d_joints``, ``flow_cfg``).
    """

    default_init_cfg = POOLED_INIT_CFG

    def __init__(
        self, *args, normalize_feats: bool = True, loss_cfg: Optional[dict] = None, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self.normalize_feats = normalize_feats
        out_features = self.num_keypoints * self.num_dims
        self.fc_coord = nn.Linear(self.in_channels, out_features)
        self.fc_sigma = nn.Linear(self.in_channels, out_features)
        self._init_loss_module(loss_cfg)

    def forward(self, feats) -> HeadOutput:
        x = F.adaptive_avg_pool2d(self._feature_map(feats), 1).flatten(1)
        shape = (x.shape[0], self.num_keypoints, self.num_dims)
        with full_precision(x):  # the output layers in float32 under autocast
            x = upcast(x)
            if self.normalize_feats:
                # clamp: an all-zero feature (dead ReLUs) would otherwise divide by zero
                norm = torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min(1e-6)
                coords = F.linear(x, self.fc_coord.weight) / norm + self.fc_coord.bias
            else:
                coords = self.fc_coord(x)
            sigma_logits = self.fc_sigma(x).view(shape)
        return HeadOutput(
            coords=coords.view(shape), sigma=torch.sigmoid(sigma_logits), sigma_logits=sigma_logits
        )
