"""RegressionHead: pooled features -> coordinates, direct L1 / L2 / smooth-L1 regression."""

from __future__ import annotations

from typing import Dict

import torch
from torch import nn
from torch.nn import functional as F

from heads.base import POOLED_INIT_CFG, BaseHead, HeadOutput
from rle.amp import full_precision, upcast
from rle.losses import COORDINATE_LOSSES, coordinate_loss
from rle.registry import MODELS

__all__ = ["RegressionHead"]


@MODELS.register_module()
class RegressionHead(BaseHead):
    """The direct-regression baseline (DeepPose style): global average pooling, one linear layer.

    It has no confidence: :meth:`predict` scores every keypoint 1. Nor a density: an L1 (or L2)
    point estimate defines no predictive distribution, so ``predict``'s sigma,
    :meth:`~heads.base.BaseHead.interval_scale` and
    :meth:`~heads.base.BaseHead.log_likelihood` are ``None``.

    Args:
        *args, **kwargs: ``in_channels``, ``num_keypoints``, ``num_dims``, ``loss_weight``,
            ``init_cfg`` of :class:`heads.base.BaseHead`.
        loss: ``"l1"`` (RLE paper's baseline), ``"l2"``, ``"smooth_l1"`` (MMPose's) or
            ``"euclidean"``.
    """

    default_init_cfg = POOLED_INIT_CFG

    def __init__(self, *args, loss: str = "l1", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if loss not in COORDINATE_LOSSES:
            raise ValueError(f"loss must be one of {COORDINATE_LOSSES}, got {loss!r}")
        self.loss_kind = loss
        self.fc = nn.Linear(self.in_channels, self.num_keypoints * self.num_dims)

    def forward(self, feats) -> HeadOutput:
        x = F.adaptive_avg_pool2d(self._feature_map(feats), 1).flatten(1)
        with full_precision(x):  # the output layer in float32 under autocast
            coords = self.fc(upcast(x))
        return HeadOutput(coords=coords.view(x.shape[0], self.num_keypoints, self.num_dims))

    def loss(self, feats_or_output, target, target_weight=None) -> Dict[str, torch.Tensor]:
        output = self._output(feats_or_output)
        self._check_target(output, target, target_weight)
        value = coordinate_loss(output.coords, target, target_weight, kind=self.loss_kind)
        return {"loss_kpt": self.loss_weight * value}
