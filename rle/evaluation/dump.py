"""A metric that stores every prediction (for the comparison report's plots)."""

from __future__ import annotations

import pickle
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from rle.registry import METRICS

__all__ = ["DumpPredictions"]

_FIELDS = (
    "id",
    "img_id",
    "img_path",
    "bbox",
    "area",
    "input_center",
    "input_scale",
    "input_size",
    "keypoints",
    "keypoints_visible",
    "keypoints_cam",
    "action",
    "pred_coords",
    "pred_keypoints",
    "pred_scores",
    "pred_sigma",
    "pred_depth",
    "pred_log_likelihood",
    "keypoint_weights",
)


@METRICS.register_module()
class DumpPredictions(BaseMetric):
    """Write the per-instance predictions and ground truth to ``out_file`` (a pickle of a
    list of dicts with the fields above, numpy arrays). Returns no metric."""

    default_prefix = "dump"

    def __init__(
        self, out_file: str, collect_device: str = "cpu", prefix: Optional[str] = None
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.out_file = out_file

    def process(self, data_batch, data_samples: Sequence) -> None:
        for s in data_samples:
            rec = {}
            for key in _FIELDS:
                value = s.get(key)
                if value is not None and hasattr(value, "cpu"):
                    value = value.cpu().numpy()
                rec[key] = value
            self.results.append(rec)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        with open(self.out_file, "wb") as f:
            pickle.dump(results, f)
        return {"num_dumped": float(len(results))}


def load_predictions(path: str) -> List[dict]:
    """Read a :class:`DumpPredictions` file through the safe loader
    (:func:`rle.serialization.load_pickle`: records are dicts of numbers, str and arrays, and
    a work dir handed to the comparison may come from elsewhere)."""
    from rle.serialization import load_pickle

    records = load_pickle(path)
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError(f"{path}: expected a list of prediction records (dicts)")
    for rec in records:
        for key, value in rec.items():
            if isinstance(value, list):
                rec[key] = np.asarray(value)
    return records
