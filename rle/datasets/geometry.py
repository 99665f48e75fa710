"""Top-down crop geometry: boxes to crops, the affine warp and its exact inverse.

Image coordinates are cv2 index units: pixel ``(i, j)`` has its centre at ``x = j, y = i`` and
covers ``[j - 0.5, j + 0.5]``; COCO keypoints are used as given in this frame. A crop of
``input_size = (w_in, h_in)`` pixels shows the box ``center +- scale / 2`` (``scale = (bw, bh)``
in image pixels): the box edge ``cx - bw/2`` maps to the crop's left edge ``-0.5`` and
``cx + bw/2`` to ``w_in - 0.5``, so crop index units convert to the project's normalised
coordinates with :func:`rle.coords.from_index` and the box centre lands on normalised 0.

``get_warp_matrix(..., inv=True)`` is the exact inverse of the forward matrix (the decode path
uses it): a crop -> normalised -> image round trip holds to float precision.

Pixel conventions (``convention``, one of :data:`CONVENTIONS`; a config sets it once, see
:func:`rle.engine.load_config`):

* ``"rle"`` (the default, ours): box centre ``(x1 + x2)/2 - 0.5`` (box edges are pixel edges,
  the centre is in index units) mapped to the crop centre ``((w-1)/2, (h-1)/2)``, float64.
  Self-consistent: the crop of a mirrored image is the exact mirror of the crop, so the flip
  test is a plain negation.
* ``"mmpose"``: MMPose 1.x's, reproduced bit for bit: box centre ``(x1 + x2)/2`` mapped to
  ``(w/2, h/2)``, centre, scale and the three warp points in float32 and the matrix from
  ``cv2.getAffineTransform`` (as MMPose's ``get_warp_matrix``), a flipped box centre at
  ``W - cx``. The same box gives a crop shifted by a sub-pixel amount against ours; decoding with
  the matching inverse warp makes the decoded keypoints of one model differ between the two
  conventions by ``0.5 (s/n - 1)`` image px per axis (``s`` box size, ``n`` crop size). Needed
  to reproduce the predictions of a checkpoint trained with MMPose.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np

__all__ = [
    "CONVENTIONS",
    "bbox_xywh_to_center_scale",
    "bbox_xyxy_to_center_scale",
    "box_center",
    "check_convention",
    "fix_aspect_ratio",
    "flip_center_x",
    "get_warp_matrix",
    "warp_points",
]


#: the pixel conventions of the crop geometry (module docstring)
CONVENTIONS = ("rle", "mmpose")


def check_convention(convention) -> str:
    """``convention`` if it is one of :data:`CONVENTIONS`, else ``ValueError``."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    return convention


def _as_pair(value, name: str) -> Tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be 2 finite numbers, got {value!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"{name} must be 2 finite numbers, got {value!r}")
    return a, b


def fix_aspect_ratio(
    scale: Sequence[float], aspect_ratio: float, convention: str = "rle"
) -> np.ndarray:
    """Grow the shorter side of ``scale = (w, h)`` so that ``w / h == aspect_ratio``: float64, or
    float32 arithmetic as MMPose's ``TopdownAffine`` for ``convention="mmpose"``."""
    check_convention(convention)
    w, h = _as_pair(scale, "scale")
    if convention == "mmpose":
        w, h = np.float32(w), np.float32(h)
        if w > h * aspect_ratio:
            return np.array([w, w / np.float32(aspect_ratio)], dtype=np.float32)
        return np.array([h * np.float32(aspect_ratio), h], dtype=np.float32)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    return np.array([w, h], dtype=np.float64)


def box_center(bbox: Sequence[float], convention: str = "rle") -> np.ndarray:
    """Centre ``(cx, cy)`` of an ``[x1, y1, x2, y2]`` box (pixel edges) in image index units:
    ``(x1 + x2)/2 - 0.5`` (``"rle"``, float64) or MMPose's ``(x1 + x2)/2`` in float32."""
    check_convention(convention)
    if convention == "mmpose":
        box = np.asarray(bbox, dtype=np.float32).reshape(4)
        return (box[:2] + box[2:]) * np.float32(0.5)
    x1, y1, x2, y2 = (float(v) for v in np.asarray(bbox, dtype=np.float64).reshape(4))
    return np.array([(x1 + x2) / 2 - 0.5, (y1 + y2) / 2 - 0.5])


def flip_center_x(cx: float, width: int, convention: str = "rle") -> float:
    """The x of a box centre after mirroring an image of ``width`` pixels: ``W - 1 - cx`` for
    index-unit centres (``"rle"``), ``W - cx`` for MMPose's (its centres sit half a pixel right
    of the box's index-unit middle, and its flip keeps that)."""
    check_convention(convention)
    return (width - cx) if convention == "mmpose" else (width - 1) - cx


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
    convention: str = "rle",
) -> np.ndarray:
    """The ``(2, 3)`` affine matrix from image index coordinates to crop index coordinates.

    Args:
        center: box centre ``(cx, cy)``, image index units (in ``convention``).
        scale: box size ``(bw, bh)`` in image pixels (only ``bw`` sets the zoom; the aspect
            ratio of ``scale`` should match ``output_size``).
        rotation: degrees; positive values rotate the content counter-clockwise in the crop
            (the convention of ``cv2.getRotationMatrix2D``), in both conventions.
        output_size: ``(w_in, h_in)``.
        inv: return the crop -> image matrix instead.
        convention: ``"rle"`` (the centre lands on ``((w-1)/2, (h-1)/2)``, float64, exact
            inverse) or ``"mmpose"`` (on ``(w/2, h/2)``, MMPose's float32 three-point
            construction through ``cv2.getAffineTransform``, the inverse solved the same way).
    """
    check_convention(convention)
    cx, cy = _as_pair(center, "center")
    bw, bh = _as_pair(scale, "scale")
    w_out, h_out = _as_pair(output_size, "output_size")
    if bw <= 0 or bh <= 0:
        raise ValueError(f"scale must be positive, got {list(scale)}")
    if convention == "mmpose":
        return _mmpose_warp_matrix(center, bw, rotation, (w_out, h_out), inv)
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


def _mmpose_warp_matrix(center, bw: float, rotation: float, output_size, inv: bool) -> np.ndarray:
    """MMPose's warp: three float32 point pairs (the centre, the point half a box width along
    the rotated x axis, and the point a quarter turn from it) solved by cv2. Reproducing its
    float32 rounding makes the crops identical to MMPose's (a float64 matrix moves a few crop
    pixels by one grey level, which a network can turn into hundredths of a pixel)."""
    import cv2

    w_out, h_out = output_size
    # the source direction rotated by the angle: a positive rotation turns the content
    # counter-clockwise in the crop, as in the "rle" convention (and MMPose's)
    theta = np.deg2rad(float(rotation))
    sn, cs = np.sin(theta), np.cos(theta)
    src_dir = np.array([[cs, -sn], [sn, cs]]) @ np.array([bw * -0.5, 0.0])
    dst_dir = np.array([w_out * -0.5, 0.0])
    c = np.asarray(center, dtype=np.float32).reshape(2)
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0], src[1] = c, c + src_dir
    dst[0] = (w_out * 0.5, h_out * 0.5)
    dst[1] = np.array([w_out * 0.5, h_out * 0.5]) + dst_dir
    for pts in (src, dst):
        d = pts[0] - pts[1]
        pts[2] = pts[1] + np.array([-d[1], d[0]])
    if inv:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def warp_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a ``(2, 3)`` affine matrix to points ``(..., 2)``."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape[-1] != 2:
        raise ValueError(f"points must have shape (..., 2), got {pts.shape}")
    return pts @ matrix[:, :2].T + matrix[:, 2]
