"""rle: keypoint regression with residual log-likelihood estimation.

Modules: :mod:`rle.coords` (the coordinate convention), :mod:`rle.flow` (RealNVP on nflows),
:mod:`rle.losses` (RLE and coordinate losses), :mod:`rle.registry` (mmengine registries).

Shape letters used throughout: B batch, K keypoints, D coordinate dims (x, y[, z]),
H/W map size, S samples, N flattened rows.
"""

from rle.coords import flip_coords, from_frame, from_index, to_frame, to_index
from rle.flow import RealNVP
from rle.losses import RLELoss, coordinate_loss, rle_confidence, rle_loss

__version__ = "0.1.0"

__all__ = [
    "RLELoss",
    "RealNVP",
    "coordinate_loss",
    "flip_coords",
    "from_frame",
    "from_index",
    "rle_confidence",
    "rle_loss",
    "to_frame",
    "to_index",
]
