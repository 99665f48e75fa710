"""The one coordinate convention of rle-pose, and converters to every reference frame.

Normalised coordinates
----------------------
Every decoder, head, loss and target in this project uses *normalised* coordinates in
``[-0.5, 0.5]`` of the map (or crop) they refer to, measured on the continuous pixel extent::

      bin:        0         1         2               n-1
             |---------|---------|---------| ... |---------|
    value: -0.5                  0                       +0.5
    centre of bin j:   (j + 0.5) / n - 0.5

* A horizontal flip is exact negation, ``x -> -x`` (bin ``j`` <-> bin ``n-1-j``): no ``-1/W``
  shifts anywhere, unlike the official RLE / IPR / sampling-argmax frame.
* The value does not depend on resolution: a heatmap of stride ``s`` covers exactly the crop it
  came from, so a normalised coordinate means the same point on the heatmap and on the input crop.
* The centre of the map is exactly 0.

Coordinates are stored last-axis first-spatial: ``(..., D)`` with order ``(x, y[, z])`` i.e.
``(W, H[, Dz])`` while maps are ``(B, K, [Dz,] H, W)``. ``sizes`` arguments follow the coordinate
order: ``(W,)``, ``(W, H)`` or ``(W, H, Dz)``.

Reference frames (``j`` = 0-based bin index, ``n`` = size along the axis)
--------------------------------------------------------------------------
=================  ===========================  ============================================
frame              value of bin ``j``            used by
=================  ===========================  ============================================
``"norm"``         ``(j + 0.5)/n - 0.5``         this project
``"index"``        ``j``                         pixel/bin index units (cv2 pixel centres)
``"rle"``          ``j/n - 0.5``                 official RLE, official IPR, sampling-argmax
``"mmpose"``       ``j/n``                       MMPose RLE / IPR / DSNT heads
``"dsntnn"``       ``(2j + 1)/n - 1``            dsntnn (= 2 x ``"norm"``)
``"kornia"``       ``2j/(n - 1) - 1``            kornia ``normalized_coordinates=True``
=================  ===========================  ============================================

Shape letters: B batch, K keypoints, D coordinate dims, H/W map size, S samples.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch

__all__ = [
    "FRAMES",
    "coordinate_grid",
    "flip_coords",
    "from_frame",
    "from_index",
    "index_to_norm",
    "norm_to_index",
    "to_frame",
    "to_index",
]

FRAMES = ("norm", "index", "rle", "mmpose", "dsntnn", "kornia")

SizeLike = Union[int, Sequence[int]]


def index_to_norm(index, n):
    """The convention's formula, index units -> normalised: ``(j + 0.5) / n - 0.5``.

    The one place the formula is written. No validation, and the arithmetic is exactly the
    expression above, so it works on any array type (torch tensors, numpy arrays, Python floats)
    and gives the same bits as writing the expression out. Prefer :func:`from_index` for
    validated tensors.

    Args:
        index: ``(..., D)`` (or any shape) coordinates in bin index units.
        n: the number of bins: a scalar, or sizes broadcasting against ``index`` (``(D,)``).

    Returns:
        normalised coordinates, the shape of ``index`` broadcast with ``n``.
    """
    return (index + 0.5) / n - 0.5


def norm_to_index(coords, n):
    """Inverse of :func:`index_to_norm`: ``(c + 0.5) * n - 0.5`` (any array type, no validation).

    Args:
        coords: ``(..., D)`` (or any shape) normalised coordinates.
        n: the number of bins: a scalar, or sizes broadcasting against ``coords`` (``(D,)``).

    Returns:
        coordinates in bin index units, the shape of ``coords`` broadcast with ``n``.
    """
    return (coords + 0.5) * n - 0.5


def _sizes(coords: torch.Tensor, sizes: SizeLike) -> torch.Tensor:
    if not isinstance(coords, torch.Tensor):
        raise TypeError(f"coords must be a torch.Tensor, got {type(coords).__name__}")
    if isinstance(sizes, int):
        sizes = (sizes,)
    sizes = tuple(int(s) for s in sizes)
    if coords.dim() < 1 or coords.shape[-1] != len(sizes):
        raise ValueError(
            f"coords must have shape (..., D) with D == len(sizes) == {len(sizes)}, "
            f"got {tuple(coords.shape)}"
        )
    if any(s < 1 for s in sizes):
        raise ValueError(f"sizes must be positive, got {sizes}")
    dtype = coords.dtype if coords.is_floating_point() else torch.get_default_dtype()
    return torch.tensor(sizes, dtype=dtype, device=coords.device)


def to_index(coords: torch.Tensor, sizes: SizeLike) -> torch.Tensor:
    """Normalised coordinates -> bin index units (``j``, the centre of bin ``j``).

    Args:
        coords: ``(..., D)`` normalised coordinates, order ``(x, y[, z])``.
        sizes: map size per coordinate, ``(W[, H[, Dz]])``.

    Returns:
        ``(..., D)`` coordinates in index units: ``(c + 0.5) * n - 0.5``.
    """
    return norm_to_index(coords, _sizes(coords, sizes))


def from_index(index: torch.Tensor, sizes: SizeLike) -> torch.Tensor:
    """Bin index units -> normalised coordinates: ``(j + 0.5) / n - 0.5``.

    Args:
        index: ``(..., D)`` coordinates in index units, order ``(x, y[, z])``.
        sizes: map size per coordinate, ``(W[, H[, Dz]])``.
    """
    return index_to_norm(index, _sizes(index, sizes))


def _check_frame(frame: str) -> None:
    if frame not in FRAMES:
        raise ValueError(f"frame must be one of {FRAMES}, got {frame!r}")


def to_frame(coords: torch.Tensor, sizes: SizeLike, frame: str) -> torch.Tensor:
    """Normalised coordinates -> the reference ``frame`` (see the module table).

    Args:
        coords: ``(..., D)`` normalised coordinates.
        sizes: ``(W[, H[, Dz]])``.
        frame: one of :data:`FRAMES`.

    Returns:
        ``(..., D)`` coordinates in ``frame``.
    """
    _check_frame(frame)
    if frame == "norm":
        _sizes(coords, sizes)
        return coords
    n = _sizes(coords, sizes)
    j = norm_to_index(coords, n)
    if frame == "index":
        return j
    if frame == "rle":
        return j / n - 0.5
    if frame == "mmpose":
        return j / n
    if frame == "dsntnn":
        return 2.0 * coords
    # kornia: align_corners=True, undefined for n == 1 (the reference divides by zero too)
    return 2.0 * j / (n - 1) - 1.0


def from_frame(values: torch.Tensor, sizes: SizeLike, frame: str) -> torch.Tensor:
    """Coordinates in the reference ``frame`` -> normalised coordinates (inverse of
    :func:`to_frame`).

    Args:
        values: ``(..., D)`` coordinates in ``frame``.
        sizes: ``(W[, H[, Dz]])``.
        frame: one of :data:`FRAMES`.
    """
    _check_frame(frame)
    n = _sizes(values, sizes)
    if frame == "norm":
        return values
    if frame == "index":
        j = values
    elif frame == "rle":
        j = (values + 0.5) * n
    elif frame == "mmpose":
        j = values * n
    elif frame == "dsntnn":
        return 0.5 * values
    else:
        j = (values + 1.0) * (n - 1) / 2.0
    return index_to_norm(j, n)


def flip_coords(coords: torch.Tensor, axis: int = 0) -> torch.Tensor:
    """Mirror normalised coordinates along one coordinate axis (0 = x): exact negation.

    Args:
        coords: ``(..., D)`` normalised coordinates.
        axis: which coordinate to negate.

    Returns:
        ``(..., D)`` mirrored coordinates (a new tensor).
    """
    if not isinstance(coords, torch.Tensor):
        raise TypeError(f"coords must be a torch.Tensor, got {type(coords).__name__}")
    if coords.dim() < 1 or not 0 <= axis < coords.shape[-1]:
        raise ValueError(
            f"axis must index the last dim of coords {tuple(coords.shape)}, got {axis}"
        )
    sign = torch.ones(coords.shape[-1], dtype=coords.dtype, device=coords.device)
    sign[axis] = -1
    return coords * sign


def coordinate_grid(
    size: int, *, dtype: torch.dtype = None, device: torch.device = None
) -> torch.Tensor:
    """The 1-D grid of bin centres of an axis of ``size`` bins, normalised: ``(size,)``."""
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    dtype = dtype if dtype is not None else torch.get_default_dtype()
    return index_to_norm(torch.arange(size, dtype=dtype, device=device), size)
