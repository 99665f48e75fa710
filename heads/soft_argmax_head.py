"""SoftArgmaxHead: integral pose regression (IPR), the expectation of ``softmax(beta * h)``."""

from __future__ import annotations

import torch

from heads.base import HeatmapHead
from heads.functional import heatmap_expectation
from rle.registry import MODELS

__all__ = ["SoftArgmaxHead"]


@MODELS.register_module()
class SoftArgmaxHead(HeatmapHead):
    """IPR (Sun et al., ECCV 2018): soft-argmax of the heatmap, trained with a coordinate loss.

    2-D maps ``(B, K, H, W)``, or volumetric ``(B, K, Dz, H, W)`` with ``num_dims=3``.
    Arguments: see :class:`heads.base.HeatmapHead` (``beta``, ``loss``, trunk, ``depth_bins``;
    ``grid="mmpose"``, ``input_size`` and ``keypoint_scores="one"`` reproduce MMPose's
    ``IntegralRegressionHead``).
    """

    def decode(self, logits: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        return heatmap_expectation(heatmaps)
