"""COCO keypoint metric: AP 1.0 for ground truth on the real sample, parity with a direct
pycocotools call on perturbed predictions, rescoring, OKS-NMS, calibration outputs, and
MMPose 1.3.2 ``CocoMetric`` parity on its golden predictions (``mmpose_cocometric.pt``)."""

import contextlib
import io
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from mmengine.structures import BaseDataElement

from rle.datasets import CocoKeypointDataset
from rle.evaluation import CocoKeypointMetric, oks_nms
from rle.evaluation.metrics import COCO_STAT_NAMES, instance_scores
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


# -- OKS-NMS pair area ---------------------------------------------------------------------------
# One joint, sigma 0.25: (2 sigma)^2 = 0.25, so OKS = exp(-d^2 / 0.25 / area / 2)
# = exp(-2 d^2 / area) (eps = np.spacing(1) is far below the tolerances).
_SIG1 = np.array([0.25])


def _one_joint(*xs):
    return np.array([[[x, 0.0]] for x in xs])


def _oks1(d, area):
    return math.exp(-2 * d**2 / area)


def test_oks_nms_pair_area_mean_two_instances():
    k = _one_joint(0.0, 1.0)
    scores = np.array([0.9, 0.8])
    # the kept instance is the small one: its own area gives a lower OKS than the pair's mean
    areas = np.array([10.0, 30.0])
    assert _oks1(1.0, 10.0) == pytest.approx(0.818730753)  # kept rule: exp(-0.2)
    assert _oks1(1.0, 20.0) == pytest.approx(0.904837418)  # mean rule: exp(-0.1)
    assert oks_nms(k, scores, areas, _SIG1, 0.85) == [0, 1]
    assert oks_nms(k, scores, areas, _SIG1, 0.85, pair_area="kept") == [0, 1]
    assert oks_nms(k, scores, areas, _SIG1, 0.85, pair_area="mean") == [0]
    # the kept instance is the large one: the other way round
    areas = np.array([30.0, 10.0])
    assert _oks1(1.0, 30.0) == pytest.approx(0.935506985)  # kept rule: exp(-1/15)
    assert oks_nms(k, scores, areas, _SIG1, 0.92) == [0]
    assert oks_nms(k, scores, areas, _SIG1, 0.92, pair_area="mean") == [0, 1]


def test_oks_nms_pair_area_mean_changes_which_instance_survives():
    # A (x 0, area 10), B (x 1, area 30), C (x 2.2, area 30), scores descending, thr 0.85
    k = _one_joint(0.0, 1.0, 2.2)
    scores = np.array([0.9, 0.8, 0.7])
    areas = np.array([10.0, 30.0, 30.0])
    # kept rule: B survives A (exp(-0.2) = 0.819), C survives A (exp(-0.968) = 0.380), then C
    # falls to B (d 1.2, area 30: exp(-0.096) = 0.908)
    assert _oks1(1.0, 10.0) < 0.85 and _oks1(2.2, 10.0) < 0.85 < _oks1(1.2, 30.0)
    assert oks_nms(k, scores, areas, _SIG1, 0.85, pair_area="kept") == [0, 1]
    # mean rule: B falls to A (area 20: exp(-0.1) = 0.905), C survives A (area 20:
    # exp(-0.484) = 0.616) and B is gone, so C is kept
    assert _oks1(2.2, 20.0) < 0.85 < _oks1(1.0, 20.0)
    assert oks_nms(k, scores, areas, _SIG1, 0.85, pair_area="mean") == [0, 2]
    # order of the input does not matter, only the scores
    perm = [2, 0, 1]
    kept = oks_nms(k[perm], scores[perm], areas[perm], _SIG1, 0.85, pair_area="mean")
    assert [perm[i] for i in kept] == [0, 2]


def test_nms_area_arguments_are_validated():
    with pytest.raises(ValueError, match="pair_area.*'kept', 'mean'"):
        oks_nms(_one_joint(0.0, 1.0), np.ones(2), np.ones(2), _SIG1, pair_area="pair")
    with pytest.raises(ValueError, match="nms_area.*'bbox', 'input_scale'"):
        CocoKeypointMetric(ANN, nms_area="scale")
    with pytest.raises(ValueError, match="det_area.*'keypoints', 'bbox'"):
        CocoKeypointMetric(ANN, det_area="box")


def test_input_scale_nms_area_needs_input_scale():
    metric = CocoKeypointMetric(ANN, nms_area="input_scale")
    sample = dict(id=1, img_id=1, pred_keypoints=np.zeros((17, 2)), pred_scores=np.ones(17))
    with pytest.raises(KeyError, match="input_scale"):
        metric.process({}, [sample])
    with pytest.raises(KeyError, match="bbox"):
        CocoKeypointMetric(ANN, det_area="bbox").process({}, [sample])


# -- MMPose 1.3.2 CocoMetric parity ---------------------------------------------------------------
INTEROP = Path(__file__).resolve().parents[2] / "shared" / "golden" / "interop"
MM_COCOMETRIC = INTEROP / "mmpose_cocometric.pt"
needs_mm_cocometric = pytest.mark.skipif(
    not (MM_COCOMETRIC.is_file() and COCO_SAMPLE.is_dir()),
    reason="shared golden interop (mmpose_cocometric.pt) or COCO sample absent",
)
MM_STAT_NAMES = (
    "AP",
    "AP .5",
    "AP .75",
    "AP (M)",
    "AP (L)",
    "AR",
    "AR .5",
    "AR .75",
    "AR (M)",
    "AR (L)",
)
MM_CASES = [
    f"{s}_{px}px_{score}_{nms}"
    for s, px, score, nms in itertools.product(
        ("single", "dup"), (2, 8), ("bbox_rle", "bbox_keypoint"), ("oks_nms", "none")
    )
]


@pytest.fixture(scope="module")
def mm_golden():
    import torch

    return torch.load(MM_COCOMETRIC, weights_only=True)


def _mm_run(golden, name, **kwargs):
    """Our metric on the exact predictions MMPose's CocoMetric received in case ``name``."""
    case = golden["cases"][name]
    metric = CocoKeypointMetric(
        ANN,
        score_mode=case["score_mode"],
        keypoint_score_thr=case["keypoint_score_thr"],
        nms_mode=case["nms_mode"],
        nms_thr=case["nms_thr"],
        **kwargs,
    )
    metric.dataset_meta = dict(sigmas=golden["sigmas"].numpy(), num_keypoints=17)
    samples = [
        dict(
            id=int(case["ids"][i]),
            img_id=int(case["img_ids"][i]),
            category_id=int(case["category_ids"][i]),
            pred_keypoints=case["keypoints"][i].numpy(),
            pred_scores=case["keypoint_scores"][i].numpy(),
            bbox_score=float(case["bbox_scores"][i]),
            bbox=case["bboxes"][i].numpy(),
            input_scale=case["bbox_scales"][i].numpy(),
        )
        for i in range(len(case["ids"]))
    ]
    metric.process({}, samples)
    return case, metric, metric.compute_metrics(metric.results)


@needs_mm_cocometric
def test_mmpose_golden_case_names(mm_golden):
    assert sorted(mm_golden["case_names"]) == sorted(MM_CASES)
    assert list(mm_golden["metric_names"]) == list(MM_STAT_NAMES)


@needs_mm_cocometric
@pytest.mark.parametrize("name", MM_CASES)
def test_mmpose_cocometric_parity(mm_golden, name):
    case, metric, stats = _mm_run(mm_golden, name, nms_area="input_scale", det_area="bbox")
    # the inputs of the protocol agree: instance scores and OKS-NMS areas
    scores = [r["score"] for r in metric.results]
    np.testing.assert_allclose(scores, case["scores"].numpy(), rtol=0, atol=1e-12)
    areas = [r["scale_area"] for r in metric.results]
    np.testing.assert_array_equal(areas, case["areas"].numpy())
    assert set(metric.kept_ids) == set(case["kept_ids"])
    assert len(metric.kept_ids) == case["num_kept"]
    if case["nms_mode"] == "oks_nms":  # MMPose's order: images as they come, keep order
        assert metric.kept_ids == list(case["kept_ids"])
    for ours, theirs in zip(COCO_STAT_NAMES, MM_STAT_NAMES):
        assert abs(stats[ours] - case["metrics"][theirs]) < 5e-5, (ours, stats[ours])


@needs_mm_cocometric
@pytest.mark.parametrize("score_mode", ["bbox_rle", "bbox_keypoint"])
def test_default_nms_area_differs_from_mmpose_on_near_duplicates(mm_golden, score_mode):
    """rle-pose's original protocol: raw-box area of the kept one (the crop box is 1.75-3.7x
    larger here), so OKS is lower and MMPose's two drops at 8 px survive."""
    name = f"dup_8px_{score_mode}_oks_nms"
    case, metric, stats = _mm_run(mm_golden, name)
    dropped = {100442619, 100533949}
    assert dropped.isdisjoint(case["kept_ids"])
    assert set(metric.kept_ids) == set(case["ids"].tolist())  # 24 of 24: nothing dropped
    assert dropped <= set(metric.kept_ids)
    # the AP is then that of no NMS at all; MMPose's (0.2718 / 0.2782) is lower
    measured = {"bbox_rle": 0.274245, "bbox_keypoint": 0.280664}[score_mode]
    assert stats["AP"] == pytest.approx(measured, abs=5e-6)
    no_nms = mm_golden["cases"][f"dup_8px_{score_mode}_none"]["metrics"]
    assert stats["AP"] == pytest.approx(no_nms["AP"], abs=1e-12)
    assert abs(stats["AP"] - case["metrics"]["AP"]) > 2e-3
    # the NMS area alone: with MMPose's detection areas (det_area="bbox") it is the only
    # difference left, and switching it reproduces MMPose's kept set
    _, metric_bbox, stats_bbox = _mm_run(mm_golden, name, det_area="bbox")
    assert stats_bbox["AP"] == pytest.approx(no_nms["AP"], abs=1e-12)
    _, metric_mm, stats_mm = _mm_run(mm_golden, name, nms_area="input_scale", det_area="bbox")
    assert set(metric_mm.kept_ids) == set(case["kept_ids"])
    assert stats_mm["AP"] == pytest.approx(case["metrics"]["AP"], abs=5e-5)


@needs_mm_cocometric
def test_default_det_area_differs_from_mmpose_in_the_area_ranges(mm_golden):
    """Without the box in the results pycocotools takes the keypoint extent as the detection
    area (the unlabelled joints sit near (0, 0) here), which moves APm / APl; AP is the same."""
    case, _, stats = _mm_run(mm_golden, "single_2px_bbox_rle_none", nms_area="input_scale")
    assert stats["AP"] == pytest.approx(case["metrics"]["AP"], abs=1e-12)
    assert stats["APm"] == pytest.approx(0.862706, abs=5e-6)  # MMPose 0.8490
    assert stats["APl"] == pytest.approx(0.939604, abs=5e-6)  # MMPose 0.9446
    assert abs(stats["APm"] - case["metrics"]["AP (M)"]) > 1e-2


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
