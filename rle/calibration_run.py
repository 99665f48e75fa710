"""Fitting a model's interval calibration on its config's calibration split.

:func:`calibrate_checkpoint` (what ``tools/calibrate.py`` runs) builds the model of a config and
checkpoint, predicts the config's ``calib_dataloader`` once, computes the normalised residuals
``u = (pred - gt) / sigma`` of the labelled keypoints (:func:`rle.evaluation.report
.records_residuals`), fits :func:`rle.calibration.fit_interval_calibration` with the head's own
interval scale and writes ``CKPT.calibration.json`` beside the checkpoint, which
:func:`rle.apis.init_model` then attaches to the model (``model.calibration``) and
:func:`rle.apis.inference_topdown` applies. The comparison (``compare(calibrate=True)``) calls
:func:`calibration_records` and :func:`fit_records` on its trained runs.

**The calibration split** is the config's ``calib_dataloader`` (not an mmengine key: the runner
ignores it). It must not be the val split (the calibration would then be scored on the data it
was fitted on; :func:`calibration_records` refuses a loader on the val data) and should not be
training data (sigma was fitted there and is too narrow on it). The synthetic configs define one
as a separate small generation with its own seed (``configs/_base_/datasets/synthcoco-*.py``,
``synthh36m-*.py``): the training and val sets, and so every published number, are unchanged. A
dataset without a generator holds out part of its training annotations instead
(:mod:`rle.datasets.holdout`: ``holdout=dict(fraction=..., part="train")`` on the training set,
``part="holdout"`` on the calibration set), which changes the training set: opt-in.

3-D heads are calibrated on their image-plane coordinates (x, y: where coverage is measured);
the factor scales every coordinate's sigma.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from rle.calibration import DEFAULT_LEVELS, Calibration, fit_interval_calibration
from rle.calibration_store import calibration_path, save_calibration

__all__ = [
    "calibrate_checkpoint",
    "calibrate_model",
    "calibration_dataset",
    "calibration_records",
    "fit_records",
]

#: what a calibration record keeps of a predicted data sample (the fields of
#: :class:`rle.evaluation.dump.DumpPredictions` that the residuals and the NLL need)
RECORD_FIELDS = (
    "id", "img_id", "input_scale", "keypoints", "keypoints_visible", "pred_coords",
    "pred_keypoints", "pred_sigma", "pred_log_likelihood",
)  # fmt: skip
#: the dataset keys that say which data a loader reads (a calibration loader must differ from
#: the val loader in one of them, or hold out)
_DATA_KEYS = ("type", "data_root", "ann_file", "split", "data_prefix", "synth_cfg", "bbox_file")


def _plain(value):
    return value.to_dict() if hasattr(value, "to_dict") else copy.deepcopy(value)


def _is_val_data(calib: Mapping, val: Optional[Mapping]) -> bool:
    if not isinstance(val, Mapping) or calib.get("holdout") is not None:
        return False
    return all(_plain(calib.get(k)) == _plain(val.get(k)) for k in _DATA_KEYS)


def _check_max_instances(max_instances) -> None:
    if max_instances is not None and (
        isinstance(max_instances, bool) or not isinstance(max_instances, int) or max_instances < 1
    ):
        raise ValueError(f"max_instances must be an int >= 1 or None, got {max_instances!r}")


def calibration_dataset(cfg, max_instances: Optional[int] = None):
    """The dataset of ``cfg.calib_dataloader``, with the config's pixel convention and at most
    ``max_instances`` samples (its first ones: mmengine's ``indices``).

    Raises:
        ValueError: no ``calib_dataloader``, one that reads the val data, a convention that
            disagrees with the config's, a bad ``max_instances``.
    """
    from rle.registry import DATASETS

    _check_max_instances(max_instances)
    loader = cfg.get("calib_dataloader")
    dataset = _plain((loader or {}).get("dataset"))
    if not isinstance(dataset, Mapping) or "type" not in dataset:
        raise ValueError(
            "the config has no calib_dataloader.dataset: define the calibration split (a "
            "separate generation, as configs/_base_/datasets/synthcoco-demo-64x48.py does, or "
            "a held-out part of the training set, rle.datasets.holdout); never the val split"
        )
    val = _plain((cfg.get("val_dataloader") or {}).get("dataset"))
    if _is_val_data(dataset, val):
        raise ValueError(
            "calib_dataloader.dataset reads the val data (same type, data_root, ann_file, split "
            "and synth_cfg as val_dataloader.dataset): calibrate on a split of its own"
        )
    convention = cfg.get("convention")
    if convention is not None:  # what rle.conventions.apply_convention does for the loaders
        if dataset.get("convention") not in (None, convention):
            raise ValueError(
                f"the config sets convention={convention!r} but calib_dataloader.dataset sets "
                f"convention={dataset['convention']!r}"
            )
        dataset["convention"] = convention
    if max_instances is not None:
        dataset["indices"] = max_instances
    return DATASETS.build(dataset)


def calibration_records(model, cfg, max_instances: Optional[int] = None) -> List[dict]:
    """Predict the calibration split once; one record per instance (:data:`RECORD_FIELDS`,
    numpy arrays, as :class:`~rle.evaluation.dump.DumpPredictions` writes them).

    Args:
        model: the estimator (``model.test_step``: data preprocessing, then ``predict``).
        cfg: its config, with ``calib_dataloader`` (:func:`calibration_dataset`).
        max_instances: predict at most this many instances (the split's first).

    Returns:
        the records, in the dataset's order.
    """
    import torch
    from mmengine.dataset import pseudo_collate
    from torch.utils.data import DataLoader

    dataset = calibration_dataset(cfg, max_instances)
    loader_cfg = cfg.get("calib_dataloader") or {}
    loader = DataLoader(
        dataset, batch_size=int(loader_cfg.get("batch_size", 32)), shuffle=False,
        num_workers=int(loader_cfg.get("num_workers", 0)), collate_fn=pseudo_collate,
    )  # fmt: skip
    was_training = model.training
    model.eval()
    records = []
    try:
        with torch.no_grad():
            for batch in loader:
                for sample in model.test_step(batch):
                    rec = {}
                    for key in RECORD_FIELDS:
                        value = sample.get(key)
                        if value is not None and hasattr(value, "cpu"):
                            value = value.cpu().numpy()
                        rec[key] = None if value is None else np.asarray(value)
                    records.append(rec)
    finally:
        model.train(was_training)
    return records


def fit_records(
    records: List[dict],
    interval_scale,
    levels: Sequence[float] = DEFAULT_LEVELS,
    per_keypoint: bool = True,
    min_count: int = 50,
    method: str = "scale",
) -> Calibration:
    """:func:`rle.calibration.fit_interval_calibration` on the residuals of ``records``.

    Raises:
        ValueError: records without ``pred_sigma`` (a head without sigma), or as the fit.
    """
    from rle.evaluation.report import records_residuals

    if not records or records[0].get("pred_sigma") is None:
        raise ValueError("the calibration records have no pred_sigma: the head predicts none")
    u, mask = records_residuals(records)
    return fit_interval_calibration(
        u, mask, interval_scale, levels, per_keypoint, min_count, method=method
    )


def calibrate_model(
    model,
    cfg,
    levels: Sequence[float] = DEFAULT_LEVELS,
    per_keypoint: bool = True,
    min_count: int = 50,
    max_instances: Optional[int] = None,
    method: str = "scale",
) -> Calibration:
    """Fit ``model``'s calibration on ``cfg``'s calibration split (module docstring).

    Raises:
        ValueError: a head without its own interval scale (no density: nothing to scale), no
            usable calibration split, or as :func:`fit_records`.
    """
    head = model.head
    scale = head.interval_scale(tuple(levels))
    if scale is None:
        raise ValueError(
            f"{type(head).__name__} (num_dims={head.num_dims}) defines no interval scale "
            "(interval_scale is None): it has no predictive density to calibrate"
        )
    records = calibration_records(model, cfg, max_instances)
    return fit_records(records, scale, levels, per_keypoint, min_count, method)


def calibrate_checkpoint(
    config,
    checkpoint,
    out=None,
    per_keypoint: bool = True,
    levels: Sequence[float] = DEFAULT_LEVELS,
    *,
    min_count: int = 50,
    max_instances: Optional[int] = None,
    device: str = "cpu",
    cfg_options: Optional[dict] = None,
    unsafe_load: bool = False,
    method: str = "scale",
) -> Calibration:
    """Fit and save the interval calibration of a trained model.

    Args:
        config: the config file (or mmengine ``Config``) with the ``calib_dataloader``.
        checkpoint: the checkpoint file (loaded with the restricted unpickler unless
            ``unsafe_load``); it is not modified.
        out: the JSON file to write; default ``CKPT.calibration.json`` beside the checkpoint
            (:func:`rle.calibration_store.calibration_path`, where :func:`rle.apis.init_model`
            looks). ``False``: write nothing.
        per_keypoint: one factor per keypoint (keypoints with fewer than ``min_count``
            labelled samples take the global one), else one global factor.
        levels: the levels fitted (:data:`rle.calibration.DEFAULT_LEVELS`).
        min_count: labelled samples a keypoint needs for its own factor.
        max_instances: use at most this many instances of the split.
        device: where the model runs.
        cfg_options: ``{"dotted.key": value}`` overrides (e.g. the split's size).
        unsafe_load: plain ``torch.load`` for the checkpoint (trusted files only).
        method: ``"scale"`` (one factor for every level) or ``"levels"`` (one per level:
            nominal at each fitted level whatever the head's shape; :mod:`rle.calibration`).

    Returns:
        the :class:`rle.calibration.Calibration` (coverage before and after on the split).
    """
    from rle.apis.inference import init_model

    model = init_model(config, checkpoint, device, unsafe_load=unsafe_load,
                       cfg_options=cfg_options, calibration=None)  # fmt: skip
    calibration = calibrate_model(model, model.cfg, levels, per_keypoint, min_count,
                                  max_instances, method)  # fmt: skip
    if out is not False:
        save_calibration(calibration, Path(out) if out else calibration_path(checkpoint))
    return calibration
