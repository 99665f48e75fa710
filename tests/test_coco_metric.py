"""COCO keypoint metric: AP 1.0 for ground truth on the real sample, parity with a direct
pycocotools call on perturbed predictions, rescoring, OKS-NMS, calibration outputs."""

import contextlib
import io

import numpy as np
import pytest
from mmengine.structures import BaseDataElement

from rle.datasets import CocoKeypointDataset
from rle.evaluation import CocoKeypointMetric, oks_nms
from rle.evaluation.metrics import instance_scores
from tests.conftest import SHARED

COCO_SAMPLE = SHARED / "data" / "coco_sample"
needs_coco = pytest.mark.skipif(not COCO_SAMPLE.is_dir(), reason="shared COCO sample absent")
ANN = str(COCO_SAMPLE / "test_coco.json")


def _samples(noise=0.0, seed=0, sigma=None):
    ds = CocoKeypointDataset(
        ann_file="test_coco.json", data_root=str(COCO_SAMPLE), test_mode=True, filter_empty=True
    )
    rng = np.random.default_rng(seed)
    out = []
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        pred = info["keypoints"] + rng.normal(size=info["keypoints"].shape) * noise
        s = BaseDataElement(
            metainfo=dict(
                id=info["id"],
                img_id=info["img_id"],
                category_id=1,
                bbox=info["bbox"],
                bbox_score=1.0,
                input_scale=np.array([192.0, 256.0]),
            )
        )
        s.pred_keypoints = pred
        s.pred_scores = np.ones(17)
        s.pred_sigma = sigma
        out.append(s)
    return ds, out


def _run(metric, ds, samples):
    metric.dataset_meta = ds.metainfo
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


@needs_coco
def test_ground_truth_gives_ap_one():
    ds, samples = _samples()
    stats = _run(CocoKeypointMetric(ANN), ds, samples)
    assert stats["AP"] == pytest.approx(1.0)
    assert stats["AR"] == pytest.approx(1.0)


@needs_coco
def test_matches_direct_pycocotools_on_perturbed_predictions():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ds, samples = _samples(noise=2.0, seed=1)
    stats = _run(CocoKeypointMetric(ANN, score_mode="bbox", nms_mode="none"), ds, samples)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ANN)
        res = [
            dict(
                image_id=s.img_id,
                category_id=1,
                score=1.0,
                keypoints=np.c_[s.pred_keypoints, np.ones(17)].ravel().tolist(),
            )
            for s in samples
        ]
        ev = COCOeval(gt, gt.loadRes(res), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert stats["AP"] == pytest.approx(ev.stats[0], abs=1e-12)
    assert 0.8 < stats["AP"] < 1.0  # about 0.906 at 2 px noise


@needs_coco
def test_calibration_outputs():
    ds, samples = _samples(noise=2.0, seed=2, sigma=np.full((17, 2), 0.01))
    stats = _run(CocoKeypointMetric(ANN), ds, samples)
    for key in (
        "conf_oks_pearson",
        "conf_oks_spearman",
        "conf_oks_ece",
        "coverage@50",
        "coverage@68",
        "coverage@95",
        "coverage_error",
    ):
        assert key in stats
    assert 0 <= stats["coverage@50"] <= stats["coverage@95"] <= 1


def test_instance_scores_and_nms():
    box = np.array([0.9, 0.5])
    kpt = np.array([[0.1, 0.5, 0.7], [0.3, 0.3, 0.9]])
    assert instance_scores(box, kpt, "bbox").tolist() == [0.9, 0.5]
    np.testing.assert_allclose(instance_scores(box, kpt, "keypoint"), [0.4333333, 0.5])
    np.testing.assert_allclose(instance_scores(box, kpt, "bbox_keypoint"), [0.9 * 0.6, 0.5 * 0.5])
    np.testing.assert_allclose(
        instance_scores(box, kpt, "bbox_rle"), [0.9 + 0.4333333 + 0.7, 0.5 + 0.5 + 0.9]
    )
    k = np.zeros((3, 3, 2))
    k[1] += 0.1  # a near-duplicate of instance 0
    k[2] += 50.0
    keep = oks_nms(k, np.array([0.5, 0.9, 0.8]), np.full(3, 100.0), np.full(3, 0.05), 0.9)
    assert keep == [1, 2]
    with pytest.raises(ValueError, match="score_mode"):
        CocoKeypointMetric(ANN, score_mode="max")


def _h36m_sample(rng, action, depth_noise=0.0):
    from rle.datasets.cameras import project

    cam = dict(f=np.array([1100.0, 1100.0]), c=np.array([500.0, 500.0]))
    kc = rng.normal(size=(17, 3)) * 300 + np.array([0, 0, 5000.0])
    s = BaseDataElement(metainfo=dict(camera=cam, action=action))
    s.keypoints_cam = kc
    s.pred_keypoints = project(kc, cam["f"], cam["c"])
    s.pred_depth = kc[:, 2] - kc[0, 2] + depth_noise
    return s


def test_h36m_metric_exact_and_per_action():
    from rle.evaluation import H36MMetric

    rng = np.random.default_rng(0)
    metric = H36MMetric()
    metric.process({}, [_h36m_sample(rng, "Walking"), _h36m_sample(rng, "Eating")])
    stats = metric.compute_metrics(metric.results)
    assert stats["MPJPE"] == pytest.approx(0.0, abs=1e-6)
    assert stats["PA-MPJPE_Walking"] == pytest.approx(0.0, abs=1e-6)
    bad = H36MMetric()
    bad.process({}, [_h36m_sample(rng, "Walking", depth_noise=np.r_[0.0, np.full(16, 30.0)])])
    assert bad.compute_metrics(bad.results)["MPJPE"] > 20.0


def test_pck_metric():
    from rle.evaluation import PCKMetric

    s = BaseDataElement(metainfo=dict(bbox=np.array([0.0, 0.0, 100.0, 50.0])))
    s.keypoints = np.zeros((3, 2))
    s.keypoints_visible = np.array([2.0, 2.0, 0.0])
    s.pred_keypoints = np.array([[3.0, 4.0], [10.0, 0.0], [50.0, 50.0]])
    metric = PCKMetric(thr=0.05)
    metric.process({}, [s])
    stats = metric.compute_metrics(metric.results)
    assert stats["PCK@0.05"] == 0.5 and stats["EPE"] == 7.5
