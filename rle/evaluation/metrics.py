"""mmengine ``BaseMetric`` wrappers around :mod:`rle.evaluation.functional`.

* :class:`CocoKeypointMetric`: COCO keypoint AP/AR through pycocotools' ``COCOeval`` (OKS
  sigmas from the dataset), instance rescoring, OKS-NMS, and calibration of the instance
  confidence against OKS (Pearson, Spearman, ECE) plus sigma-interval coverage for heads with
  sigma.
* :class:`PCKMetric`: PCK@alpha (box-normalised), AUC and EPE in pixels.
* :class:`H36MMetric`: MPJPE and PA-MPJPE in mm, overall and per action.

They consume the data samples returned by :meth:`TopdownPoseEstimator.predict`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os.path as osp
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from rle.datasets.coco import load_coco
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
    residual_quantile,
    spearman,
)
from rle.registry import METRICS

__all__ = ["CocoKeypointMetric", "H36MMetric", "PCKMetric", "instance_scores", "oks_nms"]

SCORE_MODES = ("bbox", "keypoint", "bbox_keypoint", "bbox_rle")
NMS_AREAS = ("bbox", "input_scale")
DET_AREAS = ("keypoints", "bbox")
COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def _get(sample, key, default=None):
    """A field of a data sample given as a dict (mmengine's Evaluator converts data elements
    with ``to_dict``) or as a ``BaseDataElement``."""
    return sample.get(key, default)


def _check_not_empty(results: List[dict], metric: BaseMetric) -> None:
    """A clear error instead of numpy's on ``np.stack([])`` when nothing was evaluated."""
    if not results:
        raise ValueError(
            f"{type(metric).__name__}: no predictions to evaluate (an empty test set, or "
            "process() was never called)"
        )


def _need(sample, key):
    value = _get(sample, key)
    if value is None:
        raise KeyError(f"data sample lacks {key!r} (was it produced by the estimator's predict?)")
    return value


def instance_scores(
    bbox_scores, keypoint_scores, mode: str = "bbox_keypoint", keypoint_score_thr: float = 0.2
) -> np.ndarray:
    """Instance confidence from the box score and the keypoint scores ``(N, K)``:
    ``bbox``; ``keypoint`` (mean); ``bbox_keypoint`` (box x mean of the scores above the
    threshold, MMPose's default); ``bbox_rle`` (box + mean + max, MMPose's RLE mode)."""
    if mode not in SCORE_MODES:
        raise ValueError(f"score_mode must be one of {SCORE_MODES}, got {mode!r}")
    box = np.asarray(bbox_scores, dtype=np.float64).reshape(-1)
    kpt = np.asarray(keypoint_scores, dtype=np.float64)
    if mode == "bbox":
        return box
    if mode == "keypoint":
        return kpt.mean(1)
    if mode == "bbox_rle":
        return box + kpt.mean(1) + kpt.max(1)
    valid = kpt > keypoint_score_thr
    mean = np.where(valid.any(1), (kpt * valid).sum(1) / np.maximum(valid.sum(1), 1), 0.0)
    return box * mean


NMS_PAIR_AREAS = ("kept", "mean")


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    sigmas: np.ndarray,
    thr: float = 0.9,
    *,
    pair_area: str = "kept",
) -> List[int]:
    """Greedy non-maximum suppression of one image's instances by OKS.

    Repeatedly keeps the best-scored remaining instance and drops every other remaining one
    whose OKS with it exceeds ``thr``. The OKS of a pair is the mean over all K joints (no
    visibility, keypoint scores unused) of ``exp(-d^2 / (2 sigma)^2 / (area + eps) / 2)``,
    ``eps = np.spacing(1)``, where ``area`` is chosen by ``pair_area``.

    Args:
        keypoints: ``(N, K, 2)`` keypoint coordinates in pixels.
        scores: ``(N,)`` instance scores; sorted descending (ties: lower index first).
        areas: ``(N,)`` instance areas in pixels^2.
        sigmas: ``(K,)`` OKS sigmas.
        thr: OKS above which an instance is suppressed.
        pair_area: ``"kept"``: the area of the kept instance ``areas[i]`` (rle-pose's
            original rule); ``"mean"``: the mean of the pair's areas ``(areas[i] +
            areas[j]) / 2`` (MMPose's ``oks_iou`` / ``oks_nms``).

    Returns:
        The kept indices into the N instances, in keep order (score descending).

    Raises:
        ValueError: ``pair_area`` is not one of ``("kept", "mean")``.
    """
    if pair_area not in NMS_PAIR_AREAS:
        raise ValueError(f"pair_area must be one of {NMS_PAIR_AREAS}, got {pair_area!r}")
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    order = list(np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"))
    keep = []
    vis = np.ones(keypoints.shape[:2])
    while order:
        i = order.pop(0)
        keep.append(int(i))
        if not order:
            break
        rest = np.asarray(order)
        if pair_area == "mean":
            pair = (areas[i] + areas[rest]) / 2
        else:
            pair = np.full(len(rest), areas[i])
        oks = object_keypoint_similarity(
            keypoints[rest], np.repeat(keypoints[i : i + 1], len(rest), 0), vis[rest], pair, sigmas
        )
        order = [j for j, o in zip(order, oks) if not o > thr]
    return keep


@METRICS.register_module()
class CocoKeypointMetric(BaseMetric):
    """COCO keypoint AP/AR and confidence calibration.

    Reproducing MMPose 1.3.2's ``CocoMetric`` (checked against its numbers on golden data):
    ``nms_area="input_scale", det_area="bbox"`` with the same ``score_mode`` / ``nms_mode`` /
    ``nms_thr``. The defaults (``"bbox"``, ``"keypoints"``) are rle-pose's original protocol.

    Args:
        ann_file: the COCO ground-truth json evaluated against.
        score_mode: instance rescoring (:func:`instance_scores`).
        keypoint_score_thr: for ``bbox_keypoint``.
        nms_mode: ``"oks_nms"`` or ``"none"``; ``nms_thr`` its OKS threshold.
        nms_area: the instance areas OKS-NMS normalises distances with.

            * ``"bbox"`` (default, rle-pose's original rule): the raw area of the data
              sample's ``bbox`` (xyxy), and each pair uses the area of the kept instance
              (:func:`oks_nms` ``pair_area="kept"``).
            * ``"input_scale"`` (MMPose's ``CocoMetric``, the published protocol): the area of
              the padded, aspect-fixed crop box ``prod(input_scale)`` (MMPose's
              ``prod(bbox_scales)``), and each pair uses the mean of its two areas
              (``pair_area="mean"``, MMPose's ``oks_iou``). Needs ``input_scale`` in every
              data sample.
        det_area: the area pycocotools gives each prediction, which decides whether an
            unmatched prediction counts in the (M) / (L) ranges (APm, APl, ARm, ARl).

            * ``"keypoints"`` (default; the COCO results format): no box is written to the
              results, so ``COCO.loadRes`` takes the extent of the keypoints.
            * ``"bbox"`` (MMPose's ``CocoMetric``): the data sample's ``bbox`` is written to
              the results as xywh, and ``loadRes`` (its box branch comes first) takes the box
              area. Needs ``bbox`` in every data sample.
        sigma_distribution: the unit residual distribution whose quantiles define the sigma
            intervals (``"laplace_official"`` for the official RLE loss, ``"laplace"`` for
            MMPose's, ``"gaussian"``).
        outfile_prefix: also write the COCO results json there.

    Attributes:
        kept_ids: after :meth:`compute_metrics` (on the rank that computes), the data-sample
            ``id`` of every prediction that reached COCOeval after NMS, in the order given to
            it (images in order of first appearance, keep order within an image).
    """

    default_prefix = "coco"

    def __init__(
        self,
        ann_file: str,
        score_mode: str = "bbox_keypoint",
        keypoint_score_thr: float = 0.2,
        nms_mode: str = "oks_nms",
        nms_thr: float = 0.9,
        nms_area: str = "bbox",
        det_area: str = "keypoints",
        sigma_distribution: str = "laplace_official",
        outfile_prefix: Optional[str] = None,
        collect_device: str = "cpu",
        prefix: Optional[str] = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        for name, value, choices in (
            ("score_mode", score_mode, SCORE_MODES),
            ("nms_mode", nms_mode, ("oks_nms", "none")),
            ("nms_area", nms_area, NMS_AREAS),
            ("det_area", det_area, DET_AREAS),
        ):
            if value not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {value!r}")
        residual_quantile(0.5, sigma_distribution)  # a typo fails here, not after evaluation
        self.ann_file = ann_file
        self.score_mode = score_mode
        self.keypoint_score_thr = keypoint_score_thr
        self.nms_mode = nms_mode
        self.nms_thr = nms_thr
        self.nms_area = nms_area
        self.det_area = det_area
        self.kept_ids: Optional[List] = None
        self.sigma_distribution = sigma_distribution
        self.outfile_prefix = outfile_prefix

    def process(self, data_batch, data_samples: Sequence) -> None:
        for s in data_samples:
            if self.det_area == "bbox":
                bbox = np.asarray(_need(s, "bbox"), dtype=np.float64).reshape(4)
            else:
                bbox = np.asarray(_get(s, "bbox", np.zeros(4)), dtype=np.float64).reshape(4)
            if self.nms_area == "input_scale":
                input_scale = np.asarray(_need(s, "input_scale"), dtype=np.float64).reshape(2)
            else:
                input_scale = np.asarray(_get(s, "input_scale", (1.0, 1.0)), dtype=np.float64)
            sigma = _get(s, "pred_sigma")
            self.results.append(
                dict(
                    id=_get(s, "id"),
                    img_id=_get(s, "img_id"),
                    category_id=_get(s, "category_id", 1),
                    keypoints=np.asarray(_need(s, "pred_keypoints"), dtype=np.float64),
                    keypoint_scores=np.asarray(_need(s, "pred_scores"), dtype=np.float64),
                    bbox_score=float(_get(s, "bbox_score", 1.0)),
                    bbox=bbox,
                    area=float((bbox[2] - bbox[0]) * (bbox[3] - bbox[1])),
                    input_scale=input_scale,
                    # MMPose's OKS-NMS area: the crop box, prod(bbox_scales)
                    scale_area=float(np.prod(input_scale)),
                    sigma=None if sigma is None else np.asarray(sigma, dtype=np.float64)[:, :2],
                )
            )

    def _load_gt(self):
        # checked as the dataset checks it: a duplicate annotation id would make pycocotools
        # evaluate a ground truth against another's (AP ~0, silently)
        return load_coco(self.ann_file)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        _check_not_empty(results, self)
        gt = self._load_gt()
        sigmas = np.asarray(self.dataset_meta["sigmas"]) if self.dataset_meta else None
        if sigmas is None:
            raise ValueError("CocoKeypointMetric needs dataset_meta['sigmas'] (OKS sigmas)")
        scores = instance_scores(
            [r["bbox_score"] for r in results],
            np.stack([r["keypoint_scores"] for r in results]),
            self.score_mode,
            self.keypoint_score_thr,
        )
        for r, score in zip(results, scores):
            r["score"] = float(score)
        by_image = defaultdict(list)
        for r in results:
            by_image[r["img_id"]].append(r)
        area_key, pair_area = (
            ("scale_area", "mean") if self.nms_area == "input_scale" else ("area", "kept")
        )
        kept = []
        for rs in by_image.values():
            if self.nms_mode == "oks_nms" and len(rs) > 1:
                idx = oks_nms(
                    np.stack([r["keypoints"] for r in rs]),
                    np.array([r["score"] for r in rs]),
                    np.array([r[area_key] for r in rs]),
                    sigmas,
                    self.nms_thr,
                    pair_area=pair_area,
                )
                rs = [rs[i] for i in idx]
            kept.extend(rs)
        self.kept_ids = [r["id"] for r in kept]
        coco_results = []
        for r in kept:
            res = dict(
                image_id=r["img_id"],
                category_id=r["category_id"],
                score=r["score"],
                keypoints=np.c_[r["keypoints"], r["keypoint_scores"]].ravel().tolist(),
            )
            if self.det_area == "bbox":
                x1, y1, x2, y2 = (float(v) for v in r["bbox"])
                res["bbox"] = [x1, y1, x2 - x1, y2 - y1]
            coco_results.append(res)
        if self.outfile_prefix:
            with open(osp.join(f"{self.outfile_prefix}.keypoints.json"), "w") as f:
                json.dump(coco_results, f)
        stats = self._coco_eval(gt, coco_results, sigmas)
        stats.update(self._calibration(gt, kept, sigmas))
        # instances evaluated, after gathering across ranks (and before NMS)
        stats["num_instances"] = float(len(results))
        return stats

    @staticmethod
    def _coco_eval(gt, coco_results, sigmas) -> Dict[str, float]:
        from pycocotools.cocoeval import COCOeval

        if not coco_results:
            return {name: 0.0 for name in COCO_STAT_NAMES}
        with contextlib.redirect_stdout(io.StringIO()):
            dt = gt.loadRes(coco_results)
            ev = COCOeval(gt, dt, "keypoints")
            ev.params.kpt_oks_sigmas = sigmas
            ev.params.useSegm = None
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return {name: float(v) for name, v in zip(COCO_STAT_NAMES, ev.stats)}

    def _calibration(self, gt, results, sigmas) -> Dict[str, float]:
        """OKS of each prediction with its best-matching ground truth in the image."""
        confidences, oks_values = [], []
        pred_px, gt_px, sig, mask, scale = [], [], [], [], []
        for r in results:
            anns = [
                a
                for a in gt.imgToAnns.get(r["img_id"], [])
                if not a.get("iscrowd", 0) and a.get("num_keypoints", 0) > 0
            ]
            if not anns:
                continue
            g = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(len(anns), -1, 3)
            # an unlabelled keypoint may be NaN in the file (the dataset reads it as 0): OKS
            # masks it out, but NaN * 0 is NaN
            g[..., :2] = np.where(g[..., 2:] > 0, g[..., :2], 0.0)
            oks = object_keypoint_similarity(
                np.repeat(r["keypoints"][None], len(anns), 0),
                g[..., :2],
                g[..., 2],
                np.array([a["area"] for a in anns]),
                sigmas,
            )
            best = int(np.nanargmax(oks))
            confidences.append(r["score"])
            oks_values.append(oks[best])
            if r["sigma"] is not None:
                pred_px.append(r["keypoints"])
                gt_px.append(g[best, :, :2])
                sig.append(r["sigma"])
                mask.append(g[best, :, 2] > 0)
                scale.append(r["input_scale"])
        out = {
            "conf_oks_pearson": pearson(confidences, oks_values),
            "conf_oks_spearman": spearman(confidences, oks_values),
            "conf_oks_ece": expected_calibration_error(np.clip(confidences, 0, 1), oks_values),
        }
        if sig:
            # residuals in normalised crop units, where sigma lives
            scale = np.stack(scale)[:, None, :]
            coverage = interval_coverage(
                np.stack(pred_px) / scale,
                np.stack(gt_px) / scale,
                np.stack(sig),
                np.stack(mask),
                distribution=self.sigma_distribution,
            )
            for level, value in coverage.items():
                out[f"coverage@{int(round(level * 100))}"] = value
            out["coverage_error"] = float(np.mean([abs(v - k) for k, v in coverage.items()]))
        return out


@METRICS.register_module()
class PCKMetric(BaseMetric):
    """PCK@``thr`` normalised by the box size, AUC (``auc_norm_factor`` px) and EPE (px)."""

    default_prefix = "pck"

    def __init__(
        self,
        thr: float = 0.05,
        auc_norm_factor: float = 30.0,
        collect_device: str = "cpu",
        prefix: Optional[str] = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.thr = thr
        self.auc_norm_factor = auc_norm_factor

    def process(self, data_batch, data_samples: Sequence) -> None:
        for s in data_samples:
            bbox = np.asarray(_need(s, "bbox"), dtype=np.float64)
            self.results.append(
                dict(
                    pred=np.asarray(_need(s, "pred_keypoints"), dtype=np.float64),
                    gt=np.asarray(_need(s, "keypoints"), dtype=np.float64)[:, :2],
                    mask=np.asarray(_need(s, "keypoints_visible")) > 0,
                    norm=np.array([bbox[2] - bbox[0], bbox[3] - bbox[1]]).max(),
                )
            )

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        _check_not_empty(results, self)
        pred = np.stack([r["pred"] for r in results])
        gt = np.stack([r["gt"] for r in results])
        mask = np.stack([r["mask"] for r in results])
        norm = np.stack([np.full(2, r["norm"]) for r in results])
        _, pck, _ = keypoint_pck(pred, gt, mask, self.thr, norm)
        return {
            f"PCK@{self.thr}": pck,
            "AUC": keypoint_auc(pred, gt, mask, self.auc_norm_factor),
            "EPE": keypoint_epe(pred, gt, mask),
        }


@METRICS.register_module()
class H36MMetric(BaseMetric):
    """MPJPE and PA-MPJPE (mm), overall and per action, root-aligned.

    The prediction (image u, v and root-relative depth) is back-projected with the camera
    intrinsics and the ground-truth root depth, as the official RLE evaluation does.
    """

    default_prefix = "h36m"

    def __init__(
        self,
        root_index: int = 0,
        per_action: bool = True,
        collect_device: str = "cpu",
        prefix: Optional[str] = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.root_index = root_index
        self.per_action = per_action

    def process(self, data_batch, data_samples: Sequence) -> None:
        for s in data_samples:
            cam = _need(s, "camera")
            gt = np.asarray(_need(s, "keypoints_cam"), dtype=np.float64)
            z = np.asarray(_need(s, "pred_depth"), dtype=np.float64) + gt[self.root_index, 2]
            uv = np.asarray(_need(s, "pred_keypoints"), dtype=np.float64)
            f = np.asarray(cam["f"], dtype=np.float64).reshape(2)
            c = np.asarray(cam["c"], dtype=np.float64).reshape(2)
            pred = np.c_[(uv - c) / f * z[:, None], z]
            self.results.append(
                dict(
                    pred=pred - pred[self.root_index],
                    gt=gt - gt[self.root_index],
                    action=_get(s, "action", ""),
                )
            )

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        _check_not_empty(results, self)
        pred = np.stack([r["pred"] for r in results])
        gt = np.stack([r["gt"] for r in results])
        actions = [r["action"] for r in results]
        out = {}
        m, per = mpjpe(pred, gt, groups=actions)
        pa, pa_per = pa_mpjpe(pred, gt, groups=actions)
        out["MPJPE"], out["PA-MPJPE"] = m, pa
        if self.per_action:
            for action in per:
                out[f"MPJPE_{action}"] = per[action]
                out[f"PA-MPJPE_{action}"] = pa_per[action]
        return out
