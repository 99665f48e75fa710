"""Keypoint NLL (a proper scoring rule) and post-hoc interval calibration: hand-built cases with
exact values, recovery of a known miscalibration, storage round trips, and invariances."""

import json
import math
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

from rle.calibration import (
    DEFAULT_LEVELS,
    Calibration,
    fit_interval_calibration,
    interval_coverage_at,
)
from rle.calibration_store import (
    calibration_from_checkpoint,
    load_calibration,
    save_calibration,
)
from rle.evaluation import (
    gaussian_log_density,
    interval_coverage,
    keypoint_nll,
    laplace_log_density,
    residual_quantile,
    unit_log_density,
)
from rle.serialization import load_checkpoint_file, load_pickle

LOG_2PI = math.log(2 * math.pi)


# -- keypoint_nll ---------------------------------------------------------------------------------
def test_keypoint_nll_gaussian_closed_form_in_pixels():
    # per coordinate 0.5 log(2 pi) + log(sigma_px) + u^2 / 2, summed over x and y
    pred = np.array([[[0.1, -0.2], [0.0, 0.0], [0.3, 0.3]]])
    gt = np.array([[[0.0, 0.0], [0.0, 0.25], [9.0, 9.0]]])
    sigma = np.array([[[0.05, 0.1], [0.5, 0.125], [1.0, 1.0]]])
    mask = np.array([[True, True, False]])
    scale = np.array([[192.0, 256.0]])
    u = (pred - gt) / sigma  # (2, -2), (0, -2)
    closed = (0.5 * LOG_2PI + np.log(sigma * scale[:, None]) + 0.5 * u**2).sum(-1)
    per = keypoint_nll(pred, gt, sigma, mask, gaussian_log_density, scale=scale, reduction="none")
    np.testing.assert_allclose(per[0, :2], closed[0, :2], rtol=1e-15, atol=0)
    assert np.isnan(per[0, 2])
    expected = (
        LOG_2PI + math.log(0.05 * 192) + math.log(0.1 * 256) + 4.0,
        LOG_2PI + math.log(0.5 * 192) + math.log(0.125 * 256) + 2.0,
    )
    assert per[0, :2] == pytest.approx(expected, rel=1e-15)
    mean = keypoint_nll(pred, gt, sigma, mask, "gaussian", scale=scale)
    assert mean == pytest.approx(sum(expected) / 2, rel=1e-15)
    # without scale: normalised units, i.e. sum_d log(scale_d) less per keypoint
    norm = keypoint_nll(pred, gt, sigma, mask, "gaussian")
    assert norm == pytest.approx(mean - math.log(192) - math.log(256), rel=1e-14)


def test_keypoint_nll_ignores_masked_joints():
    pred = np.array([[[0.0, 0.0], [np.nan, 1.0]], [[0.1, 0.0], [0.0, 0.0]]])
    gt = np.zeros((2, 2, 2))
    sigma = np.array([[[1.0, 1.0], [0.0, -1.0]], [[1.0, 1.0], [1.0, 1.0]]])
    mask = np.array([[1, 0], [2, 0]])  # visibility flags: > 0 counts
    out = keypoint_nll(pred, gt, sigma, mask, "laplace")
    # Laplace b=1: log 2 + |u| per coordinate, u = 0 and (0.1, 0)
    assert out == pytest.approx(2 * math.log(2) + 0.05, rel=1e-15)
    assert math.isnan(keypoint_nll(pred, gt, sigma, np.zeros((2, 2)), "laplace"))


def test_keypoint_nll_joint_density_equals_factorised():
    rng = np.random.default_rng(0)
    pred, gt = rng.normal(size=(2, 4, 5, 2))
    sigma = rng.uniform(0.1, 2.0, size=(4, 5, 2))

    def joint(u):  # the 2-D standard normal as one value per keypoint, (M, 2) -> (M,)
        return -LOG_2PI - 0.5 * (u**2).sum(-1)

    a = keypoint_nll(pred, gt, sigma, None, joint, reduction="none")
    b = keypoint_nll(pred, gt, sigma, None, gaussian_log_density, reduction="none")
    np.testing.assert_allclose(a, b, rtol=1e-14)


def test_keypoint_nll_is_minimised_by_the_true_sigma():
    # a proper scoring rule: the expected score is best at the data's own scale
    rng = np.random.default_rng(1)
    gt = np.zeros((20000, 1, 2))
    pred = rng.normal(size=gt.shape) * 0.3
    nll = {
        c: keypoint_nll(pred, gt, np.full(gt.shape, 0.3 * c), None, "gaussian")
        for c in (0.7, 1, 1.4)
    }
    assert nll[1] < nll[0.7] and nll[1] < nll[1.4]


def test_unit_log_densities_hand_values():
    assert laplace_log_density(0.0) == -math.log(2)
    assert laplace_log_density(np.array([-1.5])) == pytest.approx([-math.log(2) - 1.5])
    off = unit_log_density("laplace_official")(np.array([1.0]))
    assert off == pytest.approx([-math.log(2 * math.sqrt(2)) - 1 / math.sqrt(2)], rel=1e-15)
    assert gaussian_log_density(np.array([0.0, 2.0])) == pytest.approx(
        [-0.5 * LOG_2PI, -0.5 * LOG_2PI - 2.0], rel=1e-15
    )


@settings(max_examples=20, deadline=None)
@given(
    level=st.floats(0.05, 0.99),
    distribution=st.sampled_from(["gaussian", "laplace", "laplace_official"]),
)
def test_unit_log_density_matches_residual_quantile(level, distribution):
    # the score and the interval describe one density: it integrates to 1, and to `level`
    # over +- residual_quantile(level)
    f = unit_log_density(distribution)

    def density(x):
        return float(np.exp(f(np.array(x))))

    q = residual_quantile(level, distribution)
    assert 2 * quad(density, 0, q)[0] == pytest.approx(level, abs=1e-9)
    assert 2 * quad(density, 0, np.inf)[0] == pytest.approx(1.0, abs=1e-9)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    shift=st.floats(-100, 100),
    c=st.floats(0.01, 100),
    distribution=st.sampled_from(["gaussian", "laplace", "laplace_official"]),
)
def test_keypoint_nll_shift_invariant_and_sigma_scaling(seed, shift, c, distribution):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(-0.5, 0.5, size=(3, 4, 2))
    pred = gt + rng.normal(size=gt.shape) * 0.05
    sigma = rng.uniform(0.01, 0.2, size=gt.shape)
    mask = rng.random((3, 4)) < 0.7
    scale = rng.uniform(100, 300, size=(3, 2))
    base = keypoint_nll(pred, gt, sigma, mask, distribution, scale=scale)
    moved = keypoint_nll(pred + shift, gt + shift, sigma, mask, distribution, scale=scale)
    assert moved == pytest.approx(base, rel=1e-6, abs=1e-6) or math.isnan(base)
    # zero residual: u stays 0, each of the D axes gains log c
    at_gt = keypoint_nll(gt, gt, sigma, mask, distribution, scale=scale)
    scaled = keypoint_nll(gt, gt, c * sigma, mask, distribution, scale=scale)
    if mask.any():
        assert scaled - at_gt == pytest.approx(2 * math.log(c), abs=1e-9)


def test_keypoint_nll_bad_input():
    x = np.zeros((1, 2, 2))
    ones = np.ones((1, 2, 2))
    with pytest.raises(ValueError, match="sigma must have shape"):
        keypoint_nll(x, x, np.ones((1, 2)), None, "gaussian")
    with pytest.raises(ValueError, match=r"scale must have shape \(N, D\)"):
        keypoint_nll(x, x, ones, None, "gaussian", scale=np.ones(2))
    with pytest.raises(ValueError, match="scale must be positive"):
        keypoint_nll(x, x, ones, None, "gaussian", scale=np.zeros((1, 2)))
    with pytest.raises(ValueError, match="sigma must be positive"):
        keypoint_nll(x, x, 0 * ones, None, "gaussian")
    with pytest.raises(ValueError, match="log_density must return"):
        keypoint_nll(x, x, ones, None, lambda u: u[:1])
    with pytest.raises(ValueError, match="distribution must be one of"):
        keypoint_nll(x, x, ones, None, "cauchy")
    with pytest.raises(TypeError, match="log_density must be a callable"):
        keypoint_nll(x, x, ones, None, 3.0)
    with pytest.raises(ValueError, match="reduction"):
        keypoint_nll(x, x, ones, None, "gaussian", reduction="sum")
    with pytest.raises(ValueError, match="scale must be a positive number"):
        laplace_log_density(x, scale=0)


# -- calibration: exact small cases ---------------------------------------------------------------
def test_fit_single_level_exact():
    # |u| = 1, 2, 3, 4: the median (linear interpolation) is 2.5, k = 1.25 -> c = 2 exactly
    u = np.array([[[1.0, -2.0]], [[3.0, -4.0]]])
    cal = fit_interval_calibration(u, None, {0.5: 1.25}, levels=(0.5,), min_count=1)
    assert cal.scales == (2.0,) and cal.global_scale == 2.0 and cal.fallback == (False,)
    assert cal.count == (2,)
    assert cal.coverage_before == {0.5: 0.25} and cal.coverage_after == {0.5: 0.5}
    assert cal.interval_scale == {0.5: 1.25}


def test_fit_two_levels_is_the_geometric_mean_of_quantile_ratios():
    # keypoint 0: |u| = 1, 2, 3, 4 -> Q_.5 = 2.5, Q_.75 = 3.25; keypoint 1: |u| = 1, 1 (its
    # second instance unlabelled, NaN there is ignored)
    u = np.array([[[1.0, -2.0], [1.0, -1.0]], [[3.0, -4.0], [np.nan, np.nan]]])
    mask = np.array([[True, True], [True, False]])
    k = {0.5: 1.25, 0.75: 0.40625, 0.9: 7.0}  # an extra level, not fitted
    cal = fit_interval_calibration(u, mask, k, levels=(0.5, 0.75), min_count=1)
    c0 = math.sqrt((2.5 / 1.25) * (3.25 / 0.40625))  # = 4
    c1 = math.sqrt((1 / 1.25) * (1 / 0.40625))
    # pooled |u| = 1, 1, 1, 2, 3, 4: Q_.5 = 1.5, Q_.75 = 2.75
    cg = math.sqrt((1.5 / 1.25) * (2.75 / 0.40625))
    assert cal.scales == pytest.approx((c0, c1), rel=1e-14) and c0 == pytest.approx(4)
    assert cal.global_scale == pytest.approx(cg, rel=1e-14)
    assert cal.count == (2, 1) and cal.levels == (0.5, 0.75)
    # before: |u| <= 1.25 holds for the three 1s; nothing is <= 0.40625
    assert cal.coverage_before == {0.5: 0.5, 0.75: 0.0}
    # after: kp 0 bounds 5 and 1.625 (4 and 1 of 4), kp 1 bounds 1.75 and 0.57 (2 and 0 of 2)
    assert cal.coverage_after == {0.5: 1.0, 0.75: pytest.approx(1 / 6)}
    glob = fit_interval_calibration(u, mask, k, levels=(0.5, 0.75), per_keypoint=False)
    assert glob.scales == glob.global_scale == cal.global_scale and glob.fallback == (False,) * 2


def test_min_count_fallback_and_zero_quantile():
    rng = np.random.default_rng(2)
    u = rng.normal(size=(200, 3, 2))
    u[:, 2] = 0.0  # a keypoint whose residuals are all exactly 0: no positive scale fits
    mask = np.ones((200, 3), dtype=bool)
    mask[10:, 1] = False  # keypoint 1: 10 labelled samples only
    cal = fit_interval_calibration(u, mask, "gaussian", min_count=20)
    assert cal.count == (200, 10, 200) and cal.fallback == (False, True, True)
    assert cal.scales[1] == cal.scales[2] == cal.global_scale
    assert cal.scales[0] != cal.global_scale
    own = fit_interval_calibration(u, mask, "gaussian", min_count=10)
    assert own.fallback == (False, False, True) and own.scales[1] != own.global_scale
    with pytest.raises(ValueError, match="quantile of \\|u\\|"):
        fit_interval_calibration(np.zeros((5, 2, 2)), None, "gaussian")


# -- calibration: recovery of a known miscalibration ----------------------------------------------
TRUE_SCALES = np.array([1.7, 0.6, 1.2, 2.5])


def _draw(family: str, n: int, seed: int) -> np.ndarray:
    """Residuals of a head that claims the unit ``family`` but is off by TRUE_SCALES."""
    rng = np.random.default_rng(seed)
    unit = rng.normal(size=(n, 4, 2)) if family == "gaussian" else rng.laplace(size=(n, 4, 2))
    return unit * TRUE_SCALES[None, :, None]


@pytest.mark.parametrize("family", ["gaussian", "laplace"])
def test_fit_recovers_known_scales_and_held_out_coverage_is_nominal(family):
    k = {lv: residual_quantile(lv, family) for lv in DEFAULT_LEVELS}
    cal = fit_interval_calibration(_draw(family, 40000, 0), None, k)
    err = np.abs(np.asarray(cal.scales) / TRUE_SCALES - 1)
    assert err.max() < 0.02, err
    held_out = _draw(family, 5000, 1)
    n = held_out[..., 0].size * 2  # labelled coordinates
    before = interval_coverage_at(held_out, None, k)
    after = interval_coverage_at(held_out, None, k, cal)
    for lv in (0.5, 0.68, 0.95):
        assert abs(after[lv] - lv) <= 3 * math.sqrt(lv * (1 - lv) / n), (lv, after[lv])
        assert abs(cal.coverage_after[lv] - lv) < 0.01
        assert abs(before[lv] - lv) > 0.02  # the uncalibrated head was off


def test_per_keypoint_versus_global():
    k = {lv: residual_quantile(lv, "gaussian") for lv in DEFAULT_LEVELS}
    u = _draw("gaussian", 20000, 3)
    per = fit_interval_calibration(u, None, k)
    glob = fit_interval_calibration(u, None, k, per_keypoint=False)
    assert isinstance(glob.scales, float) and glob.scales == per.global_scale
    assert min(TRUE_SCALES) < glob.scales < max(TRUE_SCALES)
    # global: nominal when pooled, but each keypoint is off; per keypoint: each one nominal
    for j in range(4):
        one = u[:, j : j + 1]
        cov_per = interval_coverage_at(one, None, k, per.scales[j])[0.68]
        cov_glob = interval_coverage_at(one, None, k, glob.scales)[0.68]
        assert abs(cov_per - 0.68) < 0.01 and abs(cov_glob - 0.68) > 0.05
    # pooled over keypoints of different scales the residuals are a scale mixture, heavier
    # tailed than the claimed Gaussian: one c compromises (too wide at 50 %, too narrow at 95 %)
    worst_per = max(abs(per.coverage_after[lv] - lv) for lv in DEFAULT_LEVELS)
    worst_glob = max(abs(glob.coverage_after[lv] - lv) for lv in DEFAULT_LEVELS)
    assert worst_per < 0.01 < worst_glob
    assert glob.coverage_after[0.5] > 0.5 and glob.coverage_after[0.95] < 0.95


# -- calibration per level (method="levels") -----------------------------------------------------
def test_fit_levels_exact():
    # the data of the geometric-mean test: kp 0 |u| = 1, 2, 3, 4 (Q_.5 = 2.5, Q_.75 = 3.25),
    # kp 1 |u| = 1, 1; pooled Q_.5 = 1.5, Q_.75 = 2.75
    u = np.array([[[1.0, -2.0], [1.0, -1.0]], [[3.0, -4.0], [np.nan, np.nan]]])
    mask = np.array([[True, True], [True, False]])
    k = {0.5: 1.25, 0.75: 0.40625}
    cal = fit_interval_calibration(u, mask, k, levels=(0.5, 0.75), min_count=1, method="levels")
    assert cal.method == "levels"
    assert cal.level_scales == ((2.0, 8.0), (0.8, pytest.approx(1 / 0.40625, rel=1e-14)))
    assert cal.global_level_scales == (1.2, pytest.approx(2.75 / 0.40625, rel=1e-14))
    # sigma's own factor is the geometric mean, the same as the "scale" method's
    scale = fit_interval_calibration(u, mask, k, levels=(0.5, 0.75), min_count=1)
    assert cal.scales == scale.scales and cal.global_scale == scale.global_scale
    np.testing.assert_array_equal(cal.apply(np.ones((1, 2, 2))), scale.apply(np.ones((1, 2, 2))))
    # per level: bounds 2.5 and 3.25 for kp 0 (2 and 3 of 4 inside), 1 and 1 for kp 1 (2 of 2)
    assert cal.coverage_after == {0.5: pytest.approx(4 / 6), 0.75: pytest.approx(5 / 6)}
    # log c is linear in the level between fitted levels, held outside
    np.testing.assert_allclose(cal.factor(0.5), [2.0, 0.8], rtol=1e-14)
    np.testing.assert_allclose(cal.factor(0.625), [4.0, math.sqrt(0.8 / 0.40625)], rtol=1e-12)
    t = (0.55 - 0.5) / (0.75 - 0.5)
    want = [2.0 * (8.0 / 2.0) ** t, 0.8 * (1 / 0.40625 / 0.8) ** t]
    np.testing.assert_allclose(cal.factor(0.55), want, rtol=1e-12)
    np.testing.assert_allclose(cal.factor(0.1), cal.factor(0.5), rtol=0)
    np.testing.assert_allclose(cal.factor(0.99), cal.factor(0.75), rtol=0)
    np.testing.assert_allclose(cal.factor(), cal.scales, rtol=0)
    sigma = np.full((3, 2, 2), 0.5)
    np.testing.assert_allclose(cal.apply(sigma, 0.75), 0.5 * np.array([8.0, 1 / 0.40625])[:, None]
                               * np.ones((3, 2, 2)), rtol=1e-14)  # fmt: skip
    assert interval_coverage_at(u, mask, k, cal) == cal.coverage_after
    glob = fit_interval_calibration(u, mask, k, levels=(0.5, 0.75), per_keypoint=False,
                                    method="levels")  # fmt: skip
    assert glob.level_scales == glob.global_level_scales and glob.factor(0.5) == 1.2
    assert glob.coverage_after == {0.5: 0.5, 0.75: pytest.approx(4 / 6)}
    with pytest.raises(ValueError, match="method must be one of"):
        fit_interval_calibration(u, mask, k, levels=(0.5,), method="conformal")
    with pytest.raises(ValueError, match=r"level must be a number in \(0, 1\)"):
        cal.factor(1.0)
    with pytest.raises(ValueError, match=r"level must be a number in \(0, 1\)"):
        scale.apply(np.ones((1, 2, 2)), level=1.5)  # checked for one factor too
    with pytest.raises(ValueError, match=r"level must be a number in \(0, 1\)"):
        cal.factor("0.5")


def _student_t(n: int, seed: int, df: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_t(df, size=(n, 4, 2)) * TRUE_SCALES[None, :, None]


def test_levels_are_nominal_on_a_held_out_draw_where_one_scale_cannot_be():
    # a head that claims a Gaussian on Student-t(3) residuals: the shape is wrong, so one
    # factor per keypoint compromises between levels while one per level is nominal at each
    k = {lv: residual_quantile(lv, "gaussian") for lv in DEFAULT_LEVELS}
    fit_u = _student_t(20000, 7)
    scale = fit_interval_calibration(fit_u, None, k)
    levels = fit_interval_calibration(fit_u, None, k, method="levels")
    held_out = _student_t(5000, 8)
    n = held_out.size  # labelled coordinates
    by_scale = interval_coverage_at(held_out, None, k, scale)
    by_level = interval_coverage_at(held_out, None, k, levels)
    for lv in DEFAULT_LEVELS:
        assert abs(by_level[lv] - lv) <= 3 * math.sqrt(lv * (1 - lv) / n), (lv, by_level[lv])
    assert max(abs(by_scale[lv] - lv) for lv in DEFAULT_LEVELS) > 0.03
    assert by_scale[0.5] > 0.5 and by_scale[0.95] < 0.95  # tails heavier than claimed
    # a right-shaped head: every level's factor recovers the known scale (2 %)
    gauss = fit_interval_calibration(_draw("gaussian", 40000, 9), None, k, method="levels")
    err = np.abs(np.asarray(gauss.level_scales) / TRUE_SCALES[:, None] - 1)
    assert err.max() < 0.02, err


def test_apply_broadcasts_over_numpy_and_torch():
    u = _draw("gaussian", 500, 4)
    cal = fit_interval_calibration(u, None, "gaussian")
    sigma = np.ones((2, 4, 2))
    out = cal.apply(sigma)
    assert out.shape == (2, 4, 2) and np.array_equal(out[1, :, 0], np.asarray(cal.scales))
    t = cal.apply(torch.ones(2, 4, 2, dtype=torch.float32))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), out, rtol=1e-6)
    glob = fit_interval_calibration(u, None, "gaussian", per_keypoint=False)
    assert np.all(glob.apply(np.ones((3, 7, 2))) == glob.global_scale)  # any K
    with pytest.raises(ValueError, match="K = 4"):
        cal.apply(np.ones((2, 3, 2)))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), t=st.floats(1e-3, 1e3), per_keypoint=st.booleans())
def test_fit_is_scale_equivariant(seed, t, per_keypoint):
    rng = np.random.default_rng(seed)
    u = rng.standard_t(3, size=(40, 3, 2))
    mask = rng.random((40, 3)) < 0.8
    a = fit_interval_calibration(u, mask, "laplace", per_keypoint=per_keypoint, min_count=25)
    b = fit_interval_calibration(t * u, mask, "laplace", per_keypoint=per_keypoint, min_count=25)
    assert np.asarray(b.scales) == pytest.approx(t * np.asarray(a.scales), rel=1e-9)
    assert b.fallback == a.fallback and b.count == a.count
    assert Calibration.from_dict(a.to_dict()) == a  # and every fit survives its dict form


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_interval_coverage_at_equals_interval_coverage_of_calibrated_sigma(seed):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(-0.5, 0.5, size=(30, 3, 2))
    sigma = rng.uniform(0.01, 0.1, size=gt.shape)
    pred = gt + rng.normal(size=gt.shape) * sigma * rng.uniform(0.5, 2, size=(1, 3, 1))
    mask = rng.random((30, 3)) < 0.8
    k = {lv: residual_quantile(lv, "gaussian") for lv in (0.5, 0.68, 0.95)}
    cal = fit_interval_calibration((pred - gt) / sigma, mask, k, levels=list(k), min_count=5)
    ours = interval_coverage_at((pred - gt) / sigma, mask, k, cal)
    theirs = interval_coverage(pred, gt, cal.apply(sigma), mask, levels=list(k), quantiles=k)
    assert ours == theirs
    assert interval_coverage_at((pred - gt) / sigma, mask, k) == interval_coverage(
        pred, gt, sigma, mask, levels=list(k), quantiles=k
    )


# -- storage --------------------------------------------------------------------------------------
def _plain(obj) -> bool:
    if isinstance(obj, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(_plain(v) for v in obj)
    return type(obj) in (str, bool, int, float)


@pytest.mark.parametrize("method", ["scale", "levels"])
@pytest.mark.parametrize("per_keypoint", [True, False])
def test_round_trips_dict_json_pickle_and_checkpoint(tmp_path, per_keypoint, method):
    cal = fit_interval_calibration(
        _draw("laplace", 300, 5), None, "laplace", per_keypoint=per_keypoint, method=method
    )
    data = cal.to_dict()
    assert _plain(data) and Calibration.from_dict(data) == cal
    assert load_calibration(save_calibration(cal, tmp_path / "cal.json")) == cal
    assert not (tmp_path / "cal.json.tmp").exists()
    # checkpoint metadata passes the restricted unpicklers as plain builtins
    with open(tmp_path / "meta.pkl", "wb") as f:
        pickle.dump({"calibration": data}, f)
    assert Calibration.from_dict(load_pickle(tmp_path / "meta.pkl")["calibration"]) == cal
    ckpt = {"state_dict": {}, "meta": {"rle_pose": {"model": {}, "calibration": data}}}
    torch.save(ckpt, tmp_path / "model.pth")
    assert calibration_from_checkpoint(load_checkpoint_file(tmp_path / "model.pth")) == cal
    assert calibration_from_checkpoint({"meta": {"rle_pose": {"model": {}}}}) is None
    assert calibration_from_checkpoint({"state_dict": {}}) is None


def _valid(method="scale") -> dict:
    u = _draw("gaussian", 60, 6)
    return fit_interval_calibration(u, None, "gaussian", method=method).to_dict()


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda d: d.pop("scales"), "missing key 'scales'"),
        (lambda d: d.update(format="other"), "'format' must be"),
        (lambda d: d.update(version=2), "'version' must be 1"),
        (lambda d: d.update(scales=[1.0, -1.0, 1.0, 1.0]), "'scales' must be a list of 4"),
        (lambda d: d.update(scales=[1.0]), "'scales' must be a list of 4"),
        (lambda d: d.update(levels=[0.5, 1.5, 0.8, 0.9, 0.95]), "'levels' must be"),
        (lambda d: d.update(quantiles=[1.0]), "'quantiles' must be a list of 5"),
        (lambda d: d.update(count=[1, 2, "3", 4]), "'count' must be"),
        (lambda d: d.update(fallback=[0, 0, 0, 0]), "'fallback' must be"),
        (lambda d: d.update(per_keypoint="yes"), "'per_keypoint' must be a bool"),
        (lambda d: d.update(global_scale=float("nan")), "'global_scale' must be > 0"),
        (lambda d: d.update(min_count=0), "'min_count' must be"),
        (lambda d: d.update(coverage_after=[2.0] * 5), "'coverage_after' must be"),
        (lambda d: d.update(method="isotonic"), "'method' must be one of"),
        (lambda d: d.pop("level_scales"), "missing key 'level_scales'"),
        (lambda d: d["level_scales"].pop(), "'level_scales' must be 4 lists of 5"),
        (lambda d: d["level_scales"][2].append(1.0), r"'level_scales\[2\]' must be a list of 5"),
        (lambda d: d.update(global_level_scales=[0.0] * 5), "'global_level_scales' must be"),
    ],
)
def test_malformed_calibration_file_is_refused(tmp_path, edit, match):
    data = _valid("levels" if "level" in match or "method" in match else "scale")
    edit(data)
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=match) as info:
        load_calibration(path)
    assert str(path) in str(info.value)
    bad = {"meta": {"rle_pose": {"calibration": data}}}
    with pytest.raises(ValueError, match=r"meta\['rle_pose'\]\['calibration'\]"):
        calibration_from_checkpoint(bad, source="model.pth")


def test_unreadable_calibration_files(tmp_path):
    path = tmp_path / "cal.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="invalid JSON"):
        load_calibration(path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must be a dict"):
        load_calibration(path)
    with pytest.raises(FileNotFoundError):
        load_calibration(tmp_path / "missing.json")
    with pytest.raises(TypeError, match="checkpoint must be a dict"):
        calibration_from_checkpoint([])
    with pytest.raises(TypeError, match="calibration must be a Calibration"):
        save_calibration({}, path)


def test_fit_bad_input():
    u = np.ones((4, 2, 2))
    with pytest.raises(ValueError, match=r"residuals must have shape \(N, K, D\)"):
        fit_interval_calibration(np.ones((4, 2)), None, "gaussian")
    with pytest.raises(ValueError, match=r"mask must have shape \(N, K\)"):
        fit_interval_calibration(u, np.ones((4, 3)), "gaussian")
    with pytest.raises(ValueError, match="finite at the labelled"):
        fit_interval_calibration(u * np.inf, None, "gaussian")
    with pytest.raises(ValueError, match="no labelled keypoint"):
        fit_interval_calibration(u, np.zeros((4, 2)), "gaussian")
    with pytest.raises(TypeError, match="interval_scale must be"):
        fit_interval_calibration(u, None, None)  # a 3-D head's interval_scale
    with pytest.raises(ValueError, match=r"no k for levels \[0.8, 0.9\]"):
        fit_interval_calibration(u, None, {0.5: 1.0, 0.68: 1.5, 0.95: 2.0})
    with pytest.raises(ValueError, match="positive finite"):
        fit_interval_calibration(u, None, {0.5: 0.0}, levels=(0.5,))
    with pytest.raises(ValueError, match=r"levels must be .* in \(0, 1\)"):
        fit_interval_calibration(u, None, "gaussian", levels=(0.5, 1.0))
    with pytest.raises(ValueError, match="min_count"):
        fit_interval_calibration(u, None, "gaussian", min_count=0)
    with pytest.raises(TypeError, match="per_keypoint"):
        fit_interval_calibration(u, None, "gaussian", per_keypoint=1)
    with pytest.raises(ValueError, match=r"scales must be a number or have shape \(K,\)"):
        interval_coverage_at(u, None, "gaussian", scales=[1.0, 2.0, 3.0])
