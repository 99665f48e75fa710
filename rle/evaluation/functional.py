"""Keypoint metrics as pure numpy functions.

* 2-D: PCK@alpha, AUC of the PCK curve, end-point error (pixels), object keypoint similarity.
* 3-D: MPJPE and PA-MPJPE (Procrustes with scale), overall and grouped (per action).
* Calibration, which the reference toolboxes do not report: Pearson and Spearman correlation
  of instance confidence with OKS (the papers' measure), reliability bins and an expected
  calibration error, and the empirical coverage of predicted per-keypoint intervals.
* A proper scoring rule for the predictive density: the keypoint negative log-likelihood
  (:func:`keypoint_nll`), with the unit residual densities the losses use.

Shape letters: N instances, K keypoints, D coordinate dims.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "expected_calibration_error",
    "gaussian_log_density",
    "interval_coverage",
    "keypoint_auc",
    "keypoint_epe",
    "keypoint_nll",
    "laplace_log_density",
    "keypoint_pck",
    "mpjpe",
    "object_keypoint_similarity",
    "pa_mpjpe",
    "pearson",
    "procrustes_align",
    "reliability_bins",
    "residual_quantile",
    "spearman",
    "unit_log_density",
]


def _check(pred: np.ndarray, gt: np.ndarray, mask: Optional[np.ndarray], dims=None):
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.ndim != 3 or pred.shape != gt.shape or (dims and pred.shape[-1] not in dims):
        raise ValueError(
            f"pred and gt must have the same shape (N, K, D), got {pred.shape} and {gt.shape}"
        )
    if mask is None:
        mask = np.ones(pred.shape[:2], dtype=bool)
    mask = np.asarray(mask).astype(bool)
    if mask.shape != pred.shape[:2]:
        raise ValueError(f"mask must have shape (N, K) = {pred.shape[:2]}, got {mask.shape}")
    return pred, gt, mask


# -- 2-D -----------------------------------------------------------------------------------------
def keypoint_pck(
    pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, thr: float, norm: np.ndarray
) -> Tuple[np.ndarray, float, int]:
    """PCK: fraction of keypoints within ``thr * norm`` of the ground truth.

    Args:
        pred, gt: ``(N, K, 2)`` in pixels.
        mask: ``(N, K)`` which keypoints count.
        thr: alpha.
        norm: ``(N, 2)`` per-instance normaliser per axis (e.g. box size), distances are
            measured after dividing each axis by it.

    Returns:
        per-keypoint accuracy ``(K,)`` (-1 where no keypoint counts), average over counted
        keypoints, number of counted keypoints.
    """
    pred, gt, mask = _check(pred, gt, mask)
    norm = np.asarray(norm, dtype=np.float64)
    if norm.shape != (pred.shape[0], pred.shape[2]):
        raise ValueError(
            f"norm must have shape (N, D) = {(pred.shape[0], pred.shape[2])}, got {norm.shape}"
        )
    dist = np.linalg.norm((pred - gt) / norm[:, None, :], axis=-1)
    hit = (dist <= thr) & mask
    counts = mask.sum(0)
    per_kpt = np.where(counts > 0, hit.sum(0) / np.maximum(counts, 1), -1.0)
    total = int(mask.sum())
    return per_kpt, float(hit.sum() / total) if total else 0.0, total


def keypoint_auc(pred, gt, mask, norm_factor: float, num_thrs: int = 20) -> float:
    """Area under the PCK curve for thresholds ``0, 1/num_thrs, ..`` in units of
    ``norm_factor`` pixels (MMPose's definition)."""
    pred, gt, mask = _check(pred, gt, mask)
    norm = np.full((pred.shape[0], pred.shape[2]), float(norm_factor))
    accs = [keypoint_pck(pred, gt, mask, i / num_thrs, norm)[1] for i in range(num_thrs)]
    return float(np.mean(accs))


def keypoint_epe(pred, gt, mask) -> float:
    """Mean end-point error (Euclidean distance, in the units of the inputs) over ``mask``."""
    pred, gt, mask = _check(pred, gt, mask)
    dist = np.linalg.norm(pred - gt, axis=-1)[mask]
    return float(dist.mean()) if dist.size else 0.0


def object_keypoint_similarity(
    pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, area: np.ndarray, sigmas: np.ndarray
) -> np.ndarray:
    """OKS per instance, as pycocotools: ``mean_k exp(-d_k^2 / (2 area (2 sigma_k)^2))`` over
    the labelled keypoints (``visible`` (N, K) > 0); NaN for instances with none.

    Args:
        pred, gt: ``(N, K, 2)`` pixels. area: ``(N,)`` object areas. sigmas: ``(K,)``.
    """
    pred, gt, mask = _check(pred, gt, np.asarray(visible) > 0, dims=(2,))
    area = np.asarray(area, dtype=np.float64).reshape(-1)
    var = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    e = ((pred - gt) ** 2).sum(-1) / var[None] / (area[:, None] + np.spacing(1)) / 2
    count = mask.sum(1)
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, (np.exp(-e) * mask).sum(1) / count, np.nan)


# -- 3-D -----------------------------------------------------------------------------------------
def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Similarity-align each ``pred`` ``(N, K, 3)`` to ``gt`` (rotation, uniform scale and
    translation minimising the squared error; reflections excluded)."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    mu_p = pred.mean(1, keepdims=True)
    mu_g = gt.mean(1, keepdims=True)
    p0, g0 = pred - mu_p, gt - mu_g
    norm_p = np.sqrt((p0**2).sum((1, 2), keepdims=True))
    norm_g = np.sqrt((g0**2).sum((1, 2), keepdims=True))
    p0 = p0 / np.maximum(norm_p, 1e-12)
    g0 = g0 / np.maximum(norm_g, 1e-12)
    u, s, vt = np.linalg.svd(np.einsum("nki,nkj->nij", p0, g0))
    # no reflection: flip the last singular vector where det < 0
    d = np.sign(np.linalg.det(np.einsum("nij,njk->nik", u, vt)))
    s[:, -1] *= d
    u[:, :, -1] *= d[:, None]
    rot = np.einsum("nij,njk->nik", u, vt)
    scale = s.sum(1)[:, None, None] * norm_g / np.maximum(norm_p, 1e-12)
    return scale * np.einsum("nki,nij->nkj", pred - mu_p, rot) + mu_g


def mpjpe(pred, gt, mask=None, groups: Optional[Sequence] = None):
    """Mean per-joint position error (units of the inputs; align the roots first).

    Args:
        pred, gt: ``(N, K, 3)``. mask: ``(N, K)``.
        groups: optional ``(N,)`` labels (e.g. actions): returns ``(overall, {label: value})``.
    """
    pred, gt, mask = _check(pred, gt, mask, dims=(3,))
    err = np.linalg.norm(pred - gt, axis=-1)
    return _grouped(err, mask, groups)


def pa_mpjpe(pred, gt, mask=None, groups: Optional[Sequence] = None):
    """MPJPE after Procrustes alignment with scale (:func:`procrustes_align`)."""
    pred, gt, mask = _check(pred, gt, mask, dims=(3,))
    return mpjpe(procrustes_align(pred, gt), gt, mask, groups)


def _grouped(err: np.ndarray, mask: np.ndarray, groups):
    overall = float(err[mask].mean()) if mask.any() else 0.0
    if groups is None:
        return overall
    groups = np.asarray(groups)
    if groups.shape != (err.shape[0],):
        raise ValueError(f"groups must have shape (N,) = ({err.shape[0]},), got {groups.shape}")
    per = {}
    for label in sorted(set(groups.tolist())):
        sel = groups == label
        m = mask[sel]
        per[label] = float(err[sel][m].mean()) if m.any() else 0.0
    return overall, per


# -- calibration ---------------------------------------------------------------------------------
def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation (NaN pairs dropped; NaN when either side is constant)."""
    x, y = _pairs(x, y)
    if x.size < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    from scipy.stats import rankdata

    x, y = _pairs(x, y)
    if x.size < 2:
        return float("nan")
    return pearson(rankdata(x), rankdata(y))


def _pairs(x, y):
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def reliability_bins(confidence: np.ndarray, accuracy: np.ndarray, num_bins: int = 10) -> dict:
    """Equal-width confidence bins on ``[0, 1]``: per bin the count, mean confidence and mean
    accuracy (here: OKS). Empty bins have NaN means."""
    conf, acc = _pairs(confidence, accuracy)
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1]), 0, num_bins - 1)
    count = np.bincount(idx, minlength=num_bins)
    with np.errstate(invalid="ignore"):
        mean_conf = np.bincount(idx, conf, num_bins) / count
        mean_acc = np.bincount(idx, acc, num_bins) / count
    return dict(edges=edges, count=count, confidence=mean_conf, accuracy=mean_acc)


def expected_calibration_error(confidence, accuracy, num_bins: int = 10) -> float:
    """``sum_b (n_b / N) |mean_acc_b - mean_conf_b|`` over the reliability bins."""
    bins = reliability_bins(confidence, accuracy, num_bins)
    total = bins["count"].sum()
    if total == 0:
        return float("nan")
    gap = np.abs(bins["accuracy"] - bins["confidence"])
    return float(np.nansum(bins["count"] * gap) / total)


def residual_quantile(level: float, distribution: str = "gaussian") -> float:
    """``q`` with ``P(|u| <= q) = level`` for a unit residual distribution: ``"gaussian"``
    (N(0, 1)), ``"laplace"`` (scale 1, MMPose's sigma) or ``"laplace_official"`` (scale sqrt2,
    the official RLE's sigma)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if distribution == "gaussian":
        from scipy.special import erfinv

        return float(math.sqrt(2) * erfinv(level))
    if distribution == "laplace":
        return float(-math.log(1 - level))
    if distribution == "laplace_official":
        return float(-math.sqrt(2) * math.log(1 - level))
    raise ValueError(
        f"distribution must be 'gaussian', 'laplace' or 'laplace_official', got {distribution!r}"
    )


def interval_coverage(
    pred: np.ndarray,
    gt: np.ndarray,
    sigma: np.ndarray,
    mask: Optional[np.ndarray] = None,
    levels: Sequence[float] = (0.5, 0.68, 0.95),
    quantiles: Optional[Dict[float, float]] = None,
    distribution: str = "gaussian",
) -> Dict[float, float]:
    """Empirical coverage of per-coordinate intervals ``pred +- q_level * sigma``.

    A calibrated head covers each nominal ``level`` with frequency ``level``. ``quantiles``
    (level -> q) may come from the learned residual density (e.g. samples of the RLE flow);
    otherwise :func:`residual_quantile` of ``distribution``.

    Args:
        pred, gt, sigma: ``(N, K, D)`` in the same units.
        mask: ``(N, K)``.

    Returns:
        ``{level: coverage}``.
    """
    pred, gt, mask = _check(pred, gt, mask)
    sigma = np.asarray(sigma, dtype=np.float64)
    if sigma.shape != pred.shape:
        raise ValueError(f"sigma must have shape {pred.shape}, got {sigma.shape}")
    u = np.abs(pred - gt) / np.maximum(sigma, 1e-12)
    u = u[mask]
    out = {}
    for level in levels:
        q = quantiles[level] if quantiles else residual_quantile(level, distribution)
        out[level] = float((u <= q).mean()) if u.size else float("nan")
    return out


# -- proper scoring: negative log-likelihood -----------------------------------------------------
_LOG_2PI = math.log(2 * math.pi)


def gaussian_log_density(u: np.ndarray) -> np.ndarray:
    """``log f(u)`` of the standard normal, elementwise: ``-0.5 log(2 pi) - u^2 / 2``.

    The unit density of the Gaussian Q term of every loss variant and of
    :func:`residual_quantile` ``"gaussian"``.
    """
    u = np.asarray(u, dtype=np.float64)
    return -0.5 * _LOG_2PI - 0.5 * u**2


def laplace_log_density(u: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """``log f(u)`` of the zero-mean Laplace of scale ``b``, elementwise: ``-log(2 b) - |u| / b``.

    ``scale=1`` is MMPose's and the paper's Q term (``log(2 sigma) + |u|``) and
    :func:`residual_quantile` ``"laplace"``; ``scale=sqrt(2)`` is the official RLE's
    (``|D| / (sqrt2 sigma)``) and ``"laplace_official"``. The official loss adds
    ``log sqrt(2 pi)`` where the normaliser is ``log(2 sqrt2)``: as a density it does not
    integrate to 1, so a score takes the normalised form here.

    Args:
        u: residuals in units of sigma, any shape.
        scale: ``b > 0``.
    """
    if not (isinstance(scale, (int, float)) and not isinstance(scale, bool)) or not scale > 0:
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    u = np.asarray(u, dtype=np.float64)
    return -math.log(2 * scale) - np.abs(u) / scale


def _laplace_official_log_density(u: np.ndarray) -> np.ndarray:
    return laplace_log_density(u, math.sqrt(2))


_UNIT_DENSITIES = {
    "gaussian": gaussian_log_density,
    "laplace": laplace_log_density,
    "laplace_official": _laplace_official_log_density,
}

LogDensity = Callable[[np.ndarray], np.ndarray]


def unit_log_density(distribution: str) -> LogDensity:
    """The elementwise ``log f`` of the unit residual distribution that
    :func:`residual_quantile` names the same way (``"gaussian"``, ``"laplace"``,
    ``"laplace_official"``), so that a level interval and a score describe one density."""
    if distribution not in _UNIT_DENSITIES:
        raise ValueError(
            f"distribution must be one of {tuple(_UNIT_DENSITIES)}, got {distribution!r}"
        )
    return _UNIT_DENSITIES[distribution]


def keypoint_nll(
    pred: np.ndarray,
    gt: np.ndarray,
    sigma: np.ndarray,
    mask: Optional[np.ndarray],
    log_density: Union[str, LogDensity],
    scale: Optional[np.ndarray] = None,
    reduction: str = "mean",
) -> Union[float, np.ndarray]:
    """Negative log-likelihood of the ground truth under the predictive density.

    Per keypoint the density of location ``x`` is ``p(x) = f(u) / prod_d s_d`` with
    ``u = (mu - x) / sigma`` and ``s = sigma * scale``, so::

        NLL = sum_d log(sigma_d * scale_d) - log f(u)

    A proper scoring rule: unlike coverage it rewards a sharp sigma only where the error is
    small. With ``scale`` (the crop size per axis) it is the density of the image-pixel
    location, so heads and crops compare in one unit (nats per keypoint, px); without, in
    normalised crop units. ``u`` itself is unit-free, computed before any scaling.

    Args:
        pred, gt: ``(N, K, D)`` normalised coordinates (mu and ground truth).
        sigma: ``(N, K, D)`` predicted scale, normalised units, ``> 0`` where labelled.
        mask: ``(N, K)`` which keypoints count (``None``: all).
        log_density: ``log f`` of the unit residual density: a name of
            :func:`unit_log_density`, or a callable taking ``u`` ``(M, D)`` (float64, the
            labelled keypoints) and returning either ``(M, D)`` elementwise values of a
            factorised density (summed over ``D``) or ``(M,)`` joint values (e.g. an RLE
            flow's density of the ``D``-vector). It must be normalised: a constant offset
            shifts the score.
        scale: ``(N, D)`` px per normalised unit per axis (the crop box size), ``> 0``;
            ``None``: score in normalised units.
        reduction: ``"mean"`` over the labelled keypoints (NaN if none) or ``"none"``:
            ``(N, K)`` with NaN where unlabelled (``np.nanmean(.., 0)`` is per keypoint).

    Returns:
        the mean NLL (float, nats), or the ``(N, K)`` values.
    """
    pred, gt, mask = _check(pred, gt, mask)
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    sigma = np.asarray(sigma, dtype=np.float64)
    if sigma.shape != pred.shape:
        raise ValueError(f"sigma must have shape (N, K, D) = {pred.shape}, got {sigma.shape}")
    n, _, d = pred.shape
    if scale is not None:
        scale = np.asarray(scale, dtype=np.float64)
        if scale.shape != (n, d):
            raise ValueError(f"scale must have shape (N, D) = {(n, d)}, got {scale.shape}")
        if not np.all(np.isfinite(scale) & (scale > 0)):
            raise ValueError("scale must be positive and finite (px per normalised unit)")
    fn = unit_log_density(log_density) if isinstance(log_density, str) else log_density
    if not callable(fn):
        raise TypeError(
            f"log_density must be a callable or a distribution name, got {type(fn).__name__}"
        )
    out = np.full(mask.shape, np.nan)
    if mask.any():
        s = sigma[mask]  # (M, D)
        if not np.all(np.isfinite(s) & (s > 0)):
            raise ValueError("sigma must be positive and finite at the labelled keypoints")
        diff = (pred - gt)[mask]
        if not np.all(np.isfinite(diff)):
            raise ValueError("pred and gt must be finite at the labelled keypoints")
        u = diff / s
        logf = np.asarray(fn(u), dtype=np.float64)
        if logf.shape == u.shape:
            logf = logf.sum(-1)
        elif logf.shape != u.shape[:1]:
            raise ValueError(
                f"log_density must return (M, D) = {u.shape} or (M,) = {u.shape[:1]} values "
                f"for u of shape (M, D), got {logf.shape}"
            )
        if np.isnan(logf).any():
            raise ValueError("log_density returned NaN")
        log_s = np.log(s).sum(-1)
        if scale is not None:
            # the pixel density divides by sigma_px = sigma * scale per axis: u is unchanged
            log_s = log_s + np.log(np.broadcast_to(scale[:, None, :], pred.shape)[mask]).sum(-1)
        out[mask] = log_s - logf
    if reduction == "none":
        return out
    return float(out[mask].mean()) if mask.any() else float("nan")
