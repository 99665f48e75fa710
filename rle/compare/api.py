"""``compare``: train what is missing, evaluate every run, write one report."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from rle.compare.evaluate import DENSITY_GRID, RunResult, crashed, evaluate_run
from rle.compare.runs import expand_runs
from rle.compare.training import train_parallel

__all__ = ["Report", "compare"]


@dataclass
class Report:
    """What :func:`compare` measured and wrote.

    Attributes:
        rows: one dict per run (``name``, ``head``, ``status``, metrics, costs, calibration).
        summary: one row per run over its seeds (mean and ``KEY_std``), or ``[]`` when no run
            has several seeds.
        paths: name -> written file (``markdown``, ``csv``, ``json``, the summary's, the plots).
        train_seconds: wall time spent training.
        total_seconds: wall time of the whole comparison.
        plot_seconds: wall time of the tables and plots.
    """

    rows: List[dict]
    summary: List[dict] = field(default_factory=list)
    paths: Dict[str, Path] = field(default_factory=dict)
    train_seconds: float = 0.0
    total_seconds: float = 0.0
    plot_seconds: float = 0.0

    @property
    def eval_seconds(self) -> float:
        """Wall time of evaluation and cost measurement, over the runs."""
        return sum(r.get("eval_seconds", 0.0) for r in self.rows)

    def markdown(self) -> str:
        """The run table (``report.md``)."""
        from rle.evaluation.report import markdown_table

        return markdown_table(self.rows)

    def timing(self) -> str:
        """The time split: training against the comparison itself."""
        return (
            f"{self.total_seconds:.1f} s in all: training {self.train_seconds:.1f} s, the "
            f"comparison itself {self.total_seconds - self.train_seconds:.1f} s (evaluation "
            f"and costs {self.eval_seconds:.1f} s, tables and plots {self.plot_seconds:.1f} s)"
        )

    def __str__(self) -> str:
        from rle.evaluation.report import summary_markdown

        parts = [self.markdown(), ""]
        if self.summary:
            parts += ["over the seeds (mean ± sample std):\n", summary_markdown(self.summary), ""]
        parts += [f"{key:>17}: {path}" for key, path in self.paths.items()]
        return "\n".join(parts + ["", self.timing()])


def _write_report(results: List[RunResult], out: Path) -> tuple:
    """Tables, seed summary and plots; returns ``(paths, summary)``."""
    from rle.evaluation import report

    rows = [r.row for r in results]
    paths = report.write_tables(rows, out)
    summary = report.summarize_seeds(rows)
    if len(summary) < len(rows):  # some run has several seeds
        paths.update(report.write_summary(summary, out))
    else:
        summary = []
    done = [r for r in results if r.records is not None]
    if not done:  # every run crashed: the table says why
        return paths, summary
    runs = {r.row["name"]: r.records for r in done}
    densities = {r.row["name"]: r.density for r in done if r.density is not None}
    metas = [r.meta for r in reversed(done) if r.meta is not None]  # the last run's first
    sigmas = next((np.asarray(m["sigmas"]) for m in metas if m.get("sigmas") is not None), None)
    skeleton = next((m["skeleton_links"] for m in metas if "skeleton_links" in m), None)
    if sigmas is None:  # no OKS sigmas (3-D data): a uniform stand-in
        sigmas = np.full(len(done[0].records[0]["pred_scores"]), 0.05)
    paths["pck_curves"] = report.plot_pck_curves(runs, out / "pck_curves.png")
    paths["reliability"] = report.plot_reliability(runs, sigmas, out / "reliability.png")
    paths["flow_density"] = report.plot_flow_density(
        runs, densities, DENSITY_GRID, out / "flow_density.png"
    )
    paths["error_histograms"] = report.plot_error_histograms(runs, out / "error_histograms.png")
    # ellipses: the 68 % interval where the head's density gives it, else 1 sigma
    scale = {r["name"]: r["sigma_q68"] for r in rows if r.get("sigma_q68")}
    paths["examples"] = report.plot_examples(
        runs, out / "examples.png", skeleton=skeleton, sigma_scale=scale
    )
    return paths, summary


def compare(
    configs: Sequence,
    *,
    work_root="work_dirs/compare",
    out=None,
    heads: Optional[str] = None,
    seeds: Optional[Sequence[int]] = None,
    jobs: int = 1,
    cfg_options: Optional[dict] = None,
    train: bool = True,
    timing_repeats: int = 5,
    log: Callable[[str], None] = print,
    unsafe_load: bool = False,
    calibrate: bool = False,
    calibration_instances: Optional[int] = None,
) -> Report:
    """Compare heads (or any runs) on their validation splits, training what is missing.

    Every run named by ``configs`` (:func:`~rle.compare.runs.expand_runs`) is trained unless
    its work dir holds a finished run (an interrupted run resumes), evaluated, and measured
    (parameters, FLOPs, training iterations/s, latency); one report is written to ``out``.
    A run that crashes is a row with its error (traceback in ``WORK_DIR/crash.log``).

    Args:
        configs: config files, folders of configs or of finished work dirs; with ``heads``,
            one base config.
        work_root: the runs' work dirs go to ``work_root/NAME``.
        out: the report folder; default ``work_root/report``.
        heads: a file defining ``heads = dict(name=head_block, ...)``, each replacing the base
            config's ``model.head``.
        seeds: train every config once per seed (runs ``NAME-seedN``) and summarise the mean
            and sample standard deviation over the seeds.
        jobs: train up to this many runs at once in worker processes (``cpu_count // jobs``
            threads each); evaluation and timing stay sequential so that costs are undisturbed.
        cfg_options: ``{"dotted.key": value}`` overrides for every config.
        train: ``False``: only evaluate runs that are already trained.
        timing_repeats: timed calls per cost measurement.
        log: where progress lines go (``print`` by default).
        unsafe_load: load checkpoints (resume, finished runs) with plain ``torch.load``, which
            runs code in the file: only for trusted work dirs (``--unsafe-load``); default the
            restricted loader of :mod:`rle.serialization`.
        calibrate: also fit every run with sigma and a density of its own on its config's
            calibration split (``calib_dataloader``: never the val split; one inference pass,
            :mod:`rle.calibration_run`), save it beside the run's checkpoint
            (``CKPT.calibration.json``, the per-level method) and report the val coverage of
            the calibrated intervals (``coverage@NN_cal``: one factor per keypoint;
            ``coverage@NN_cal_levels``: one per keypoint and level). A run that cannot be
            calibrated keeps its row, ``calibration`` saying why.
        calibration_instances: use at most this many instances of each calibration split
            (default: the whole split, a few hundred instances in the synthetic configs).

    Returns:
        the :class:`Report` (``str(report)`` is what ``tools/compare.py`` prints).

    Example:
        >>> from rle.compare import compare
        >>> report = compare(["configs/demo"], work_root="work_dirs/demo", jobs=2)
        >>> best = max(report.rows, key=lambda r: r.get("AP", 0))
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an int >= 1, got {jobs!r}")
    if not isinstance(timing_repeats, int) or timing_repeats < 1:
        raise ValueError(f"timing_repeats must be an int >= 1, got {timing_repeats!r}")
    if not isinstance(unsafe_load, bool):
        raise TypeError(f"unsafe_load must be a bool, got {unsafe_load!r}")
    if not isinstance(calibrate, bool):
        raise TypeError(f"calibrate must be a bool, got {calibrate!r}")
    if calibration_instances is not None and (
        isinstance(calibration_instances, bool)
        or not isinstance(calibration_instances, int)
        or calibration_instances < 1
    ):
        raise ValueError(
            f"calibration_instances must be an int >= 1 or None, got {calibration_instances!r}"
        )
    started = time.perf_counter()
    specs = expand_runs(configs, work_root, heads, seeds)
    out = Path(out) if out is not None else Path(work_root) / "report"
    trained, parallel_seconds = {}, 0.0
    if jobs > 1 and train:
        log(f"training the unfinished runs, {jobs} at a time")
        trained = train_parallel(specs, jobs, cfg_options, log=log, unsafe_load=unsafe_load)
        parallel_seconds = time.perf_counter() - started
    results = []
    for i, spec in enumerate(specs, 1):
        log(f"[{i}/{len(specs)}] {spec.name}: training (if needed) and evaluating")
        error, minutes = trained.get(spec.name, (None, None))
        if error is not None:
            result = crashed(spec, error)
        else:
            result = evaluate_run(spec, cfg_options, train, timing_repeats, unsafe_load,
                                  calibrate, calibration_instances)  # fmt: skip
            if minutes is not None and result.row["status"] == "cached":
                result.row["status"], result.row["train_minutes"] = "trained", minutes
        results.append(result)
        log(f"[{i}/{len(specs)}] {spec.name}: {result.row['status']}")
        if str(result.row.get("calibration", "")).startswith("failed"):
            log(f"[{i}/{len(specs)}] {spec.name}: calibration {result.row['calibration']}")
    plot_start = time.perf_counter()
    paths, summary = _write_report(results, out)
    rows = [r.row for r in results]
    return Report(
        rows=rows,
        summary=summary,
        paths=paths,
        train_seconds=parallel_seconds
        + sum(60 * r.get("train_minutes", 0.0) for r in rows if r["name"] not in trained),
        total_seconds=time.perf_counter() - started,
        plot_seconds=time.perf_counter() - plot_start,
    )
