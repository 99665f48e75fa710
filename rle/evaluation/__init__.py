"""Evaluation: keypoint metrics as pure functions (:mod:`rle.evaluation.functional`) and
mmengine metric wrappers (:mod:`rle.evaluation.metrics`)."""

from rle.evaluation.dump import DumpPredictions, load_predictions
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
from rle.evaluation.metrics import CocoKeypointMetric, H36MMetric, PCKMetric, oks_nms

__all__ = [
    "CocoKeypointMetric",
    "DumpPredictions",
    "load_predictions",
    "H36MMetric",
    "PCKMetric",
    "oks_nms",
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
