"""HeatmapRLEHead: mu from the soft-argmax of a heatmap, sigma from an FC branch, RLE loss."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from heads.base import HeadOutput, HeatmapHead
from heads.functional import heatmap_expectation
from heads.rle_mixin import RLELossMixin
from rle.amp import full_precision, upcast
from rle.registry import MODELS

__all__ = ["HeatmapRLEHead"]


@MODELS.register_module()
class HeatmapRLEHead(RLELossMixin, HeatmapHead):
    """The paper's HRNet variant of RLE: a heatmap trunk gives mu by soft-argmax, a linear layer
    on the pooled backbone feature gives sigma, and the pair is trained with the RLE loss (loss,
    confidence and predictive density, sigma included: :class:`heads.rle_mixin.RLELossMixin`;
    unlike the other heatmap heads, the map gives mu only, not the density).

    Args:
        loss_cfg: keyword arguments of :class:`rle.losses.RLELoss`.
        other arguments: see :class:`heads.base.HeatmapHead` (``loss`` is unused; ``grid``
            moves mu through :meth:`HeatmapHead.forward`; ``keypoint_scores="peak"`` keeps the
            RLE confidence of the mixin, ``"one"`` gives ones).
    """

    def __init__(self, *args, loss_cfg: Optional[dict] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fc_sigma = nn.Linear(self.in_channels, self.num_keypoints * self.num_dims)
        nn.init.normal_(self.fc_sigma.weight, std=0.01)
        nn.init.zeros_(self.fc_sigma.bias)
        self._init_loss_module(loss_cfg)

    def decode(self, logits: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        return heatmap_expectation(heatmaps)

    def forward(self, feats) -> HeadOutput:
        fmap = self._feature_map(feats)
        output = super().forward(fmap)  # the heatmap branch: mu, heatmaps, logits
        pooled = F.adaptive_avg_pool2d(fmap, 1).flatten(1)
        with full_precision(pooled):  # the output layer in float32 under autocast
            sigma_logits = self.fc_sigma(upcast(pooled))
        sigma_logits = sigma_logits.view(-1, self.num_keypoints, self.num_dims)
        return output._replace(sigma=torch.sigmoid(sigma_logits), sigma_logits=sigma_logits)

    def scores(self, output: HeadOutput) -> torch.Tensor:
        if self.keypoint_scores == "one":
            return HeatmapHead.scores(self, output)
        return super().scores(output)  # RLELossMixin: the confidence of sigma
