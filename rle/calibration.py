"""Post-hoc calibration of predicted keypoint intervals: a sigma scale, or one per level.

A head with sigma states a level interval ``mu +- k(level) * sigma`` per coordinate, ``k`` from
its own residual density (``head.interval_scale(levels)``). On unseen images these intervals
are typically too narrow or too wide by a keypoint-dependent factor. This module fits, on a
held-out calibration split, the factor ``c`` (per keypoint, or one global one) such that
``mu +- c * k(level) * sigma`` reaches its nominal coverage, and applies it as
``sigma -> c * sigma``; the shape of the density (and so ``k``) is kept.

The fit. Coverage is a step function of ``c``: at level ``l`` exactly the ``c`` with
``l`` of the normalised residuals inside is ``c_l = Q_l(|u|) / k(l)`` (``Q_l`` the empirical
quantile, linear interpolation). One ``c`` must serve all levels, so it minimises
``sum_l (log c - log c_l)^2``, i.e. it is the geometric mean of the ``c_l``. Why this rule:

* closed form and unique, where squared coverage error over ``c`` is piecewise constant with
  a whole interval of minimisers, needing a search and a tie-break;
* log ratios treat "twice too wide" and "twice too narrow" alike, and the fit is exactly
  scale-equivariant (residuals times ``t`` give ``c`` times ``t``);
* when the head's density has the right shape all ``c_l`` estimate the same factor and the
  mean averages their noise; when the shape is wrong (tails too light or heavy) no single ``c``
  fits every level, and the log mean compromises evenly instead of favouring the levels where
  coverage happens to be most sensitive.

Shape-aware calibration (``method="levels"``). When the head's density has the wrong shape
(a heatmap's second moment under a Gaussian quantile, for instance, on residuals with heavy
tails) the geometric mean over-covers some levels and under-covers others. ``"levels"`` keeps
every ``c_l``: the level-``l`` interval is ``mu +- c_l * k(l) * sigma``, which is split conformal
prediction with the normalised residual ``|u|`` as the score, so on held-out data from the
same distribution each fitted level is nominal up to sampling error, whatever the head's
shape. Between fitted levels ``log c`` is interpolated linearly in the level, outside their
range the nearest end is held. sigma itself (``apply(sigma)``, what the NLL and the
visualised scale use) is scaled by the same geometric mean as ``"scale"``.

Keypoints with fewer than ``min_count`` labelled samples (too few for their tail quantiles)
use the global fit. Coverage is counted per coordinate, pooled over labelled keypoints and
axes, as :func:`rle.evaluation.functional.interval_coverage` (which this module calls).

A :class:`Calibration` converts to plain builtins (:meth:`Calibration.to_dict`); where it is
stored (a checkpoint's metadata or a JSON side file) is :mod:`rle.calibration_store`.
Fitting a model on its calibration split is :mod:`rle.calibration_run`
(:func:`~rle.calibration_run.calibrate_checkpoint`, ``tools/calibrate.py``).

Shape letters: N instances, K keypoints, D coordinate dims.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from rle.evaluation.functional import interval_coverage, residual_quantile

__all__ = [
    "CALIBRATION_METHODS",
    "DEFAULT_LEVELS",
    "Calibration",
    "fit_interval_calibration",
    "interval_coverage_at",
]

DEFAULT_LEVELS = (0.5, 0.68, 0.8, 0.9, 0.95)
FORMAT = "rle_pose.calibration"
VERSION = 1
#: the ``method`` option and the name each is stored under (a reader refuses unknown names)
CALIBRATION_METHODS = {
    "scale": "geometric_mean_quantile_ratio",
    "levels": "per_level_quantile_ratio",
}
_METHOD_OF_NAME = {name: method for method, name in CALIBRATION_METHODS.items()}

IntervalScale = Union[Mapping, str]


@dataclasses.dataclass(frozen=True)
class Calibration:
    """A fitted interval calibration (:func:`fit_interval_calibration`).

    Attributes:
        scales: the factor ``c`` on sigma: K floats (``per_keypoint``) or one float.
        global_scale: the fit pooled over every keypoint (the fallback).
        levels: the levels fitted.
        quantiles: ``k(level)`` of the head's density, aligned with ``levels``.
        per_keypoint: whether ``scales`` is per keypoint.
        count: K ints, labelled samples per keypoint (each gives D coordinates).
        fallback: K bools, keypoints that use ``global_scale`` because they had fewer than
            ``min_count`` samples or a zero residual quantile (all False for a global fit).
        min_count: the threshold used.
        coverage_before: ``{level: coverage}`` on the calibration data, ``c = 1``.
        coverage_after: the same with the fitted intervals.
        method: ``"scale"`` (one ``c`` for every level) or ``"levels"`` (``c_l`` per level).
        level_scales: ``"levels"`` only: ``c_l`` aligned with ``levels``, K tuples
            (``per_keypoint``, fallback keypoints holding the global ones) or one tuple.
        global_level_scales: ``"levels"`` only: the pooled ``c_l`` (the fallback).
    """

    scales: Union[float, Tuple[float, ...]]
    global_scale: float
    levels: Tuple[float, ...]
    quantiles: Tuple[float, ...]
    per_keypoint: bool
    count: Tuple[int, ...]
    fallback: Tuple[bool, ...]
    min_count: int
    coverage_before: Dict[float, float]
    coverage_after: Dict[float, float]
    method: str = "scale"
    level_scales: Optional[Tuple] = None
    global_level_scales: Optional[Tuple[float, ...]] = None

    @property
    def interval_scale(self) -> Dict[float, float]:
        """``{level: k}`` the fit used (of the uncalibrated sigma)."""
        return dict(zip(self.levels, self.quantiles))

    @property
    def num_keypoints(self) -> int:
        """K of the calibration data."""
        return len(self.count)

    def factor(self, level: Optional[float] = None):
        """The factor on sigma: ``c`` (``level=None``, or any level for ``"scale"``) or, for
        ``"levels"``, ``c(level)`` interpolated between the fitted levels (module docstring).

        Returns:
            a float (global) or ``(K,)`` float64.
        """
        if level is not None and not (
            isinstance(level, numbers.Real) and not isinstance(level, bool) and 0 < level < 1
        ):
            raise ValueError(f"level must be a number in (0, 1) or None, got {level!r}")
        if level is None or self.method == "scale":
            if self.per_keypoint:
                return np.asarray(self.scales, dtype=np.float64)
            return float(self.scales)
        level = float(level)
        order = np.argsort(self.levels)
        levels = np.asarray(self.levels)[order]
        log_c = np.log(np.asarray(self.level_scales, dtype=np.float64))[..., order]
        if not self.per_keypoint:
            return float(np.exp(np.interp(level, levels, log_c)))
        return np.exp([np.interp(level, levels, row) for row in log_c])

    def apply(self, sigma, level: Optional[float] = None):
        """``sigma * c``: the calibrated sigma (``level=None``), or the sigma whose
        ``k(level)`` interval is the calibrated ``level`` interval (:meth:`factor`).

        Args:
            sigma: ``(..., K, D)`` (e.g. ``(N, K, D)``), a numpy array or a torch tensor
                (kept a tensor, on its device and dtype); any shape for a global scale.
            level: an interval level in (0, 1), or None.

        Returns:
            the scaled sigma, float64 for numpy input.
        """
        is_tensor = hasattr(sigma, "new_tensor")  # torch, without importing it here
        if not is_tensor:
            sigma = np.asarray(sigma, dtype=np.float64)
        c = self.factor(level)
        if not self.per_keypoint:
            return sigma * c
        k = len(self.scales)
        if sigma.ndim < 2 or sigma.shape[-2] != k:
            raise ValueError(
                f"sigma must have shape (..., K, D) with K = {k}, got {tuple(sigma.shape)}"
            )
        c = c[:, None]  # (K, 1): broadcast over D
        return sigma * (sigma.new_tensor(c) if is_tensor else c)

    def to_dict(self) -> dict:
        """Plain builtins (str, bool, int, float, lists): JSON and restricted-pickle safe.
        Per-level values are lists aligned with ``levels`` (JSON keys would be strings)."""
        scales = [float(c) for c in self.scales] if self.per_keypoint else float(self.scales)
        out = {
            "format": FORMAT,
            "version": VERSION,
            "method": CALIBRATION_METHODS[self.method],
            "per_keypoint": bool(self.per_keypoint),
            "scales": scales,
            "global_scale": float(self.global_scale),
            "levels": [float(lv) for lv in self.levels],
            "quantiles": [float(q) for q in self.quantiles],
            "count": [int(n) for n in self.count],
            "fallback": [bool(f) for f in self.fallback],
            "min_count": int(self.min_count),
            "coverage_before": [float(self.coverage_before[lv]) for lv in self.levels],
            "coverage_after": [float(self.coverage_after[lv]) for lv in self.levels],
        }
        if self.method == "levels":
            rows = self.level_scales if self.per_keypoint else (self.level_scales,)
            listed = [[float(c) for c in row] for row in rows]
            out["level_scales"] = listed if self.per_keypoint else listed[0]
            out["global_level_scales"] = [float(c) for c in self.global_level_scales]
        return out

    @classmethod
    def from_dict(cls, data: Any, source: str = "calibration") -> Calibration:
        """The inverse of :meth:`to_dict`, validated.

        Raises:
            ValueError: naming ``source`` and the offending key.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: must be a dict, got {type(data).__name__}")
        if data.get("format") != FORMAT:
            raise ValueError(f"{source}: 'format' must be {FORMAT!r}, got {data.get('format')!r}")
        if data.get("version") != VERSION:
            raise ValueError(
                f"{source}: 'version' must be {VERSION} (this rle-pose reads only that), "
                f"got {data.get('version')!r}"
            )
        name = data.get("method", CALIBRATION_METHODS["scale"])
        if name not in _METHOD_OF_NAME:
            raise ValueError(
                f"{source}: 'method' must be one of {sorted(_METHOD_OF_NAME)}, got {name!r}"
            )
        method = _METHOD_OF_NAME[name]
        per_keypoint = _get(data, "per_keypoint", source)
        if not isinstance(per_keypoint, bool):
            raise ValueError(f"{source}: 'per_keypoint' must be a bool, got {per_keypoint!r}")
        levels = _numbers(data, "levels", source, lambda v: 0 < v < 1, "in (0, 1)")
        if not levels or len(set(levels)) != len(levels):
            raise ValueError(f"{source}: 'levels' must be non-empty and unique, got {levels}")
        n_levels = len(levels)
        quantiles = _numbers(data, "quantiles", source, _positive, "positive", n_levels)
        count = _get(data, "count", source)
        if not isinstance(count, list) or not all(_is_int(n) and n >= 0 for n in count):
            raise ValueError(f"{source}: 'count' must be a list of ints >= 0, got {count!r}")
        k = len(count)
        fallback = _get(data, "fallback", source)
        if not isinstance(fallback, list) or len(fallback) != k:
            raise ValueError(f"{source}: 'fallback' must be a list of {k} bools, got {fallback!r}")
        if not all(isinstance(f, bool) for f in fallback):
            raise ValueError(f"{source}: 'fallback' must be a list of {k} bools, got {fallback!r}")
        global_scale = _get(data, "global_scale", source)
        if not _positive(global_scale):
            raise ValueError(f"{source}: 'global_scale' must be > 0, got {global_scale!r}")
        if per_keypoint:
            scales = tuple(_numbers(data, "scales", source, _positive, "positive", k))
        else:
            scales = _get(data, "scales", source)
            if not _positive(scales):
                raise ValueError(f"{source}: 'scales' must be a number > 0, got {scales!r}")
            scales = float(scales)
        min_count = _get(data, "min_count", source)
        if not (_is_int(min_count) and min_count >= 1):
            raise ValueError(f"{source}: 'min_count' must be an int >= 1, got {min_count!r}")
        covered = [
            _numbers(data, key, source, lambda v: 0 <= v <= 1, "in [0, 1]", n_levels)
            for key in ("coverage_before", "coverage_after")
        ]
        level_scales = global_level_scales = None
        if method == "levels":
            global_level_scales = tuple(
                _numbers(data, "global_level_scales", source, _positive, "positive", n_levels)
            )
            rows = _get(data, "level_scales", source)
            if per_keypoint:
                if not isinstance(rows, list) or len(rows) != k:
                    raise ValueError(
                        f"{source}: 'level_scales' must be {k} lists of {n_levels} numbers"
                    )
                level_scales = tuple(
                    tuple(_numbers({f"level_scales[{j}]": r}, f"level_scales[{j}]", source,
                                   _positive, "positive", n_levels))
                    for j, r in enumerate(rows)
                )  # fmt: skip
            else:
                level_scales = tuple(
                    _numbers(data, "level_scales", source, _positive, "positive", n_levels)
                )
        return cls(
            scales=scales,
            global_scale=float(global_scale),
            levels=tuple(levels),
            quantiles=tuple(quantiles),
            per_keypoint=per_keypoint,
            count=tuple(int(n) for n in count),
            fallback=tuple(fallback),
            min_count=int(min_count),
            coverage_before=dict(zip(levels, covered[0])),
            coverage_after=dict(zip(levels, covered[1])),
            method=method,
            level_scales=level_scales,
            global_level_scales=global_level_scales,
        )


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _positive(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _get(data: Mapping, key: str, source: str) -> Any:
    if key not in data:
        raise ValueError(f"{source}: missing key {key!r}")
    return data[key]


def _numbers(data, key, source, ok, what, length=None) -> list:
    values = _get(data, key, source)
    good = isinstance(values, list) and (length is None or len(values) == length)
    good = good and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and ok(v)
        for v in values
    )
    if not good:
        size = "" if length is None else f"{length} "
        raise ValueError(
            f"{source}: {key!r} must be a list of {size}numbers {what}, got {values!r}"
        )
    return [float(v) for v in values]


# -- checks --------------------------------------------------------------------------------------
def _check_residuals(residuals, mask) -> Tuple[np.ndarray, np.ndarray]:
    """``|u|`` ``(N, K, D)`` float64 and the boolean ``(N, K)`` mask."""
    u = np.asarray(residuals, dtype=np.float64)
    if u.ndim != 3:
        raise ValueError(f"residuals must have shape (N, K, D), got {u.shape}")
    if mask is None:
        mask = np.ones(u.shape[:2], dtype=bool)
    mask = np.asarray(mask)
    if mask.shape != u.shape[:2]:
        raise ValueError(f"mask must have shape (N, K) = {u.shape[:2]}, got {mask.shape}")
    mask = mask.astype(bool)
    if not np.all(np.isfinite(u[mask])):
        # a NaN or infinite labelled residual is a broken prediction (or a sigma of 0), not an
        # outlier to calibrate to: the quantiles would be NaN
        raise ValueError("residuals must be finite at the labelled keypoints (mask)")
    return np.abs(u), mask


def _check_interval_scale(
    interval_scale: IntervalScale, levels: Optional[Sequence[float]]
) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """``(levels, k)``: a mapping ``{level: k}`` or a :func:`residual_quantile` name."""
    if isinstance(interval_scale, str):
        levels = DEFAULT_LEVELS if levels is None else levels
        levels = _check_levels(levels)
        return levels, tuple(residual_quantile(lv, interval_scale) for lv in levels)
    if not isinstance(interval_scale, Mapping):
        raise TypeError(
            "interval_scale must be a {level: k} dict (head.interval_scale(levels)) or a "
            f"distribution name, got {type(interval_scale).__name__} (a head without a density "
            "of its own returns None)"
        )
    levels = _check_levels(list(interval_scale) if levels is None else levels)
    missing = [lv for lv in levels if lv not in interval_scale]
    if missing:
        raise ValueError(
            f"interval_scale has no k for levels {missing}; it has {sorted(interval_scale)}"
        )
    try:
        k = tuple(float(interval_scale[lv]) for lv in levels)
    except (TypeError, ValueError):
        k = ()
    if len(k) != len(levels) or not all(_positive(q) for q in k):
        values = [interval_scale[lv] for lv in levels]
        raise ValueError(f"interval_scale values must be positive finite numbers, got {values}")
    return levels, k


def _check_levels(levels) -> Tuple[float, ...]:
    try:
        out = tuple(float(lv) for lv in levels)
    except (TypeError, ValueError):
        raise ValueError(
            f"levels must be a sequence of numbers in (0, 1), got {levels!r}"
        ) from None
    if not out or not all(0 < lv < 1 for lv in out) or len(set(out)) != len(out):
        raise ValueError(f"levels must be a non-empty, unique sequence in (0, 1), got {levels!r}")
    return out


def _scales_array(scales, k: int) -> np.ndarray:
    """``scales`` (None, a number, K numbers or a :class:`Calibration`) as ``(K,)`` floats."""
    if isinstance(scales, Calibration):
        scales = scales.scales
    if scales is None:
        return np.ones(k)
    c = np.asarray(scales, dtype=np.float64)
    if c.ndim == 0:
        c = np.full(k, float(c))
    if c.shape != (k,):
        raise ValueError(f"scales must be a number or have shape (K,) = ({k},), got {c.shape}")
    if not np.all(np.isfinite(c) & (c > 0)):
        raise ValueError("scales must be positive and finite")
    return c


# -- coverage and fit ----------------------------------------------------------------------------
def interval_coverage_at(
    residuals: np.ndarray,
    mask: Optional[np.ndarray],
    interval_scale: IntervalScale,
    scales=None,
    levels: Optional[Sequence[float]] = None,
) -> Dict[float, float]:
    """Coverage of the intervals ``+- c * k(level)`` of normalised residuals.

    The fraction of labelled keypoint *coordinates* with ``|u| / c <= k(level)``: the
    definition of :func:`rle.evaluation.functional.interval_coverage` (called here with
    ``pred = u``, ``gt = 0`` and sigma ``c``), so this equals ``interval_coverage`` of the
    predictions with the calibrated sigma ``c * sigma``.

    Args:
        residuals: ``(N, K, D)`` ``u = (pred - gt) / sigma``, unit-free.
        mask: ``(N, K)`` labelled keypoints (``None``: all).
        interval_scale: ``{level: k}`` (``head.interval_scale(levels)``) or a distribution
            name of :func:`~rle.evaluation.functional.residual_quantile`.
        scales: ``c``: ``None`` (1), a number, ``(K,)`` or a :class:`Calibration` (its
            factor at each level, :meth:`Calibration.factor`).
        levels: the levels to report (default: the keys of ``interval_scale``, or
            :data:`DEFAULT_LEVELS` for a name).

    Returns:
        ``{level: coverage}`` (NaN without labelled keypoints).
    """
    u, mask = _check_residuals(residuals, mask)
    levels, k = _check_interval_scale(interval_scale, levels)
    out = {}
    for level, k_l in zip(levels, k):
        c = _scales_array(
            scales.factor(level) if isinstance(scales, Calibration) else scales, u.shape[1]
        )
        sigma = np.broadcast_to(c[None, :, None], u.shape)
        out.update(
            interval_coverage(u, np.zeros_like(u), sigma, mask, levels=[level],
                              quantiles={level: k_l})
        )  # fmt: skip
    return out


def _fit_level_scales(abs_u: np.ndarray, levels: Tuple[float, ...], k: Tuple[float, ...]):
    """``Q_l(|u|) / k(l)`` per level, or None if a quantile is 0."""
    q = np.quantile(abs_u, levels)
    if not np.all(q > 0):
        # more than a level's share of exact zeros: no positive scale reaches that level from
        # above, and log 0 would give c = 0
        return None
    return q / np.asarray(k)


def _geometric_mean(c: np.ndarray) -> float:
    return float(np.exp(np.mean(np.log(c))))


def fit_interval_calibration(
    residuals: np.ndarray,
    mask: Optional[np.ndarray],
    interval_scale: IntervalScale,
    levels: Sequence[float] = DEFAULT_LEVELS,
    per_keypoint: bool = True,
    min_count: int = 50,
    method: str = "scale",
) -> Calibration:
    """Fit the sigma factor ``c`` that makes ``mu +- c * k(level) * sigma`` nominal.

    ``c_l = Q_l(|u|) / k(l)`` over the labelled coordinates of a keypoint; ``"scale"`` keeps
    their geometric mean ``c`` for every level, ``"levels"`` keeps each ``c_l`` (and ``c`` as
    the scale of sigma) (module docstring: why these rules).

    Args:
        residuals: ``(N, K, D)`` normalised residuals ``u = (pred - gt) / sigma`` on a
            calibration split (not the training data: sigma is fitted there).
        mask: ``(N, K)`` labelled keypoints (``None``: all).
        interval_scale: ``{level: k}`` of the head's density (``head.interval_scale(levels)``)
            or a distribution name of :func:`~rle.evaluation.functional.residual_quantile`.
        levels: the levels fitted; each must be a key of ``interval_scale``.
        per_keypoint: one ``c`` per keypoint (else one global ``c``).
        min_count: labelled samples a keypoint needs for its own ``c``; below, it takes the
            global one. The default 50 (100 coordinates in 2-D) leaves about 5 above the 95 %
            quantile, which puts a Gaussian keypoint's ``c`` within roughly 10 %.
        method: ``"scale"`` or ``"levels"`` (:data:`CALIBRATION_METHODS`).

    Returns:
        :class:`Calibration` (coverage before and after on this data).

    Raises:
        ValueError: bad shapes or levels, non-finite labelled residuals, no labelled keypoint,
            or a zero residual quantile over all keypoints.
    """
    u, mask = _check_residuals(residuals, mask)
    levels, k = _check_interval_scale(interval_scale, levels)
    if not isinstance(per_keypoint, bool):
        raise TypeError(f"per_keypoint must be a bool, got {type(per_keypoint).__name__}")
    if not (_is_int(min_count) and min_count >= 1):
        raise ValueError(f"min_count must be an int >= 1, got {min_count!r}")
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"method must be one of {sorted(CALIBRATION_METHODS)}, got {method!r}")
    count = mask.sum(0)
    if count.sum() == 0:
        raise ValueError("mask has no labelled keypoint: nothing to calibrate on")
    global_levels = _fit_level_scales(u[mask].ravel(), levels, k)
    if global_levels is None:
        raise ValueError(
            f"residuals: a quantile of |u| at levels {levels} is 0 over all labelled "
            "coordinates (mostly exact zeros), no positive scale fits"
        )
    num_kpts = u.shape[1]
    fallback = [False] * num_kpts
    if per_keypoint:
        rows = []
        for j in range(num_kpts):
            c = (
                _fit_level_scales(u[mask[:, j], j].ravel(), levels, k)
                if count[j] >= min_count
                else None
            )
            fallback[j] = c is None
            rows.append(global_levels if c is None else c)
        scales = tuple(_geometric_mean(c) for c in rows)
        level_scales = tuple(tuple(float(v) for v in c) for c in rows)
    else:
        scales = _geometric_mean(global_levels)
        level_scales = tuple(float(v) for v in global_levels)
    interval = dict(zip(levels, k))
    by_level = method == "levels"
    fitted = dict(
        method=method,
        level_scales=level_scales if by_level else None,
        global_level_scales=tuple(float(v) for v in global_levels) if by_level else None,
    )
    calibration = Calibration(
        scales=scales,
        global_scale=_geometric_mean(global_levels),
        levels=levels,
        quantiles=k,
        per_keypoint=per_keypoint,
        count=tuple(int(n) for n in count),
        fallback=tuple(fallback),
        min_count=int(min_count),
        coverage_before=interval_coverage_at(u, mask, interval),
        coverage_after={},
        **fitted,
    )
    after = interval_coverage_at(u, mask, interval, calibration)
    return dataclasses.replace(calibration, coverage_after=after)
