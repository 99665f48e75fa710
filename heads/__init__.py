"""Keypoint heads under one interface, and the heatmap decoders they compare.

Importing this package registers every head in the ``rle`` mmengine registry
(:data:`rle.registry.MODELS`) under its class name. The interface and the shared bodies are in
:mod:`heads.base`, what the RLE heads share in :mod:`heads.rle_mixin`, the decoders (pure
functions) in :mod:`heads.functional`, and each head in a module of its own.

Every head but the plain regression one predicts a distribution of each keypoint:
``predict().sigma``, ``interval_scale(levels)`` and ``log_likelihood(feats_or_output, target)``
(RLE heads: the density their loss defines; heatmap heads: the map itself).

Shape letters: B batch, C channels, K keypoints, D coordinate dims, H/W map size, Dz depth bins,
S samples. Coordinates are normalised (:mod:`rle.coords`).
"""

from heads.base import BaseHead, HeadOutput, HeatmapHead, Prediction
from heads.debiased_ipr_head import DebiasedIPRHead
from heads.dsnt_head import DSNTHead
from heads.heatmap_rle_head import HeatmapRLEHead
from heads.regression_head import RegressionHead
from heads.rle_head import RLEHead
from heads.rle_mixin import RLELossMixin
from heads.sampling_argmax_head import SamplingArgmaxHead
from heads.soft_argmax_head import SoftArgmaxHead

__all__ = [
    "BaseHead",
    "DSNTHead",
    "DebiasedIPRHead",
    "HeadOutput",
    "HeatmapHead",
    "HeatmapRLEHead",
    "Prediction",
    "RLEHead",
    "RLELossMixin",
    "RegressionHead",
    "SamplingArgmaxHead",
    "SoftArgmaxHead",
]
