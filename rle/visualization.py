"""The one pose visualiser: skeleton, keypoints and their uncertainty ellipses on a BGR image.

:func:`draw_pose` draws one instance, :func:`draw_results` the results of
:func:`rle.apis.inference_topdown` (and anything with the same fields); the comparison report's
example crops (:func:`rle.evaluation.report.plot_examples`) are drawn with it too.

Coordinates are image index units, the frame of every prediction here (pixel ``j`` covers
``[j - 0.5, j + 0.5]``, its centre is ``j``); OpenCV draws in the same frame. Points, lines and
ellipses are drawn with 4 fractional bits (OpenCV's ``shift``), so sub-pixel positions are kept.
Colours are BGR.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

__all__ = ["COLOR_BY", "draw_pose", "draw_results", "keypoint_colors"]

#: accepted ``color_by`` values of :func:`draw_pose`
COLOR_BY = ("side", "score")
Color = Tuple[int, int, int]
#: the first keypoint of a flip pair (COCO, Human3.6M as converted here: the left one), the
#: second, and unpaired keypoints and links across sides
FIRST_SIDE: Color = (0, 160, 255)
SECOND_SIDE: Color = (255, 140, 0)
CENTRE: Color = (0, 220, 0)
_SHIFT = 4  # fractional bits of the drawing coordinates
_ONE = 1 << _SHIFT


def _fixed(value) -> int:
    return int(round(float(value) * _ONE))


def _array(value, name: str, shape: Tuple[Optional[int], ...]) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array of numbers {shape} ({err})") from None
    if arr.ndim != len(shape) or any(s is not None and a != s for a, s in zip(arr.shape, shape)):
        expected = "(" + ", ".join("K" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {expected}, got {arr.shape}")
    return arr


def _sides(flip_indices: Optional[Sequence[int]], k: int) -> np.ndarray:
    """``(K,)`` 0 = unpaired, 1 = first of its flip pair, 2 = second."""
    sides = np.zeros(k, dtype=np.int64)
    if flip_indices is not None and len(flip_indices) != k:
        raise ValueError(
            f"flip_indices must have {k} entries (one per keypoint), got {len(flip_indices)}"
        )
    for i, j in enumerate(flip_indices or ()):
        if j != i and 0 <= j < k:
            sides[i] = 1 if i < j else 2
    return sides


def keypoint_colors(
    num_keypoints: int,
    keypoint_scores: Optional[np.ndarray] = None,
    *,
    color_by: str = "side",
    flip_indices: Optional[Sequence[int]] = None,
    score_thr: float = 0.3,
) -> np.ndarray:
    """``(K, 3)`` uint8 BGR colours of the keypoints.

    ``"side"``: :data:`FIRST_SIDE` / :data:`SECOND_SIDE` for the two keypoints of each flip pair
    (``flip_indices[i] = j``, the lower index first), :data:`CENTRE` for unpaired ones.
    ``"score"``: red at ``score_thr`` (and below) to green at 1, linearly.
    """
    if color_by not in COLOR_BY:
        raise ValueError(f"color_by must be one of {COLOR_BY}, got {color_by!r}")
    if color_by == "score":
        if keypoint_scores is None:
            raise ValueError('color_by="score" needs keypoint_scores')
        t = np.clip(
            (np.asarray(keypoint_scores, float) - score_thr) / max(1 - score_thr, 1e-6), 0, 1
        )
        return np.stack([np.zeros_like(t), 255 * t, 255 * (1 - t)], axis=1).round().astype(np.uint8)
    palette = np.array([CENTRE, FIRST_SIDE, SECOND_SIDE], dtype=np.uint8)
    return palette[_sides(flip_indices, num_keypoints)]


def _check_image(image) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be an (H, W, 3) BGR uint8 array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"image must be an (H, W, 3) BGR uint8 array, got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be an (H, W, 3) BGR uint8 array, got shape {image.shape}")
    return image


def _color(value, name: str) -> Color:
    arr = _array(value, name, (3,))
    return tuple(int(v) for v in np.clip(arr, 0, 255).round())


def _draw(
    canvas: np.ndarray,
    keypoints,
    keypoint_scores=None,
    *,
    skeleton: Optional[Sequence[Sequence[int]]] = None,
    interval_axes=None,
    score_thr: float = 0.3,
    colors=None,
    color_by: str = "side",
    flip_indices: Optional[Sequence[int]] = None,
    link_color=None,
    ellipse_color=(255, 255, 0),
    radius: Optional[float] = None,
    thickness: Optional[int] = None,
    show_scores: bool = False,
    antialias: bool = True,
) -> None:
    """:func:`draw_pose` into ``canvas`` in place."""
    kpts = _array(keypoints, "keypoints", (None, 2))
    k = len(kpts)
    scores = None if keypoint_scores is None else _array(keypoint_scores, "keypoint_scores", (k,))
    axes = None if interval_axes is None else _array(interval_axes, "interval_axes", (k, 2))
    if not isinstance(score_thr, (int, float)) or not np.isfinite(score_thr):
        raise ValueError(f"score_thr must be a finite number, got {score_thr!r}")
    if colors is None:
        palette = keypoint_colors(
            k, scores, color_by=color_by, flip_indices=flip_indices, score_thr=score_thr
        )
    else:
        arr = np.asarray(colors)
        palette = np.repeat(arr[None], k, 0) if arr.shape == (3,) else arr
        _array(palette, "colors", (k, 3))
        palette = np.clip(palette, 0, 255).astype(np.uint8)
    h, w = canvas.shape[:2]
    size = max(h, w)
    radius = max(1.0, size / 160) if radius is None else float(radius)
    thickness = max(1, int(round(radius / 2))) if thickness is None else int(thickness)
    line = cv2.LINE_AA if antialias else cv2.LINE_8
    # a keypoint is drawn when finite and (with scores) at or above the threshold
    shown = np.isfinite(kpts).all(1)
    if scores is not None:
        shown &= np.nan_to_num(scores, nan=-np.inf) >= score_thr
    sides = _sides(flip_indices, k)
    for link in skeleton or ():
        a, b = (int(v) for v in link)
        if not (0 <= a < k and 0 <= b < k):
            raise ValueError(f"skeleton link {tuple(link)} out of range for {k} keypoints")
        if not (shown[a] and shown[b]):
            continue
        if link_color is not None:
            color = _color(link_color, "link_color")
        elif sides[a] == sides[b] and colors is None and color_by == "side":
            color = tuple(int(v) for v in palette[a])
        else:
            color = CENTRE
        p, q = kpts[a], kpts[b]
        cv2.line(canvas, (_fixed(p[0]), _fixed(p[1])), (_fixed(q[0]), _fixed(q[1])), color,
                 thickness, line, _SHIFT)  # fmt: skip
    if axes is not None:
        ellipse = _color(ellipse_color, "ellipse_color")
        # a huge sigma (an untrained head) must not overflow the fixed-point coordinates
        limit = 4.0 * size
        for j in np.flatnonzero(shown & np.isfinite(axes).all(1)):
            ax, ay = np.clip(axes[j], 0, limit)
            cv2.ellipse(canvas, (_fixed(kpts[j, 0]), _fixed(kpts[j, 1])), (_fixed(ax), _fixed(ay)),
                        0, 0, 360, ellipse, max(1, thickness // 2), line, _SHIFT)  # fmt: skip
    for j in np.flatnonzero(shown):
        center = (_fixed(kpts[j, 0]), _fixed(kpts[j, 1]))
        color = tuple(int(v) for v in palette[j])
        cv2.circle(canvas, center, _fixed(radius), color, -1, line, _SHIFT)
        if show_scores and scores is not None:
            org = (int(round(kpts[j, 0] + radius)), int(round(kpts[j, 1] - radius)))
            cv2.putText(canvas, f"{scores[j]:.2f}", org, cv2.FONT_HERSHEY_SIMPLEX,
                        max(0.3, radius / 8), color, 1, line)  # fmt: skip


def draw_pose(
    image: np.ndarray,
    keypoints,
    keypoint_scores=None,
    *,
    skeleton: Optional[Sequence[Sequence[int]]] = None,
    interval_axes=None,
    score_thr: float = 0.3,
    colors=None,
    color_by: str = "side",
    flip_indices: Optional[Sequence[int]] = None,
    link_color=None,
    ellipse_color=(255, 255, 0),
    radius: Optional[float] = None,
    thickness: Optional[int] = None,
    show_scores: bool = False,
    antialias: bool = True,
) -> np.ndarray:
    """Draw one pose on a copy of ``image``.

    Args:
        image: ``(H, W, 3)`` BGR uint8.
        keypoints: ``(K, 2)`` image px, index units ``(x, y)``.
        keypoint_scores: ``(K,)``; keypoints below ``score_thr`` (and the links and ellipses
            that touch them) are not drawn. ``None``: every finite keypoint is drawn.
        skeleton: 0-based ``(a, b)`` keypoint pairs (``dataset_meta["skeleton_links"]``).
        interval_axes: ``(K, 2)`` semi-axes in px of an axis-aligned ellipse around each
            keypoint (:attr:`rle.apis.PoseResult.interval_axes`), or ``None``.
        score_thr: the drawing threshold of ``keypoint_scores``.
        colors: one BGR colour or ``(K, 3)``, overriding ``color_by``.
        color_by: ``"side"`` (flip pairs, :func:`keypoint_colors`) or ``"score"``.
        flip_indices: ``(K,)`` (``dataset_meta["flip_indices"]``) for ``color_by="side"``;
            ``None``: every keypoint unpaired.
        link_color: one BGR colour for every link; ``None``: the side colour of a link within
            one side, :data:`CENTRE` otherwise.
        ellipse_color: BGR of the ellipses.
        radius: keypoint radius in px (default ``max(1, max(H, W) / 160)``).
        thickness: line thickness in px (default ``radius / 2``; ellipses half of it).
        show_scores: write each drawn keypoint's score next to it.
        antialias: anti-aliased drawing (``False``: 8-connected, every pixel drawn or not).

    Returns:
        the drawn ``(H, W, 3)`` BGR uint8 copy.

    Raises:
        TypeError: an image that is not a uint8 array, coordinates that are not numbers.
        ValueError: arrays of another shape, links out of range, an unknown ``color_by``.
    """
    canvas = _check_image(image).copy()
    _draw(
        canvas, keypoints, keypoint_scores, skeleton=skeleton, interval_axes=interval_axes,
        score_thr=score_thr, colors=colors, color_by=color_by, flip_indices=flip_indices,
        link_color=link_color, ellipse_color=ellipse_color, radius=radius, thickness=thickness,
        show_scores=show_scores, antialias=antialias,
    )  # fmt: skip
    return canvas


def _field(result, name: str):
    return result.get(name) if isinstance(result, Mapping) else getattr(result, name, None)


def draw_results(
    image: np.ndarray,
    results: Sequence[Union[Mapping, object]],
    dataset_meta: Optional[Mapping] = None,
    *,
    score_thr: float = 0.3,
    draw_bbox: bool = True,
    draw_intervals: bool = True,
    bbox_color=(0, 255, 0),
    **kwargs,
) -> np.ndarray:
    """Draw every result of :func:`rle.apis.inference_topdown` on a copy of ``image``.

    Args:
        image: ``(H, W, 3)`` BGR uint8.
        results: :class:`rle.apis.PoseResult` objects or dicts with ``keypoints`` and
            optionally ``keypoint_scores``, ``interval_axes`` and ``bbox`` (xyxy, pixel edges).
        dataset_meta: ``skeleton_links`` and ``flip_indices`` (``model.dataset_meta``).
        score_thr: as :func:`draw_pose`.
        draw_bbox: draw each box (its outermost pixels).
        draw_intervals: draw the interval ellipses of results that have them.
        bbox_color: BGR of the boxes.
        kwargs: further :func:`draw_pose` options (``color_by``, ``radius``, ``show_scores`` ...).

    Returns:
        the drawn copy.
    """
    canvas = _check_image(image).copy()
    meta = dataset_meta or {}
    box_color = _color(bbox_color, "bbox_color")
    for result in results:
        bbox = _field(result, "bbox")
        if draw_bbox and bbox is not None:
            x1, y1, x2, y2 = _array(bbox, "bbox", (4,))
            if np.isfinite([x1, y1, x2, y2]).all():
                # pixel edges x1..x2 hold the pixels x1 .. x2 - 1
                cv2.rectangle(canvas, (_fixed(x1), _fixed(y1)), (_fixed(x2 - 1), _fixed(y2 - 1)),
                              box_color, 1, cv2.LINE_8, _SHIFT)  # fmt: skip
        _draw(
            canvas,
            _field(result, "keypoints"),
            _field(result, "keypoint_scores"),
            skeleton=meta.get("skeleton_links"),
            flip_indices=meta.get("flip_indices"),
            interval_axes=_field(result, "interval_axes") if draw_intervals else None,
            score_thr=score_thr,
            **kwargs,
        )
    return canvas
