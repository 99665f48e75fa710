"""Metric functions: hand-computed cases, invariances, agreement with pycocotools and scipy."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation
from scipy.stats import pearsonr, spearmanr

from rle.evaluation import (
    expected_calibration_error,
    interval_coverage,
    keypoint_auc,
    keypoint_epe,
    keypoint_pck,
    mpjpe,
    object_keypoint_similarity,
    pa_mpjpe,
    pearson,
    reliability_bins,
    residual_quantile,
    spearman,
)


def test_pck_and_epe_hand_computed():
    gt = np.zeros((1, 3, 2))
    pred = np.array([[[3.0, 4.0], [0.0, 1.0], [10.0, 0.0]]])  # distances 5, 1, 10
    mask = np.array([[True, True, False]])
    per, avg, n = keypoint_pck(pred, gt, mask, 0.2, np.full((1, 2), 10.0))
    assert per.tolist() == [0.0, 1.0, -1.0] and avg == 0.5 and n == 2
    assert keypoint_epe(pred, gt, mask) == 3.0
    # AUC over thresholds 0, .05, ..., .95 of 10 px: distance 1 passes from 0.1, distance 5 from
    # 0.5 -> (18 + 10) / 2 / 20
    assert keypoint_auc(pred, gt, mask, 10.0, 20) == pytest.approx(28 / 40)


def test_mpjpe_hand_computed_and_groups():
    gt = np.zeros((2, 2, 3))
    pred = np.array([[[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]], [[0.0, 0.0, 2.0], [0.0, 0.0, 0.0]]])
    assert mpjpe(pred, gt) == pytest.approx((5 + 1 + 2 + 0) / 4)
    overall, per = mpjpe(pred, gt, groups=["walk", "sit"])
    assert per == {"sit": 1.0, "walk": 3.0} and overall == 2.0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.1, 10.0))
def test_pa_mpjpe_invariant_to_similarity_transforms(seed, scale):
    rng = np.random.default_rng(seed)
    gt = rng.normal(size=(3, 17, 3)) * 200
    pred = gt + rng.normal(size=gt.shape) * 20
    rot = Rotation.random(3, random_state=seed).as_matrix()
    moved = scale * np.einsum("nij,nkj->nki", rot, pred) + rng.normal(size=(3, 1, 3)) * 500
    assert pa_mpjpe(moved, gt) == pytest.approx(pa_mpjpe(pred, gt), rel=1e-8)
    assert pa_mpjpe(pred, gt) <= mpjpe(pred, gt) + 1e-9
    assert pa_mpjpe(scale * np.einsum("nij,nkj->nki", rot, gt), gt) == pytest.approx(0, abs=1e-8)


def test_oks_matches_pycocotools():
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 100, (1, 17, 2))
    pred = gt + rng.normal(size=gt.shape) * 3
    vis = np.ones((1, 17))
    vis[0, :4] = 0
    sigmas = np.array(
        [
            0.026,
            0.025,
            0.025,
            0.035,
            0.035,
            0.079,
            0.079,
            0.072,
            0.072,
            0.062,
            0.062,
            0.107,
            0.107,
            0.087,
            0.087,
            0.089,
            0.089,
        ]
    )
    ours = object_keypoint_similarity(pred, gt, vis, np.array([2500.0]), sigmas)[0]
    ev = COCOeval(iouType="keypoints")
    ev.params.kpt_oks_sigmas = sigmas
    g = dict(
        keypoints=np.c_[gt[0], vis[0] * 2].ravel().tolist(), area=2500.0, bbox=[0, 0, 100, 100]
    )
    d = dict(keypoints=np.c_[pred[0], np.ones(17)].ravel().tolist(), score=1.0)
    ev._gts = {(1, 1): [g]}
    ev._dts = {(1, 1): [d]}
    ev.params.imgIds, ev.params.catIds, ev.params.maxDets = [1], [1], [20]
    assert ours == pytest.approx(ev.computeOks(1, 1)[0, 0], rel=1e-12)


def test_correlations_match_scipy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=200)
    y = x + rng.normal(size=200)
    y[3] = np.nan
    keep = np.isfinite(y)
    assert pearson(x, y) == pytest.approx(pearsonr(x[keep], y[keep])[0])
    assert spearman(x, y) == pytest.approx(spearmanr(x[keep], y[keep])[0])
    assert math.isnan(pearson(np.ones(5), np.arange(5)))


def test_reliability_and_ece():
    conf = np.array([0.05, 0.15, 0.95, 0.9])
    acc = np.array([0.05, 0.15, 0.95, 0.9])
    assert expected_calibration_error(conf, acc) == pytest.approx(0.0)
    bins = reliability_bins(conf, np.array([0.0, 0.0, 1.0, 1.0]), 2)
    assert bins["count"].tolist() == [2, 2]
    assert bins["confidence"] == pytest.approx([0.1, 0.925])
    # |0 - 0.1| and |1 - 0.925|, weighted equally
    assert expected_calibration_error(conf, [0, 0, 1, 1], 2) == pytest.approx((0.1 + 0.075) / 2)


@pytest.mark.parametrize("distribution", ["gaussian", "laplace"])
def test_interval_coverage_is_calibrated_on_matching_noise(distribution):
    rng = np.random.default_rng(2)
    sigma = rng.uniform(0.5, 3.0, (4000, 5, 2))
    noise = (
        rng.normal(size=sigma.shape)
        if distribution == "gaussian"
        else rng.laplace(size=sigma.shape)
    )
    cov = interval_coverage(noise * sigma, np.zeros_like(sigma), sigma, distribution=distribution)
    for level, value in cov.items():
        assert value == pytest.approx(level, abs=0.02)
    # over-confident sigmas under-cover
    assert interval_coverage(noise * sigma, 0 * sigma, sigma / 2)[0.68] < 0.5
    assert residual_quantile(0.95) == pytest.approx(1.959964, abs=1e-5)
    assert residual_quantile(0.5, "laplace") == pytest.approx(math.log(2))


def test_bad_input():
    with pytest.raises(ValueError, match=r"\(N, K, D\)"):
        mpjpe(np.zeros((2, 3, 3)), np.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match="mask"):
        keypoint_epe(np.zeros((2, 3, 2)), np.zeros((2, 3, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="level"):
        residual_quantile(1.0)
    with pytest.raises(ValueError, match="distribution"):
        residual_quantile(0.5, "cauchy")
