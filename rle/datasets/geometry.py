"""Top-down crop geometry: boxes to crops, the affine warp and its exact inverse.

Image coordinates are cv2 index units: pixel ``(i, j)`` has its centre at ``x = j, y = i`` and
covers ``[j - 0.5, j + 0.5]``; COCO keypoints are used as given in this frame. A crop of
``input_size = (w_in, h_in)`` pixels shows the box ``center +- scale / 2`` (``scale = (bw, bh)``
in image pixels): the box edge ``cx - bw/2`` maps to the crop's left edge ``-0.5`` and
``cx + bw/2`` to ``w_in - 0.5``, so crop index units convert to the project's normalised
coordinates with :func:`rle.coords.from_index` and the box centre lands on normalised 0.

``get_warp_matrix(..., inv=True)`` is the exact inverse of the forward matrix (the decode path
uses it): a crop -> normalised -> image round trip holds to float precision.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np

__all__ = [
    "bbox_xywh_to_center_scale",
    "bbox_xyxy_to_center_scale",
    "fix_aspect_ratio",
    "get_warp_matrix",
    "warp_points",
]


def _as_pair(value, name: str) -> Tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be 2 finite numbers, got {value!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"{name} must be 2 finite numbers, got {value!r}")
    return a, b


def fix_aspect_ratio(scale: Sequence[float], aspect_ratio: float) -> np.ndarray:
    """Grow the shorter side of ``scale = (w, h)`` so that ``w / h == aspect_ratio``."""
    w, h = _as_pair(scale, "scale")
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    return np.array([w, h], dtype=np.float64)


def bbox_xywh_to_center_scale(
    bbox: Sequence[float], aspect_ratio: float, padding: float = 1.25
) -> Tuple[np.ndarray, np.ndarray]:
    """COCO ``[x, y, w, h]`` box (pixel-edge coordinates) -> ``(center, scale)`` in index
    units, the scale padded by ``padding`` and grown to ``aspect_ratio = w_in / h_in``.

    Raises:
        ValueError: a degenerate box (non-finite, or width/height <= 0).
    """
    x, y, w, h = (float(v) for v in np.asarray(bbox, dtype=np.float64).reshape(4))
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise ValueError(f"degenerate bbox [x, y, w, h] = {list(bbox)}")
    # COCO boxes are in pixel-edge coordinates: the centre in index units is shifted by -0.5
    center = np.array([x + w / 2 - 0.5, y + h / 2 - 0.5], dtype=np.float64)
    return center, fix_aspect_ratio((w * padding, h * padding), aspect_ratio)


def bbox_xyxy_to_center_scale(
    bbox: Sequence[float], aspect_ratio: float, padding: float = 1.25
) -> Tuple[np.ndarray, np.ndarray]:
    """``[x1, y1, x2, y2]`` (pixel-edge coordinates) -> ``(center, scale)``; see
    :func:`bbox_xywh_to_center_scale`."""
    x1, y1, x2, y2 = (float(v) for v in np.asarray(bbox, dtype=np.float64).reshape(4))
    return bbox_xywh_to_center_scale([x1, y1, x2 - x1, y2 - y1], aspect_ratio, padding)


def get_warp_matrix(
    center: Sequence[float],
    scale: Sequence[float],
    rotation: float,
    output_size: Sequence[int],
    inv: bool = False,
) -> np.ndarray:
    """The ``(2, 3)`` affine matrix from image index coordinates to crop index coordinates.

    Args:
        center: box centre ``(cx, cy)``, image index units.
        scale: box size ``(bw, bh)`` in image pixels (only ``bw`` sets the zoom; the aspect
            ratio of ``scale`` should match ``output_size``).
        rotation: degrees; positive values rotate the content counter-clockwise in the crop
            (the convention of ``cv2.getRotationMatrix2D``).
        output_size: ``(w_in, h_in)``.
        inv: return the crop -> image matrix instead.
    """
    cx, cy = _as_pair(center, "center")
    bw, bh = _as_pair(scale, "scale")
    w_out, h_out = _as_pair(output_size, "output_size")
    if bw <= 0 or bh <= 0:
        raise ValueError(f"scale must be positive, got {list(scale)}")
    zoom = w_out / bw
    theta = math.radians(rotation)
    cos, sin = math.cos(theta) * zoom, math.sin(theta) * zoom
    # u = R * zoom * (x - c) + crop_centre, crop centre in index units
    ox, oy = (w_out - 1) / 2.0, (h_out - 1) / 2.0
    fwd = np.array(
        [[cos, sin, ox - cos * cx - sin * cy], [-sin, cos, oy + sin * cx - cos * cy]],
        dtype=np.float64,
    )
    if not inv:
        return fwd
    lin_inv = np.linalg.inv(fwd[:, :2])
    return np.concatenate([lin_inv, -lin_inv @ fwd[:, 2:]], axis=1)


def warp_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a ``(2, 3)`` affine matrix to points ``(..., 2)``."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape[-1] != 2:
        raise ValueError(f"points must have shape (..., 2), got {pts.shape}")
    return pts @ matrix[:, :2].T + matrix[:, 2]
