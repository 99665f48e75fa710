"""Datasets, transforms and synthetic data for top-down keypoint training.

Data-sample dicts (one person instance) use these keys, MMPose-compatible where they exist:

* ``img_path`` str, ``img`` (H, W, 3) uint8 BGR, ``img_shape`` (h, w), ``img_id``, ``id``
* ``bbox`` (4,) xyxy pixel-edge coordinates, ``bbox_score``
* ``bbox_center`` (2,) and ``bbox_scale`` (2,) (w, h) in image index units / pixels
* ``keypoints`` (K, 2) image index units (pixel centre = integer), ``keypoints_visible`` (K,)
  COCO visibility v in {0, 1, 2}
* 3-D: ``keypoints_cam`` (K, 3) camera frame in mm, ``camera`` dict (f, c, ...)
* after the crop: ``input_size`` (w, h), ``warp_mat`` (2, 3) image -> crop index units
* after encoding: ``keypoint_labels`` (K, D) normalised crop coordinates
  (:mod:`rle.coords`), ``keypoint_weights`` (K,)
"""

from rle.datasets import transforms
from rle.datasets.coco import CocoKeypointDataset, flip_indices_from_names
from rle.datasets.geometry import (
    bbox_xywh_to_center_scale,
    bbox_xyxy_to_center_scale,
    fix_aspect_ratio,
    get_warp_matrix,
    warp_points,
)
from rle.datasets.h36m import H36MDataset
from rle.datasets.synthetic import SynthCocoDataset, SynthH36MDataset
from rle.datasets.transforms import *  # noqa: F403 - the registered transforms, transforms.__all__

__all__ = [
    "CocoKeypointDataset",
    "H36MDataset",
    "SynthCocoDataset",
    "SynthH36MDataset",
    "bbox_xywh_to_center_scale",
    "bbox_xyxy_to_center_scale",
    "fix_aspect_ratio",
    "flip_indices_from_names",
    "get_warp_matrix",
    "warp_points",
    *transforms.__all__,
]
