"""Evaluating one run of a comparison: its metrics, calibration, costs and prediction records.

Every run is evaluated on its config's validation split with the config's evaluators plus a
:class:`~rle.evaluation.PCKMetric` (for every COCO-style run) and a
:class:`~rle.evaluation.DumpPredictions` that keeps the per-instance predictions for the plots.
Heads that predict sigma report interval coverage with the interval scale of their own
predictive density (``head.interval_scale``: for RLE heads the density their loss implies).
"""

from __future__ import annotations

import time
import traceback
from typing import Any, List, NamedTuple, Optional

import numpy as np

from rle.compare.runs import RunSpec
from rle.compare.training import load_run_config

__all__ = ["COVERAGE_LEVELS", "DENSITY_GRID", "RunResult", "evaluate_run"]

#: nominal levels of the coverage columns
COVERAGE_LEVELS = (0.5, 0.68, 0.95)
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


def evaluate_run(
    spec: RunSpec,
    cfg_options: Optional[dict] = None,
    train: bool = True,
    timing_repeats: int = 5,
    unsafe_load: bool = False,
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

    Returns:
        the :class:`RunResult`.
    """
    from mmengine.runner import Runner

    from rle.engine import mark_finished, setup_engine
    from rle.evaluation.costs import estimator_costs
    from rle.evaluation.dump import load_predictions
    from rle.evaluation.report import records_interval_coverage

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
        scale = head.interval_scale(COVERAGE_LEVELS)
        if scale is not None and records and records[0].get("pred_sigma") is not None:
            row.update(records_interval_coverage(records, scale))
            row["coverage_quantiles"] = "learned density"
            row["sigma_q68"] = scale[0.68]
        result = RunResult(row, records, head.residual_density(DENSITY_GRID),
                           runner.test_dataloader.dataset.metainfo)  # fmt: skip
        row["eval_seconds"] = time.perf_counter() - start
        return result
    except Exception as err:  # noqa: BLE001 - a crashed run goes into the report
        work_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / "crash.log").write_text(traceback.format_exc())
        row["status"] = f"crashed: {type(err).__name__}: {str(err)[:160]}"
        return RunResult(row)
