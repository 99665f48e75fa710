"""Evaluation: keypoint metrics as pure functions (:mod:`rle.evaluation.functional`), mmengine
metric wrappers (:mod:`rle.evaluation.metrics`), what a model costs
(:mod:`rle.evaluation.costs`) and the comparison report (:mod:`rle.evaluation.report`)."""

from rle.evaluation import functional
from rle.evaluation.dump import DumpPredictions, load_predictions
from rle.evaluation.functional import *  # noqa: F403 - the curated functions, functional.__all__
from rle.evaluation.metrics import CocoKeypointMetric, H36MMetric, PCKMetric, oks_nms

__all__ = [
    "CocoKeypointMetric",
    "DumpPredictions",
    "H36MMetric",
    "PCKMetric",
    "load_predictions",
    "oks_nms",
    *functional.__all__,
]
