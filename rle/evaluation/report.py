"""The comparison report: tables (Markdown, CSV, JSON) and plots (PNG) from several runs.

Inputs are plain: one row dict per run (metrics, cost, status) and, per run, the prediction
records written by :class:`rle.evaluation.dump.DumpPredictions`.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from rle.evaluation.functional import (
    interval_coverage,
    keypoint_pck,
    object_keypoint_similarity,
    reliability_bins,
)

__all__ = [
    "COLUMNS",
    "markdown_table",
    "pck_curve",
    "plot_error_histograms",
    "plot_examples",
    "plot_flow_density",
    "plot_pck_curves",
    "plot_reliability",
    "records_interval_coverage",
    "records_keypoint_nll",
    "records_residuals",
    "seed_group",
    "summarize_seeds",
    "summary_markdown",
    "write_summary",
    "write_tables",
]

# (key in the row dict, column title, format)
COLUMNS = (
    ("name", "run", "{}"),
    ("head", "head", "{}"),
    ("status", "status", "{}"),
    ("AP", "AP", "{:.3f}"),
    ("AP50", "AP50", "{:.3f}"),
    ("AP75", "AP75", "{:.3f}"),
    ("AR", "AR", "{:.3f}"),
    ("MPJPE", "MPJPE mm", "{:.1f}"),
    ("PA-MPJPE", "PA-MPJPE mm", "{:.1f}"),
    ("PCK@0.05", "PCK@0.05", "{:.3f}"),
    ("EPE", "EPE px", "{:.2f}"),
    ("conf_oks_pearson", "conf-OKS r", "{:.3f}"),
    ("conf_oks_spearman", "conf-OKS rho", "{:.3f}"),
    ("conf_oks_ece", "conf-OKS ECE", "{:.3f}"),
    ("coverage@50", "cover@50", "{:.2f}"),
    ("coverage@68", "cover@68", "{:.2f}"),
    ("coverage@95", "cover@95", "{:.2f}"),
    # after post-hoc calibration on the calibration split (compare(calibrate=True))
    ("coverage@50_cal", "cover@50 cal", "{:.2f}"),
    ("coverage@68_cal", "cover@68 cal", "{:.2f}"),
    ("coverage@95_cal", "cover@95 cal", "{:.2f}"),
    # one factor per keypoint and level (rle.calibration, method="levels")
    ("coverage@50_cal_levels", "cover@50 cal-lvl", "{:.2f}"),
    ("coverage@68_cal_levels", "cover@68 cal-lvl", "{:.2f}"),
    ("coverage@95_cal_levels", "cover@95 cal-lvl", "{:.2f}"),
    # mean negative log-likelihood of the labelled GT keypoints, image px (records_keypoint_nll)
    ("nll", "NLL px", "{:.2f}"),
    ("params_m", "params M", "{:.2f}"),
    ("gflops", "GFLOPs", "{:.2f}"),
    ("train_iters_per_s", "train it/s", "{:.2f}"),
    ("latency_ms", "latency ms", "{:.1f}"),
)


def _fmt(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def markdown_table(rows: Sequence[dict], with_std: bool = False) -> str:
    """A Markdown table with the columns any row fills; ``with_std`` appends `` ± KEY_std``
    where a row has it (the seed summary)."""
    cols = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    lines = [
        "| " + " | ".join(c[1] for c in cols) + " |",
        "|" + "|".join("---" for _ in cols) + "|",
    ]
    for r in rows:
        cells = []
        for key, _, fmt in cols:
            cell = _fmt(r.get(key), fmt)
            if with_std and r.get(key + "_std") is not None:
                cell += " ± " + _fmt(r[key + "_std"], fmt)
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _write(rows: Sequence[dict], markdown: str, out_dir: Path, stem: str) -> Dict[str, Path]:
    """``STEM.md`` (the given table), ``STEM.csv`` and ``STEM.json`` of ``rows``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {ext: out_dir / f"{stem}.{ext}" for ext in ("md", "csv", "json")}
    paths["md"].write_text(markdown + "\n")
    keys = sorted({k for r in rows for k in r})
    with open(paths["csv"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: r.get(k) for k in keys})
    paths["json"].write_text(json.dumps(list(rows), indent=2, default=float))
    return paths


def write_tables(rows: Sequence[dict], out_dir: Path) -> Dict[str, Path]:
    """``report.md``, ``report.csv`` and ``report.json`` in ``out_dir``."""
    paths = _write(rows, markdown_table(rows), out_dir, "report")
    return {"markdown": paths["md"], "csv": paths["csv"], "json": paths["json"]}


# -- several seeds of one run --------------------------------------------------------------------
_SEED_SUFFIX = re.compile(r"-seed\d+$")


def seed_group(name: str) -> str:
    """The run a row belongs to: its name without a trailing ``-seedN``."""
    return _SEED_SUFFIX.sub("", name)


def summarize_seeds(rows: Sequence[dict]) -> List[dict]:
    """One row per run over its seeds (rows named ``NAME-seedN``, see :func:`seed_group`).

    Every numeric column of :data:`COLUMNS` gets the mean over the seeds that have it and, with
    two or more, the sample standard deviation (``ddof=1``) under ``KEY_std``; ``seeds`` counts
    the seeds with results, ``status`` says how many of how many (crashed seeds are counted,
    not averaged). Groups keep the order of their first row.
    """
    groups: Dict[str, List[dict]] = {}
    for r in rows:
        groups.setdefault(seed_group(str(r["name"])), []).append(r)
    out = []
    for name, members in groups.items():
        ok = [r for r in members if not str(r.get("status", "")).startswith("crashed")]
        heads = [r["head"] for r in members if r.get("head")]
        row = dict(name=name, head=heads[0] if heads else None, seeds=len(ok))
        row["status"] = f"{len(ok)}/{len(members)} seeds"
        for key, _, fmt in COLUMNS:
            if fmt == "{}":
                continue
            values = [
                float(r[key])
                for r in ok
                if isinstance(r.get(key), (int, float)) and math.isfinite(float(r[key]))
            ]
            if values:
                row[key] = float(np.mean(values))
                row[key + "_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
        out.append(row)
    return out


def summary_markdown(summary: Sequence[dict]) -> str:
    """The seed summary as a Markdown table: ``mean ± std`` (just the mean for one seed)."""
    return markdown_table(summary, with_std=True)


def write_summary(summary: Sequence[dict], out_dir: Path) -> Dict[str, Path]:
    """``summary.md``, ``summary.csv`` and ``summary.json`` in ``out_dir``."""
    paths = _write(summary, summary_markdown(summary), out_dir, "summary")
    return {
        f"summary_{k}": v
        for k, v in (("markdown", paths["md"]), ("csv", paths["csv"]), ("json", paths["json"]))
    }


# -- per-run statistics from the prediction records --------------------------------------------
def _labelled(records: List[dict]) -> List[dict]:
    return [
        r for r in records if r.get("keypoints") is not None and r.get("pred_keypoints") is not None
    ]


def _box_sizes(records: List[dict]) -> np.ndarray:
    """``(N,)`` the longer side of each record's box (px): the normaliser of PCK and errors."""
    boxes = np.array([np.asarray(r["bbox"], dtype=np.float64) for r in records]).reshape(-1, 4)
    return np.maximum(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]), 1e-6)


def _errors(records: List[dict]):
    """Per labelled keypoint: pixel error and the error normalised by the box size."""
    records = _labelled(records)
    if not records:
        return np.zeros(0), np.zeros(0)
    sizes = _box_sizes(records)
    px, norm = [], []
    for r, size in zip(records, sizes):
        vis = np.asarray(r["keypoints_visible"]) > 0
        err = np.linalg.norm(
            np.asarray(r["pred_keypoints"]) - np.asarray(r["keypoints"])[:, :2], axis=-1
        )[vis]
        px.append(err)
        norm.append(err / size)
    return np.concatenate(px), np.concatenate(norm)


def pck_curve(records: List[dict], thresholds: np.ndarray) -> np.ndarray:
    """Fraction of labelled keypoints within ``thr * box size`` for each threshold
    (:func:`~rle.evaluation.functional.keypoint_pck` with the box's longer side)."""
    records = _labelled(records)
    if not records:
        return np.full(len(thresholds), np.nan)
    pred = np.stack([np.asarray(r["pred_keypoints"], np.float64) for r in records])
    gt = np.stack([np.asarray(r["keypoints"], np.float64)[:, :2] for r in records])
    mask = np.stack([np.asarray(r["keypoints_visible"]) > 0 for r in records])
    if not mask.any():
        return np.full(len(thresholds), np.nan)
    norm = np.repeat(_box_sizes(records)[:, None], 2, axis=1)
    return np.array([keypoint_pck(pred, gt, mask, t, norm)[1] for t in thresholds])


def _record_array(r: dict, i: int, key: str, shape: tuple, what: str) -> np.ndarray:
    """``r[key]`` as float64 of ``shape`` (``None`` entries any size), or a ValueError naming
    record ``i``, the field and the shape expected."""
    value = r.get(key)
    arr = None if value is None else np.asarray(value, dtype=np.float64)
    if (
        arr is None
        or arr.ndim != len(shape)
        or any(want is not None and got != want for got, want in zip(arr.shape, shape))
    ):
        got = None if arr is None else arr.shape
        want = tuple("*" if w is None else w for w in shape)
        raise ValueError(f"record {i}: {key!r} must be {what} of shape {want}, got {got}")
    return arr


def records_residuals(records: List[dict]):
    """Normalised residuals ``u = (pred - gt) / sigma`` of dumped predictions, per image-plane
    coordinate, in units of sigma.

    ``pred - gt`` is taken in image px and divided by the crop box ``input_scale`` (px per
    normalised unit), the units of ``pred_sigma``: for an unrotated test crop this is
    ``(pred_coords - target) / sigma``. 3-D records give their x and y (depth is not in the
    image; its sigma is left out).

    Args:
        records: :class:`~rle.evaluation.dump.DumpPredictions` records with ``pred_keypoints``
            ``(K, 2)``, ``keypoints`` ``(K, >=2)``, ``keypoints_visible`` ``(K,)``,
            ``pred_sigma`` ``(K, D)`` and ``input_scale`` ``(2,)``.

    Returns:
        ``(u, mask)``: ``(N, K, 2)`` float64 and the ``(N, K)`` labelled keypoints
        (``keypoints_visible > 0``).

    Raises:
        ValueError: no records, or a record without one of the fields or of another shape
            (naming the record and the field).
    """
    if not records:
        raise ValueError("records: no prediction records")
    k = len(np.asarray(records[0].get("keypoints_visible", ())))
    us, masks = [], []
    for i, r in enumerate(records):
        pred = _record_array(r, i, "pred_keypoints", (k, 2), "image px")
        gt = _record_array(r, i, "keypoints", (k, None), "image px")[:, :2]
        sigma = _record_array(r, i, "pred_sigma", (k, None), "normalised sigma")[:, :2]
        crop = _record_array(r, i, "input_scale", (2,), "the crop box (w, h) px")
        vis = _record_array(r, i, "keypoints_visible", (k,), "visibility")
        us.append((pred - gt) / crop / np.maximum(sigma, 1e-12))
        masks.append(vis > 0)
    return np.stack(us), np.stack(masks)


def records_interval_coverage(
    records: List[dict], scale: Dict[float, float], calibration=None
) -> dict:
    """Coverage of the intervals ``mu +- scale[level] * sigma`` over dumped 2-D predictions.

    Args:
        records: prediction records with ``pred_sigma`` (normalised crop units) and
            ``input_scale`` (crop size in image px).
        scale: ``{level: k}``, e.g. a head's ``interval_scale(levels)``.
        calibration: a :class:`rle.calibration.Calibration`: its calibrated intervals
            instead (``c_l * k(l) * sigma``; ``sigma_median`` is of ``c * sigma``).

    Returns:
        ``coverage@NN`` per level, and the medians of sigma and of the absolute residual over
        labelled coordinates (``sigma_median``, ``abs_residual_median``, normalised units):
        how far sigma sits from the error it describes.
    """
    crop = np.stack([np.asarray(r["input_scale"], float) for r in records])[:, None, :]
    pred = np.stack([np.asarray(r["pred_keypoints"], float) for r in records]) / crop
    gt = np.stack([np.asarray(r["keypoints"], float)[:, :2] for r in records]) / crop
    raw = np.stack([np.asarray(r["pred_sigma"], float) for r in records])[..., :2]
    sigma = raw if calibration is None else calibration.apply(raw)
    mask = np.stack([np.asarray(r["keypoints_visible"]) > 0 for r in records])
    out = {}
    for lv, k in scale.items():
        # a per-level calibration has a sigma of its own at each level
        level_sigma = raw if calibration is None else calibration.apply(raw, lv)
        cover = interval_coverage(pred, gt, level_sigma, mask, levels=[lv], quantiles={lv: k})
        out[f"coverage@{int(round(lv * 100))}"] = cover[lv]
    out["sigma_median"] = float(np.median(sigma[mask]))
    out["abs_residual_median"] = float(np.median(np.abs(pred - gt)[mask]))
    return out


def records_keypoint_nll(records: List[dict], depth_scale: Optional[float] = None):
    """Mean negative log-likelihood of the ground truth per labelled keypoint, in image px.

    Each record's ``pred_log_likelihood`` ``(K,)`` is the log density of the GT keypoint under
    the head's predictive density in normalised crop units (per unit of normalised area: one
    normalised unit along x is ``input_scale[0]`` image px, along y ``input_scale[1]``).
    Per unit of image area it is ``ll - log(input_scale_x) - log(input_scale_y)``, so::

        nll_px = -ll + log(input_scale_x) + log(input_scale_y)

    averaged over every labelled keypoint (``keypoints_visible > 0``) of every record. A
    proper scoring rule: lower is better, and it rewards sharp intervals only where they are
    right. 3-D densities (``pred_coords`` ``(K, 3)``) also have a normalised depth unit of
    ``depth_scale`` mm (the model's ``test_cfg["depth_scale"]``): their NLL is per px² mm,
    ``+ log(depth_scale)``.

    Args:
        records: :class:`~rle.evaluation.dump.DumpPredictions` records.
        depth_scale: mm per normalised depth unit; required for 3-D records.

    Returns:
        the mean in nats, ``None`` when no record has ``pred_log_likelihood`` (heads without a
        density), NaN without labelled keypoints; ``inf`` if a labelled GT has density 0.

    Raises:
        ValueError: some records have ``pred_log_likelihood`` and others not, a field of
            another shape, a NaN log-likelihood at a labelled keypoint, or 3-D records
            without a positive ``depth_scale`` (each naming the record).
    """
    have = [r.get("pred_log_likelihood") is not None for r in records]
    if not any(have):
        return None
    if not all(have):
        i = have.index(False)
        raise ValueError(
            f"record {i}: no 'pred_log_likelihood' while other records have one (one head's "
            "records must all carry it)"
        )
    total, count = 0.0, 0
    for i, r in enumerate(records):
        vis = _record_array(r, i, "keypoints_visible", (None,), "visibility")
        ll = _record_array(r, i, "pred_log_likelihood", vis.shape, "the log density per keypoint")
        crop = _record_array(r, i, "input_scale", (2,), "the crop box (w, h) px")
        mask = vis > 0
        if np.isnan(ll[mask]).any():
            raise ValueError(f"record {i}: 'pred_log_likelihood' is NaN at a labelled keypoint")
        nll = -ll[mask] + math.log(crop[0]) + math.log(crop[1])
        coords = r.get("pred_coords")
        if coords is not None and np.asarray(coords).shape[-1] == 3:
            if not (isinstance(depth_scale, (int, float)) and depth_scale > 0):
                raise ValueError(
                    f"record {i}: a 3-D density needs depth_scale > 0 (mm per normalised "
                    f"depth unit), got {depth_scale!r}"
                )
            nll = nll + math.log(depth_scale)
        total += float(nll.sum())
        count += int(mask.sum())
    return total / count if count else float("nan")


def instance_confidence_and_oks(records: List[dict], sigmas: np.ndarray):
    """Instance confidence (mean keypoint score) and OKS with the instance's ground truth."""
    conf, oks = [], []
    for r in records:
        if r.get("keypoints") is None or r.get("pred_scores") is None:
            continue
        area = r.get("area")
        if area is None:
            b = np.asarray(r["bbox"], dtype=np.float64)
            area = (b[2] - b[0]) * (b[3] - b[1])
        value = object_keypoint_similarity(
            np.asarray(r["pred_keypoints"])[None],
            np.asarray(r["keypoints"])[None, :, :2],
            np.asarray(r["keypoints_visible"])[None],
            np.array([float(area)]),
            sigmas,
        )[0]
        if np.isfinite(value):
            conf.append(float(np.mean(r["pred_scores"])))
            oks.append(float(value))
    return np.array(conf), np.array(oks)


# -- plots ---------------------------------------------------------------------------------------
#: the longer side, in px, at which plot_examples draws each crop
_EXAMPLE_PX = 256


def _figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, plt.subplots(*args, **kwargs)


def _finish(plt, fig, ax, path: Path, legend: bool = True, dpi: int = 100) -> Path:
    if legend:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_pck_curves(runs: Dict[str, List[dict]], path: Path) -> Path:
    """PCK against the threshold (fraction of the box size), one curve per run."""
    thresholds = np.linspace(0, 0.3, 61)
    plt, (fig, ax) = _figure(figsize=(5, 4))
    for name, records in runs.items():
        ax.plot(thresholds, pck_curve(records, thresholds), label=name)
    ax.set_xlabel("threshold (fraction of box size)")
    ax.set_ylabel("PCK")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    return _finish(plt, fig, ax, path)


def plot_reliability(runs: Dict[str, List[dict]], sigmas: np.ndarray, path: Path) -> Path:
    """Reliability diagram: mean OKS per confidence bin, one line per run."""
    plt, (fig, ax) = _figure(figsize=(5, 4))
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="calibrated")
    for name, records in runs.items():
        conf, oks = instance_confidence_and_oks(records, sigmas)
        if conf.size == 0:
            continue
        bins = reliability_bins(np.clip(conf, 0, 1), oks, 10)
        keep = bins["count"] > 0
        ax.plot(bins["confidence"][keep], bins["accuracy"][keep], "o-", ms=3, label=name)
    ax.set_xlabel("instance confidence")
    ax.set_ylabel("mean OKS")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    return _finish(plt, fig, ax, path)


def plot_error_histograms(runs: Dict[str, List[dict]], path: Path) -> Path:
    """Histogram of per-keypoint pixel errors, one per run."""
    plt, (fig, ax) = _figure(figsize=(5, 4))
    all_err = [_errors(r)[0] for r in runs.values()]
    top = max([np.percentile(e, 98) for e in all_err if e.size] or [1.0])
    for (name, _), err in zip(runs.items(), all_err):
        if err.size:
            ax.hist(
                np.clip(err, 0, top),
                bins=40,
                range=(0, top),
                histtype="step",
                label=name,
                density=True,
            )
    ax.set_xlabel("keypoint error (px)")
    ax.set_ylabel("density")
    return _finish(plt, fig, ax, path)


def _unit_references(ax, grid: np.ndarray) -> None:
    gauss = np.exp(-0.5 * grid**2) / math.sqrt(2 * math.pi)
    ax.plot(grid, gauss, "k--", lw=1, label="Gaussian (var 1)")
    b = 1 / math.sqrt(2)
    ax.plot(grid, np.exp(-np.abs(grid) / b) / (2 * b), "k:", lw=1, label="Laplace (var 1)")


def plot_flow_density(
    runs: Dict[str, List[dict]],
    densities: Dict[str, np.ndarray],
    grid: np.ndarray,
    path: Path,
) -> Path:
    """Does each head's density fit its residuals? One panel per run with sigma.

    Each panel: the histogram of the val residuals ``u = (pred - gt) / sigma``
    (:func:`records_residuals`: x and y pooled, labelled keypoints, units of sigma; the
    share outside the grid is named in the title), the Gaussian and the Laplace density of
    unit *variance* (fixed references: a sigma that is the residual's standard deviation, as
    a heatmap's second moment is meant to be, puts a well-fitted histogram on them), and for
    heads with a learned density (RLE: its flow's marginal, :data:`densities`) that density,
    which the histogram should follow whatever its shape. Runs without sigma get no panel; a
    figure with none says so.

    Args:
        runs: run name -> prediction records.
        densities: run name -> the learned density on ``grid`` (RLE heads only).
        grid: ``(G,)`` evenly spaced, units of sigma.
        path: the PNG (``flow_density.png`` in the report).
    """
    grid = np.asarray(grid, dtype=np.float64)
    names = [n for n, recs in runs.items() if recs and recs[0].get("pred_sigma") is not None]
    cols = min(max(len(names), 1), 3)
    rows = max(1, -(-len(names) // cols))
    plt, (fig, axes) = _figure(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    if not names:
        _unit_references(flat[0], grid)
        flat[0].set_title("no run predicts sigma", fontsize=8)
    step = grid[1] - grid[0] if grid.size > 1 else 1.0
    edges = np.concatenate([grid - step / 2, grid[-1:] + step / 2])
    for ax, name in zip(flat, names):
        u, mask = records_residuals(runs[name])
        u = u[mask].ravel()
        inside = u[(u >= edges[0]) & (u <= edges[-1])]
        if u.size:
            # normalised by every residual, so the share outside the grid stays missing mass
            ax.hist(inside, bins=edges, weights=np.full(inside.size, 1 / (u.size * step)),
                    color="0.75", label=f"val residuals (n={u.size})")  # fmt: skip
        _unit_references(ax, grid)
        if densities.get(name) is not None:
            ax.plot(grid, densities[name], "C3", lw=1.5, label="learned density")
        outside = 1 - inside.size / u.size if u.size else float("nan")
        ax.set_title(f"{name}\n{outside:.1%} outside |u| <= {edges[-1]:.1f}", fontsize=8)
        ax.set_xlabel("normalised residual (pred - gt) / sigma")
        ax.set_ylabel("density")
        ax.legend(fontsize=6)
    for ax in flat[max(len(names), 1) :]:
        ax.axis("off")
    return _finish(plt, fig, flat[0], path, legend=not names)


def plot_examples(
    runs: Dict[str, List[dict]],
    path: Path,
    num: int = 4,
    skeleton: Optional[Sequence] = None,
    sigma_scale: Optional[Dict[str, float]] = None,
) -> Path:
    """A grid of example crops (rows: runs, columns: instances) with predicted keypoints and,
    for heads with sigma, ellipses of ``sigma_scale[run] * sigma`` (default 1 sigma; pass a
    run's 68 % residual quantile to draw its 68 % interval), drawn by
    :func:`rle.visualization.draw_pose` (skeleton yellow, keypoints red, ellipses cyan)."""
    import cv2

    from rle.visualization import draw_pose

    names = list(runs)
    plt, (fig, axes) = _figure(
        len(names), num, figsize=(2.2 * num, 2.6 * len(names)), squeeze=False
    )
    for i, name in enumerate(names):
        records = runs[name][:num]
        for j in range(num):
            ax = axes[i][j]
            ax.axis("off")
            if j >= len(records):
                continue
            r = records[j]
            img = cv2.imread(str(r["img_path"])) if r.get("img_path") else None
            if img is None:
                continue
            x1, y1, x2, y2 = np.asarray(r["bbox"], dtype=float)
            pad = 0.15 * max(x2 - x1, y2 - y1)
            x1, y1 = max(int(x1 - pad), 0), max(int(y1 - pad), 0)
            x2, y2 = min(int(x2 + pad), img.shape[1]), min(int(y2 + pad), img.shape[0])
            if x2 <= x1 or y2 <= y1:
                continue
            # drawn at a fixed display size: small crops would get pixel-sized marks
            zoom = _EXAMPLE_PX / max(x2 - x1, y2 - y1)
            crop = cv2.resize(img[y1:y2, x1:x2], None, fx=zoom, fy=zoom,
                              interpolation=cv2.INTER_LINEAR)  # fmt: skip
            # index units: crop pixel j (centre j) spans zoomed pixels [j*z, (j+1)*z]
            kp = (np.asarray(r["pred_keypoints"], float) - [x1, y1] + 0.5) * zoom - 0.5
            ellipses = None
            sigma = r.get("pred_sigma")
            if sigma is not None:
                k_sigma = (sigma_scale or {}).get(name, 1.0)
                scale = k_sigma * np.asarray(r["input_scale"], dtype=float) * zoom
                ellipses = np.asarray(sigma, dtype=float)[:, :2] * scale
            drawn = draw_pose(crop, kp, skeleton=skeleton, interval_axes=ellipses,
                              colors=(0, 0, 255), link_color=(0, 255, 255),
                              ellipse_color=(255, 255, 0), radius=3, thickness=2)  # fmt: skip
            ax.imshow(drawn[:, :, ::-1])
            if j == 0:
                ax.set_title(name, fontsize=8, loc="left")
    return _finish(plt, fig, axes[0][0], path, legend=False, dpi=90)
