"""Evaluating one run of a comparison: its metrics, calibration, costs and prediction records.

Every run is evaluated on its config's validation split with the config's evaluators plus a
:class:`~rle.evaluation.PCKMetric` (for every COCO-style run) and a
:class:`~rle.evaluation.DumpPredictions` that keeps the per-instance predictions for the plots.
Heads that predict sigma report interval coverage with the interval scale of their own
predictive density (``head.interval_scale``: for RLE heads the density their loss implies).
Heads with a density report the mean NLL of the GT keypoints in image px
(:func:`~rle.evaluation.report.records_keypoint_nll`, column ``nll``). With ``calibrate`` a run
with sigma and a density is calibrated on its config's calibration split
(:mod:`rle.calibration_run`, one inference pass) by both methods of :mod:`rle.calibration`,
and its val coverage reported again: one sigma factor per keypoint (``coverage@NN_cal``: is
the head's density the right shape?) and one per keypoint and level
(``coverage@NN_cal_levels``: the conformal intervals); the per-level fit is saved beside
its checkpoint (``CKPT.calibration.json``, what :func:`rle.apis.init_model` reads).
"""

from __future__ import annotations

import time
import traceback
from typing import Any, List, NamedTuple, Optional

import numpy as np

from rle.calibration import DEFAULT_LEVELS
from rle.compare.runs import RunSpec
from rle.compare.training import load_run_config

__all__ = ["COVERAGE_LEVELS", "DENSITY_GRID", "RunResult", "evaluate_run"]

#: nominal levels of the coverage columns
COVERAGE_LEVELS = (0.5, 0.68, 0.95)
#: the levels the comparison's calibration fits (the library's default)
CALIBRATION_LEVELS = DEFAULT_LEVELS
#: both calibration methods are fitted on the same split; the coverage columns' suffixes
SUFFIX = {"scale": "_cal", "levels": "_cal_levels"}
#: the one saved beside the checkpoint (what inference applies): nominal at every fitted level
SAVED_METHOD = "levels"
#: where the learned residual densities are plotted (units of sigma)
DENSITY_GRID = np.linspace(-4, 4, 161)


class RunResult(NamedTuple):
    """One evaluated (or crashed) run.

    Attributes:
        row: the table row: name, head, status, config, metrics, costs, calibration.
        records: the dumped predictions (:func:`rle.evaluation.load_predictions`), or ``None``.
        density: the head's learned residual density on :data:`DENSITY_GRID`, or ``None``.
        meta: the validation dataset's ``metainfo`` (skeleton, OKS sigmas), or ``None``.
    """

    row: dict
    records: Optional[List[dict]] = None
    density: Optional[np.ndarray] = None
    meta: Optional[Any] = None


def crashed(spec: RunSpec, error: str) -> RunResult:
    """The row of a run that could not be trained or evaluated."""
    return RunResult(dict(name=spec.name, head=None, status=f"crashed: {error}",
                          config=str(spec.config)))  # fmt: skip


def _with_comparison_evaluators(cfg, dump_file: str) -> None:
    evaluators = cfg.val_evaluator if isinstance(cfg.val_evaluator, list) else [cfg.val_evaluator]
    types = {e.get("type") for e in evaluators}
    evaluators = list(evaluators)
    if "CocoKeypointMetric" in types and "PCKMetric" not in types:
        evaluators.append(dict(type="PCKMetric"))  # PCK/EPE for every 2-D run
    cfg.test_dataloader = cfg.val_dataloader
    cfg.test_evaluator = evaluators + [dict(type="DumpPredictions", out_file=dump_file)]


def _calibrate(row: dict, model, cfg, spec: RunSpec, records, scale, max_instances) -> None:
    """Fit on the calibration split, then the val coverage of the calibrated sigma into
    ``row``; a run that cannot be calibrated says why in ``row["calibration"]``."""
    from rle.calibration_run import calibration_records, fit_records
    from rle.calibration_store import calibration_path, save_calibration
    from rle.evaluation.report import records_interval_coverage

    try:
        calib = calibration_records(model, cfg, max_instances)
        fits = {m: fit_records(calib, scale, CALIBRATION_LEVELS, method=m) for m in SUFFIX}
    except Exception as err:  # noqa: BLE001 - no calibration split ...: the val metrics stand
        row["calibration"] = f"failed: {type(err).__name__}: {err}"[:300]
        return
    val_scale = {lv: scale[lv] for lv in COVERAGE_LEVELS}
    for method, suffix in SUFFIX.items():
        covered = records_interval_coverage(records, val_scale, calibration=fits[method])
        row.update({f"{k}{suffix}": v for k, v in covered.items() if k.startswith("coverage@")})
    cal = fits[SAVED_METHOD]
    row["calibration"] = "per keypoint" if cal.per_keypoint else "global"
    row["calibration_instances"] = len(calib)
    row["calibration_scale"] = cal.global_scale
    try:
        row["calibration_file"] = str(save_calibration(cal, calibration_path(spec.checkpoint)))
    except (FileNotFoundError, ValueError):  # finished without a checkpoint: nothing to sit by
        pass


def evaluate_run(
    spec: RunSpec,
    cfg_options: Optional[dict] = None,
    train: bool = True,
    timing_repeats: int = 5,
    unsafe_load: bool = False,
    calibrate: bool = False,
    calibration_instances: Optional[int] = None,
) -> RunResult:
    """Train ``spec`` in this process if it is not finished (and ``train``), then evaluate it.

    A crash in either step is caught: the row's status says ``crashed: ...`` and the
    traceback goes to ``WORK_DIR/crash.log``.

    Args:
        spec: the run.
        cfg_options: overrides for its config.
        train: ``False``: an unfinished run is reported as not trained instead.
        timing_repeats: timed calls per cost measurement.
        unsafe_load: load its checkpoints with plain ``torch.load`` (trusted files only).
        calibrate: fit the interval calibration on the config's ``calib_dataloader`` and add
            the calibrated coverage (module docstring).
        calibration_instances: use at most this many instances of the calibration split.

    Returns:
        the :class:`RunResult`.
    """
    from mmengine.runner import Runner

    from rle.engine import mark_finished, setup_engine
    from rle.evaluation.costs import estimator_costs
    from rle.evaluation.dump import load_predictions
    from rle.evaluation.report import records_interval_coverage, records_keypoint_nll

    setup_engine(unsafe_load)
    work_dir = spec.work_dir
    row = dict(name=spec.name, head=None, status="ok", config=str(spec.config))
    try:
        cfg = load_run_config(spec, cfg_options)
        row["head"] = cfg.model.head.type
        dump = work_dir / "predictions.pkl"
        _with_comparison_evaluators(cfg, str(dump))
        if spec.finished:
            row["status"] = "cached"
            cfg.load_from = spec.checkpoint  # done.json's, resolved against the work dir
            runner = Runner.from_cfg(cfg)
        else:
            if not train:
                raise RuntimeError("not trained yet (training disabled)")
            cfg.resume = (work_dir / "last_checkpoint").is_file()
            runner = Runner.from_cfg(cfg)
            start = time.perf_counter()
            runner.train()
            row["train_minutes"] = (time.perf_counter() - start) / 60
            mark_finished(work_dir, runner.epoch)
            row["status"] = "trained"
        start = time.perf_counter()
        for key, value in runner.test().items():
            row[key.split("/", 1)[-1]] = float(value)
        val_batch = next(iter(runner.test_dataloader))
        train_batch = next(iter(runner.train_dataloader))
        row.update(estimator_costs(runner.model, val_batch, train_batch, timing_repeats))
        records = load_predictions(str(dump))
        if records:
            row["score_mean"] = float(np.mean([np.mean(r["pred_scores"]) for r in records]))
        head = runner.model.head
        if records:
            nll = records_keypoint_nll(records, runner.model.test_cfg.get("depth_scale"))
            if nll is not None:
                row["nll"] = nll
        # one call for every level: a flow's interval scale integrates its density
        levels = sorted(set(COVERAGE_LEVELS) | (set(CALIBRATION_LEVELS) if calibrate else set()))
        scales = head.interval_scale(tuple(levels))
        scale = None if scales is None else {lv: scales[lv] for lv in COVERAGE_LEVELS}
        if scale is not None and records and records[0].get("pred_sigma") is not None:
            row.update(records_interval_coverage(records, scale))
            row["coverage_quantiles"] = "learned density"
            row["sigma_q68"] = scale[0.68]
            if calibrate:
                _calibrate(row, runner.model, cfg, spec, records, scales, calibration_instances)
        result = RunResult(row, records, head.residual_density(DENSITY_GRID),
                           runner.test_dataloader.dataset.metainfo)  # fmt: skip
        row["eval_seconds"] = time.perf_counter() - start
        return result
    except Exception as err:  # noqa: BLE001 - a crashed run goes into the report
        work_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / "crash.log").write_text(traceback.format_exc())
        row["status"] = f"crashed: {type(err).__name__}: {str(err)[:160]}"
        return RunResult(row)
