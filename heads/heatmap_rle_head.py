"""HeatmapRLEHead: mu from the soft-argmax of a heatmap, sigma from an FC branch, RLE loss."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from heads.base import HeadOutput, HeatmapHead
from heads.functional import heatmap_expectation, spatial_softmax
from heads.rle_head import RLEHead
from rle.losses import RLELoss
from rle.registry import MODELS

__all__ = ["HeatmapRLEHead"]


@MODELS.register_module()
class HeatmapRLEHead(HeatmapHead):
    """The paper's HRNet variant of RLE: a heatmap trunk gives mu by soft-argmax, a linear layer
    on the pooled backbone feature gives sigma, and the pair is trained with the RLE loss.

    Args:
        loss_cfg: keyword arguments of :class:`rle.losses.RLELoss`.
        other arguments: see :class:`heads.base.HeatmapHead` (``loss`` is unused).
    """

    has_sigma = True

    def __init__(self, *args, loss_cfg: Optional[dict] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fc_sigma = nn.Linear(self.in_channels, self.num_keypoints * self.num_dims)
        nn.init.normal_(self.fc_sigma.weight, std=0.01)
        nn.init.zeros_(self.fc_sigma.bias)
        self.loss_module = RLELoss(num_dims=self.num_dims, **dict(loss_cfg or {}))

    def decode(self, logits: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        return heatmap_expectation(heatmaps)

    def forward(self, feats) -> HeadOutput:
        fmap = self._feature_map(feats)
        logits = self.heatmap_logits(fmap)
        heatmaps = spatial_softmax(logits, self.beta)
        pooled = F.adaptive_avg_pool2d(fmap, 1).flatten(1)
        sigma_logits = self.fc_sigma(pooled).view(-1, self.num_keypoints, self.num_dims)
        return HeadOutput(
            heatmap_expectation(heatmaps),
            torch.sigmoid(sigma_logits),
            heatmaps,
            logits,
            sigma_logits,
        )

    # the same RLE loss and confidence as RLEHead (mu from the heatmap instead of an FC layer)
    loss = RLEHead.loss
    scores = RLEHead.scores
