"""Calibration in the report and the inference API: the NLL column in image px from hand-made
records, normalised residuals, the held-out calibration split (disjoint, deterministic), the
calibration split of the configs (not val), calibrate_checkpoint -> the side file ->
init_model / inference_topdown, compare(calibrate=True) with its _cal columns, and the flow plot
with the residual histogram."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rle.calibration import Calibration, fit_interval_calibration
from rle.calibration_store import (
    calibration_path,
    load_calibration,
    resolve_calibration,
    save_calibration,
)
from rle.evaluation import report
from rle.evaluation.report import (
    markdown_table,
    records_interval_coverage,
    records_keypoint_nll,
    records_residuals,
)

ROOT = Path(__file__).resolve().parents[1]
SYNTH_CONFIG = ROOT / "configs" / "synthcoco" / "rle_resnet18_1xb32-20e_synthcoco-128x96.py"


def _record(pred, gt, sigma, vis, scale=(40.0, 50.0), ll=None, coords_dims=2):
    k = len(vis)
    return dict(
        pred_keypoints=np.asarray(pred, np.float32),
        keypoints=np.asarray(gt, np.float32),
        pred_sigma=None if sigma is None else np.asarray(sigma, np.float32),
        keypoints_visible=np.asarray(vis, np.float32),
        input_scale=np.asarray(scale, np.float32),
        pred_coords=np.zeros((k, coords_dims), np.float32),
        pred_log_likelihood=None if ll is None else np.asarray(ll, np.float32),
    )


# -- NLL in image px -------------------------------------------------------------------------------
def test_records_keypoint_nll_in_pixels_exact():
    # record 0: crop 40 x 50 px, keypoints 0 and 2 labelled; record 1: 100 x 80 px, keypoint 1
    a = _record(np.zeros((3, 2)), np.zeros((3, 2)), None, [2, 0, 1], (40, 50), ll=[1.5, 9.0, -2.0])
    b = _record(np.zeros((3, 2)), np.zeros((3, 2)), None, [0, 2, 0], (100, 80), ll=[7.0, 0.25, 7.0])
    expected = (
        (-1.5 + math.log(40) + math.log(50))
        + (2.0 + math.log(40) + math.log(50))
        + (-0.25 + math.log(100) + math.log(80))
    ) / 3
    assert records_keypoint_nll([a, b]) == pytest.approx(expected, rel=1e-6)
    # a density of 0 at a labelled keypoint: an infinite (proper) penalty
    c = _record(np.zeros((3, 2)), np.zeros((3, 2)), None, [2, 0, 0], ll=[-np.inf, 0, 0])
    assert records_keypoint_nll([a, c]) == math.inf
    # heads without a density: no value (a blank cell)
    plain = _record(np.zeros((3, 2)), np.zeros((3, 2)), None, [2, 2, 2])
    assert records_keypoint_nll([plain, plain]) is None
    nothing = _record(np.zeros((3, 2)), np.zeros((3, 2)), None, [0, 0, 0], ll=[0, 0, 0])
    assert math.isnan(records_keypoint_nll([nothing]))


def test_records_keypoint_nll_3d_adds_the_depth_unit():
    rec = _record(np.zeros((2, 2)), np.zeros((2, 3)), None, [2, 2], (64, 64), [0.5, -0.5], 3)
    nll = records_keypoint_nll([rec], depth_scale=2000.0)
    assert nll == pytest.approx(2 * math.log(64) + math.log(2000.0), rel=1e-9)
    with pytest.raises(ValueError, match="record 0: a 3-D density needs depth_scale"):
        records_keypoint_nll([rec])


def test_records_keypoint_nll_bad_records_are_named():
    good = _record(np.zeros((2, 2)), np.zeros((2, 2)), None, [2, 2], ll=[0.0, 0.0])
    plain = _record(np.zeros((2, 2)), np.zeros((2, 2)), None, [2, 2])
    with pytest.raises(ValueError, match="record 1: no 'pred_log_likelihood'"):
        records_keypoint_nll([good, plain])
    short = dict(good, pred_log_likelihood=np.zeros(3))
    with pytest.raises(ValueError, match=r"record 1: 'pred_log_likelihood' must be .*\(2,\)"):
        records_keypoint_nll([good, short])
    nan = dict(good, pred_log_likelihood=np.array([np.nan, 0.0]))
    with pytest.raises(ValueError, match="record 0: 'pred_log_likelihood' is NaN"):
        records_keypoint_nll([nan])
    no_crop = dict(good, input_scale=None)
    with pytest.raises(ValueError, match="record 0: 'input_scale'"):
        records_keypoint_nll([no_crop])


def test_nll_and_calibrated_coverage_columns():
    rows = [
        dict(name="rle", head="RLEHead", status="ok", **{"coverage@50": 0.4, "nll": 5.678}),
        dict(name="l1", head="RegressionHead", status="ok", **{"coverage@50_cal": 0.51}),
    ]
    table = markdown_table(rows)
    header = table.splitlines()[0]
    assert "| cover@50 | cover@50 cal | NLL px |" in header
    assert "| rle | RLEHead | ok | 0.40 | - | 5.68 |" in table
    assert "| l1 | RegressionHead | ok | - | 0.51 | - |" in table  # absent: blank
    order = [c[0] for c in report.COLUMNS]
    assert order.index("conf_oks_ece") < order.index("coverage@68") < order.index("nll")
    assert order.index("coverage@95") < order.index("coverage@68_cal") < order.index("nll")


# -- residuals and calibrated coverage from records ---------------------------------------------
def test_records_residuals_exact():
    rec = _record([[10, 20], [0, 0]], [[6, 25], [1, 1]], [[0.1, 0.05], [1, 1]], [2, 0], (40, 50))
    u, mask = records_residuals([rec])
    # (10 - 6) / 40 / 0.1 = 1, (20 - 25) / 50 / 0.05 = -2
    np.testing.assert_allclose(u[0, 0], [1.0, -2.0], rtol=1e-6)
    assert mask.tolist() == [[True, False]]
    three = _record([[10, 20]], [[6, 25, 900]], [[0.1, 0.05, 7.0]], [2], (40, 50))
    np.testing.assert_allclose(records_residuals([three])[0][0, 0], [1.0, -2.0], rtol=1e-6)
    with pytest.raises(ValueError, match="record 1: 'pred_sigma'"):
        records_residuals([three, dict(three, pred_sigma=None)])
    with pytest.raises(ValueError, match="no prediction records"):
        records_residuals([])


def _gaussian_records(n, sigma_true, sigma_said, seed):
    """Records whose x, y errors are N(0, sigma_true^2) (normalised units) while the head
    says sigma_said."""
    rng = np.random.default_rng(seed)
    k = len(sigma_true)
    crop = np.array([48.0, 64.0])
    out = []
    for _ in range(n):
        gt = rng.uniform(0, 48, (k, 2))
        err = rng.normal(size=(k, 2)) * np.asarray(sigma_true)[:, None] * crop
        sigma = np.broadcast_to(np.asarray(sigma_said)[:, None], (k, 2))
        out.append(_record(gt + err, gt, sigma, np.full(k, 2.0), crop))
    return out


def test_calibrated_coverage_of_records_is_nominal_on_a_held_out_draw():
    from rle.calibration_run import fit_records
    from rle.evaluation.functional import residual_quantile

    levels = (0.5, 0.68, 0.95)
    scale = {lv: residual_quantile(lv, "gaussian") for lv in levels}
    truth, said = [0.02, 0.05, 0.01], [0.04, 0.04, 0.04]  # too wide, too narrow, too wide
    cal = fit_records(_gaussian_records(400, truth, said, 0), scale, levels)
    np.testing.assert_allclose(cal.scales, np.array(truth) / said, rtol=0.08)
    held = _gaussian_records(2000, truth, said, 1)
    before = records_interval_coverage(held, scale)
    after = records_interval_coverage(held, scale, calibration=cal)
    n = 2000 * 3 * 2  # coordinates
    for lv in levels:
        binomial = 3 * math.sqrt(lv * (1 - lv) / n)
        # the fit's own noise (400 x 3 x 2 coordinates) widens the band: 2 % is the budget
        assert abs(after[f"coverage@{int(lv * 100)}"] - lv) < binomial + 0.02, lv
    assert abs(before["coverage@68"] - 0.68) > 0.05  # miscalibrated before


def test_records_coverage_of_a_per_level_calibration_is_its_residual_coverage():
    from rle.calibration import interval_coverage_at
    from rle.calibration_run import fit_records
    from rle.evaluation.functional import residual_quantile

    levels = (0.5, 0.68, 0.95)
    scale = {lv: residual_quantile(lv, "gaussian") for lv in levels}
    records = _gaussian_records(300, [0.02, 0.05, 0.01], [0.04] * 3, 2)
    cal = fit_records(records, scale, levels, method="levels", min_count=10)
    assert cal.method == "levels" and cal.level_scales[0] != cal.level_scales[1]
    held = _gaussian_records(500, [0.02, 0.05, 0.01], [0.04] * 3, 3)
    covered = records_interval_coverage(held, scale, calibration=cal)
    u, mask = records_residuals(held)
    at = interval_coverage_at(u, mask, scale, cal)
    for lv in levels:
        assert covered[f"coverage@{int(lv * 100)}"] == pytest.approx(at[lv], abs=1e-12)
    # the reported sigma is c * sigma, the same for both methods
    by_scale = fit_records(records, scale, levels, min_count=10)
    assert covered["sigma_median"] == pytest.approx(
        records_interval_coverage(held, scale, calibration=by_scale)["sigma_median"], rel=1e-12
    )


# -- the held-out calibration split ----------------------------------------------------------------
@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from rle.datasets.synthetic import generate_synth_coco

    root = tmp_path_factory.mktemp("synth") / "coco"
    generate_synth_coco(root, num_train_images=40, num_val_images=1, image_size=(64, 48),
                        seed=3, progress=False)  # fmt: skip
    return root


def _holdout_ids(root, **holdout):
    from rle.datasets import SynthCocoDataset

    cfg = dict(num_train_images=40, num_val_images=1, image_size=(64, 48), seed=3)
    ds = SynthCocoDataset(str(root), "train", synth_cfg=cfg, holdout=holdout or None)
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    return {i["img_id"] for i in infos}, {i["id"] for i in infos}


def test_holdout_split_is_disjoint_complete_and_deterministic(synth_root):
    all_imgs, all_ids = _holdout_ids(synth_root)
    train = _holdout_ids(synth_root, fraction=0.3, seed=0, part="train")
    held = _holdout_ids(synth_root, fraction=0.3, seed=0, part="holdout")
    assert train[0] and held[0]
    assert not train[0] & held[0] and not train[1] & held[1]  # images and instances disjoint
    assert train[0] | held[0] == all_imgs and train[1] | held[1] == all_ids
    assert _holdout_ids(synth_root, fraction=0.3, seed=0, part="holdout") == held  # rebuilt
    assert _holdout_ids(synth_root, fraction=0.3, seed=1, part="holdout") != held
    # the split is a function of (seed, image id) alone: a larger fraction only adds images
    more = _holdout_ids(synth_root, fraction=0.6, seed=0, part="holdout")
    assert held[0] < more[0]


def test_holdout_hash_is_fixed_and_arguments_are_checked():
    from rle.datasets.holdout import check_holdout, held_out, split_holdout

    # fixed values: the split must not change with the Python version or process
    picks = [held_out(i, 0.5, 0) for i in range(1, 13)]
    assert picks == [held_out(str(i), 0.5, 0) for i in range(1, 13)]
    assert 2 <= sum(picks) <= 10
    share = np.mean([held_out(i, 0.2, 7) for i in range(4000)])
    assert abs(share - 0.2) < 0.03
    for bad, match in [
        (dict(fraction=0, part="train"), "fraction"),
        (dict(fraction=0.1, part="val"), "part"),
        (dict(fraction=0.1, part="train", seed=-1), "seed"),
        (dict(fraction=0.1, part="train", size=3), "unknown keys"),
    ]:
        with pytest.raises(ValueError, match=match):
            check_holdout(bad)
    with pytest.raises(TypeError):
        check_holdout(0.1)
    with pytest.raises(ValueError, match="sample 0 has no field 'img_id'"):
        split_holdout([dict(id=1)], dict(fraction=0.5, part="train"))
    with pytest.raises(ValueError, match="is empty"):
        split_holdout([dict(img_id=1)], dict(fraction=1e-9, part="holdout"))


def test_the_synthetic_configs_calibrate_on_a_split_of_their_own():
    from mmengine.config import Config

    leaves = [
        "configs/demo/rle_resnet10t_bf16-1xb16-15e_synthcoco-64x48.py",
        "configs/benchmark/synthcoco/rle_resnet10t_1xb16-30e_synthcoco-64x48.py",
        "configs/synthcoco/ipr_resnet18_1xb32-20e_synthcoco-128x96.py",
        "configs/synthh36m/rle3d_resnet18_1xb32-20e_synthh36m-128x128.py",
        "configs/benchmark/synthh36m/rle3d_resnet10t_1xb16-20e_synthh36m-64x64.py",
    ]
    for leaf in leaves:
        cfg = Config.fromfile(str(ROOT / leaf))
        calib, val = cfg.calib_dataloader.dataset, cfg.val_dataloader.dataset
        train = cfg.train_dataloader.dataset
        assert calib.data_root not in (val.data_root, train.data_root), leaf
        assert calib.synth_cfg.seed not in (val.synth_cfg.seed, train.synth_cfg.seed), leaf
        assert calib.type == train.type and calib.test_mode, leaf
        assert calib.pipeline == val.pipeline, leaf  # the crops the val split is scored on


def test_calibration_dataset_refuses_val_and_missing_splits():
    from mmengine.config import Config

    from rle.calibration_run import calibration_dataset

    cfg = Config.fromfile(str(SYNTH_CONFIG))
    cfg.calib_dataloader = dict(dataset=cfg.val_dataloader.dataset.to_dict())
    with pytest.raises(ValueError, match="reads the val data"):
        calibration_dataset(cfg)
    cfg.calib_dataloader = None
    with pytest.raises(ValueError, match="no calib_dataloader"):
        calibration_dataset(cfg)
    with pytest.raises(ValueError, match="max_instances"):
        calibration_dataset(cfg, max_instances=0)


# -- calibrate_checkpoint -> side file -> init_model / inference_topdown ---------------------------
def _calib_options(tmp: Path) -> dict:
    return {
        "model.backbone.model_name": "test_resnet",
        "calib_dataloader.batch_size": 8,
        "calib_dataloader.dataset.data_root": str(tmp / "synth_calib"),
        "calib_dataloader.dataset.synth_cfg": dict(
            num_train_images=6, num_val_images=1, image_size=(128, 96), seed=100
        ),
    }


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A self-describing checkpoint of the synthcoco RLE config's model on the test backbone."""
    from rle.checkpoint import model_metadata
    from rle.engine import load_config
    from rle.registry import MODELS

    tmp = tmp_path_factory.mktemp("calib")
    options = _calib_options(tmp)
    cfg = load_config(SYNTH_CONFIG, cfg_options=options)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    path = tmp / "tiny.pth"
    torch.save({"meta": {"rle_pose": model_metadata(cfg)}, "state_dict": model.state_dict()}, path)
    return path, options


def test_calibrate_checkpoint_side_file_is_what_inference_applies(tiny_checkpoint, capsys):
    from rle.apis import inference_topdown, init_model
    from tests.test_training import _tool

    ckpt, options = tiny_checkpoint
    before = ckpt.read_bytes()
    tool = _tool("calibrate")
    flat = {k: v for k, v in options.items() if not isinstance(v, dict)}
    synth = options["calib_dataloader.dataset.synth_cfg"]
    flat.update({f"calib_dataloader.dataset.synth_cfg.{k}": v for k, v in synth.items()})
    opts = [f"{k}={v}".replace(" ", "") for k, v in flat.items()]  # DictAction's syntax
    cal = tool.main([str(SYNTH_CONFIG), str(ckpt), "--min-count", "5", "--cfg-options", *opts])
    assert "level 0.50: coverage" in capsys.readouterr().out
    assert ckpt.read_bytes() == before  # the checkpoint itself is not touched
    side = calibration_path(ckpt)
    assert side.name == "tiny.pth.calibration.json" and load_calibration(side) == cal
    assert cal.per_keypoint and cal.num_keypoints == 17 and sum(cal.count) > 0
    assert cal.levels == (0.5, 0.68, 0.8, 0.9, 0.95)

    model = init_model(SYNTH_CONFIG, ckpt, cfg_options=options)
    assert model.calibration == cal  # found beside the checkpoint
    image = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    box = [[10, 5, 60, 90]]
    (r,) = inference_topdown(model, image, box, interval_level=0.68)
    (raw,) = inference_topdown(model, image, box, interval_level=0.68, calibration=None)
    c = np.asarray(cal.scales)[:, None]
    np.testing.assert_allclose(r.interval_axes, raw.interval_axes * c, rtol=1e-5)
    np.testing.assert_allclose(r.keypoint_sigma, raw.keypoint_sigma * c, rtol=1e-5)
    np.testing.assert_array_equal(r.keypoints, raw.keypoints)  # only the uncertainty changes
    # another calibration passed in overrides the model's; init_model(calibration=None) has none
    other = Calibration.from_dict({**cal.to_dict(), "per_keypoint": False, "scales": 2.0})
    (two,) = inference_topdown(model, image, box, interval_level=0.68, calibration=other)
    np.testing.assert_allclose(two.interval_axes, 2 * raw.interval_axes, rtol=1e-5)
    assert init_model(SYNTH_CONFIG, ckpt, cfg_options=options, calibration=None).calibration is None
    # --method levels: the axes take the factor of the asked level, sigma the geometric mean
    out = ckpt.with_name("levels.json")
    per_level = tool.main([str(SYNTH_CONFIG), str(ckpt), "--min-count", "5", "--method",
                           "levels", "--out", str(out), "--cfg-options", *opts])  # fmt: skip
    assert load_calibration(out) == per_level and per_level.method == "levels"
    (lv,) = inference_topdown(model, image, box, interval_level=0.68, calibration=per_level)
    np.testing.assert_allclose(lv.interval_axes,
                               raw.interval_axes * per_level.factor(0.68)[:, None], rtol=1e-5)
    np.testing.assert_allclose(lv.keypoint_sigma,
                               raw.keypoint_sigma * np.asarray(per_level.scales)[:, None],
                               rtol=1e-5)  # fmt: skip
    assert not np.allclose(per_level.factor(0.68), per_level.scales)  # a real difference


def test_calibration_from_metadata_precedence_and_mismatch(tmp_path):
    from tests.test_apis import write_checkpoint

    rng = np.random.default_rng(0)
    cal = fit_interval_calibration(rng.normal(size=(60, 17, 2)) * 1.5, None, "gaussian")
    path = write_checkpoint(tmp_path / "m.pth")
    state = torch.load(path, weights_only=False)
    state["meta"]["rle_pose"]["calibration"] = cal.to_dict()
    torch.save(state, path)
    from rle.apis import init_model

    assert init_model(checkpoint=path).calibration == cal  # from the metadata
    other = fit_interval_calibration(rng.normal(size=(60, 17, 2)) * 0.5, None, "gaussian")
    save_calibration(other, calibration_path(path))
    assert init_model(checkpoint=path).calibration == other  # the side file first
    assert init_model(checkpoint=path, calibration=calibration_path(path)).calibration == other
    few = fit_interval_calibration(rng.normal(size=(60, 3, 2)), None, "gaussian")
    with pytest.raises(ValueError, match="fitted on 3 keypoints, the model has 17"):
        init_model(checkpoint=path, calibration=few)
    with pytest.raises(TypeError, match="calibration must be"):
        resolve_calibration(1.5)
    calibration_path(path).write_text("{")
    with pytest.raises(ValueError, match="calibration.json: not a calibration file"):
        init_model(checkpoint=path)


def test_calibrate_refuses_a_head_without_density(tmp_path):
    from rle.calibration_run import calibrate_model
    from rle.engine import load_config
    from rle.registry import MODELS

    cfg = load_config(SYNTH_CONFIG, cfg_options=_calib_options(tmp_path))
    cfg.model.head = dict(type="RegressionHead", num_keypoints=17)
    model = MODELS.build(cfg.model)
    with pytest.raises(ValueError, match="RegressionHead .* no predictive density"):
        calibrate_model(model, cfg)


# -- the comparison --------------------------------------------------------------------------------
def test_compare_with_calibrate_reports_calibrated_coverage(tmp_path):
    from rle.compare import compare
    from rle.evaluation.dump import load_predictions
    from tests.test_training import _tiny, _tool

    options = {**_tiny(SYNTH_CONFIG, tmp_path), **_calib_options(tmp_path)}
    options["train_cfg.max_epochs"] = 1
    report_ = compare([SYNTH_CONFIG], work_root=tmp_path / "runs", timing_repeats=1,
                      cfg_options=options, calibrate=True)  # fmt: skip
    (row,) = report_.rows
    assert row["status"] == "trained", row["status"]
    for lv in (50, 68, 95):
        assert 0 <= row[f"coverage@{lv}"] <= 1 and 0 <= row[f"coverage@{lv}_cal"] <= 1
        assert 0 <= row[f"coverage@{lv}_cal_levels"] <= 1
    assert row["calibration"] == "per keypoint" and row["calibration_instances"] > 0
    work = tmp_path / "runs" / SYNTH_CONFIG.stem
    saved = load_calibration(row["calibration_file"])
    assert saved.num_keypoints == 17 and saved.method == "levels"
    assert Path(row["calibration_file"]).parent == work
    table = (tmp_path / "runs" / "report" / "report.md").read_text()
    assert "cover@50 cal" in table and "cover@95 cal" in table and "cover@68 cal-lvl" in table
    records = load_predictions(str(work / "predictions.pkl"))
    has_density = records[0].get("pred_log_likelihood") is not None
    assert ("nll" in row) == has_density and ("NLL px" in table) == has_density
    assert (tmp_path / "runs" / "report" / "flow_density.png").stat().st_size > 1000
    # a run that cannot be calibrated keeps its row and says why (here: no calibration split)
    again = compare([SYNTH_CONFIG], work_root=tmp_path / "runs", timing_repeats=1, calibrate=True,
                    cfg_options={**options, "calib_dataloader": None}).rows[0]  # fmt: skip
    assert again["status"] == "cached" and again["coverage@68"] == row["coverage@68"]
    assert again["calibration"].startswith("failed: ValueError: the config has no calib_")
    assert "coverage@68_cal" not in again and "coverage@68_cal_levels" not in again
    tool = _tool("compare")
    args = tool.parse_args(["x", "--calibrate", "--calib-instances", "100"])
    assert args.calibrate and args.calib_instances == 100
    with pytest.raises(SystemExit):
        tool.parse_args(["x", "--calib-instances", "0"])
    with pytest.raises(ValueError, match="calibration_instances"):
        compare([SYNTH_CONFIG], work_root=tmp_path / "never", calibration_instances=0)


# -- the flow plot ---------------------------------------------------------------------------------
def test_flow_plot_shows_the_residual_histogram_per_head_with_sigma(tmp_path, monkeypatch):
    figures = []
    finish = report._finish

    def keep(plt, fig, ax, path, legend=True, dpi=100):
        figures.append([(a.get_title(), len(a.patches), [ln.get_label() for ln in a.lines])
                        for a in fig.axes if a.axison])  # fmt: skip
        return finish(plt, fig, ax, path, legend, dpi)

    monkeypatch.setattr(report, "_finish", keep)
    grid = np.linspace(-4, 4, 81)
    rng = np.random.default_rng(0)
    rle = _gaussian_records(50, [0.02] * 3, [0.02] * 3, 0)
    ipr = _gaussian_records(50, [0.02] * 3, [0.01] * 3, 1)
    l1 = [dict(r, pred_sigma=None) for r in rle]
    runs = {"rle": rle, "ipr": ipr, "l1": l1}
    density = np.exp(-0.5 * grid**2) / math.sqrt(2 * math.pi) + rng.uniform(0, 0.01, grid.size)
    path = report.plot_flow_density(runs, {"rle": density}, grid, tmp_path / "flow_density.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    (panels,) = figures
    assert [p[0].split("\n")[0] for p in panels] == ["rle", "ipr"]  # no panel without sigma
    for _, bars, lines in panels:
        assert bars == grid.size  # the histogram, one bar per grid point
        assert {"Gaussian (var 1)", "Laplace (var 1)"} <= set(lines)
    assert "learned density" in panels[0][2] and "learned density" not in panels[1][2]
    # ipr's sigma is half its error: a share of its residuals lies beyond 4 sigma
    assert float(panels[1][0].split("\n")[1].split("%")[0]) > 0
    report.plot_flow_density({"l1": l1}, {}, grid, tmp_path / "none.png")
    assert figures[-1][0][0] == "no run predicts sigma"
