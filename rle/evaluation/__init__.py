"""Evaluation: keypoint metrics (pure functions in :mod:`rle.evaluation.functional`)."""

from rle.evaluation.functional import (
    expected_calibration_error,
    interval_coverage,
    keypoint_auc,
    keypoint_epe,
    keypoint_pck,
    mpjpe,
    object_keypoint_similarity,
    pa_mpjpe,
    pearson,
    procrustes_align,
    reliability_bins,
    residual_quantile,
    spearman,
)

__all__ = [
    "expected_calibration_error",
    "interval_coverage",
    "keypoint_auc",
    "keypoint_epe",
    "keypoint_pck",
    "mpjpe",
    "object_keypoint_similarity",
    "pa_mpjpe",
    "pearson",
    "procrustes_align",
    "reliability_bins",
    "residual_quantile",
    "spearman",
]
