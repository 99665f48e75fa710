"""DebiasedIPRHead: soft-argmax with the softmax background bias removed."""

from __future__ import annotations

import torch

from heads.base import HeatmapHead
from heads.functional import debiased_soft_argmax
from rle.registry import MODELS

__all__ = ["DebiasedIPRHead"]


@MODELS.register_module()
class DebiasedIPRHead(HeatmapHead):
    """Debiased IPR (Gu, Yang, Yao, ICCV 2021), trained through the compensation.

    Args:
        max_ratio: guard on ``r = N / C`` (:func:`heads.functional.debiased_soft_argmax`).
        other arguments: see :class:`heads.base.HeatmapHead`; the compensation matters most at
            low ``beta``. The compensation commutes with a constant grid shift, so ``grid``
            is applied by :meth:`heads.base.HeatmapHead.forward` after :meth:`decode`.

    Its predictive density (sigma, intervals, log-likelihood) is the softmax map's, as for every
    heatmap head: the background mass the compensation removes from the mean stays in the
    spread, so sigma grows with ``r`` (post-hoc calibration rescales it).
    """

    def __init__(self, *args, max_ratio: float = 0.99, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not 0 < max_ratio < 1:
            raise ValueError(f"max_ratio must be in (0, 1), got {max_ratio!r}")
        self.max_ratio = float(max_ratio)

    def decode(self, logits: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        return debiased_soft_argmax(logits, self.beta, max_ratio=self.max_ratio, heatmaps=heatmaps)
