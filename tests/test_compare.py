"""rle.compare end to end on a tiny generated set: two heads, one iteration each, a crashed
run in the table, every table and plot written, finished runs skipped on re-run; the command
line of tools/compare.py."""

import json
import os
import re

import pytest

from rle.compare import compare, expand_runs
from rle.compare.training import progress_line
from tests.test_training import ROOT, _tiny, _tool

HEADS = ["rle_resnet18_1xb32-20e_synthcoco-128x96.py", "ipr_resnet18_1xb32-20e_synthcoco-128x96.py"]


def _broken_copy(config, tmp_path):
    """A copy of ``config`` whose head type does not exist: it crashes when built."""
    broken = tmp_path / "broken_resnet18_1xb32-20e_synthcoco-128x96.py"
    text = config.read_text().replace("../_base_/", str(ROOT / "configs" / "_base_") + "/")
    broken.write_text(text.replace('type="RLEHead"', 'type="NoSuchHead"'))
    return broken


def test_compare_end_to_end(tmp_path):
    configs = [ROOT / "configs" / "synthcoco" / name for name in HEADS]
    broken = _broken_copy(configs[0], tmp_path)
    kwargs = dict(
        work_root=tmp_path / "runs",
        timing_repeats=1,
        cfg_options={**_tiny(configs[0], tmp_path), "train_cfg.max_epochs": 1},
    )
    report = compare([*configs, broken], **kwargs)
    rows = report.rows
    status = {r["name"]: r["status"] for r in rows}
    assert status[configs[0].stem] == "trained" and status[configs[1].stem] == "trained"
    assert status[broken.stem].startswith("crashed: KeyError")
    out = tmp_path / "runs" / "report"
    table = (out / "report.md").read_text()
    assert "crashed" in table and "RLEHead" in table and "SoftArgmaxHead" in table
    data = json.loads((out / "report.json").read_text())
    rle = next(r for r in data if r["name"] == configs[0].stem)
    for key in (
        "AP",
        "PCK@0.05",
        "EPE",
        "conf_oks_pearson",
        "coverage@68",
        "params_m",
        "gflops",
        "train_iters_per_s",
        "latency_ms",
    ):
        assert key in rle, key
    assert rle["coverage_quantiles"] == "learned density"  # RLE intervals use the flow's density
    assert rle["sigma_median"] > 0 and rle["abs_residual_median"] > 0
    assert all(0 <= r["score_mean"] <= 1 for r in data if r["status"] == "trained")
    assert (out / "report.csv").read_text().count("\n") == 4
    for png in ("pck_curves", "reliability", "flow_density", "error_histograms", "examples"):
        path = out / f"{png}.png"
        assert path.stat().st_size > 1000, png
        assert path.read_bytes()[:4] == b"\x89PNG"
    pattern = r"training ([0-9.]+) s, the comparison itself ([0-9.]+) s"
    split = re.search(pattern, str(report))
    assert split and float(split[1]) > 0 and float(split[2]) > 0
    assert report.train_seconds > 0 and report.total_seconds > report.train_seconds
    assert set(report.paths) >= {"markdown", "csv", "json", "examples", "flow_density"}
    assert report.markdown() in str(report) and report.summary == []
    # re-running skips the finished runs (evaluates their checkpoints)
    again = compare([*configs, broken], **kwargs)
    status = {r["name"]: r["status"] for r in again.rows}
    assert status[configs[0].stem] == "cached" and status[configs[1].stem] == "cached"
    # the time split: no training on the re-run
    assert "training 0.0 s, the comparison itself" in str(again)
    assert all(r["eval_seconds"] > 0 for r in again.rows if r["status"] == "cached")
    # a folder of finished work dirs is evaluated where it is (the crashed run has no done.json)
    from_dirs = compare([tmp_path / "runs"], work_root=tmp_path / "r2").rows
    assert {r["name"]: r["status"] for r in from_dirs} == {c.stem: "cached" for c in configs}
    assert (tmp_path / "r2" / "report" / "report.md").is_file()
    assert not (tmp_path / "r2" / configs[0].stem).exists()  # nothing retrained or copied


def test_compare_tool_reports_when_every_run_crashes(tmp_path, capsys):
    tool = _tool("compare")
    broken = tmp_path / "broken_resnet18_1xb32-20e_synthcoco-128x96.py"
    broken.write_text("model = dict(head=dict(type='RLEHead'))\n")  # no datasets at all
    report = tool.main([str(broken), "--work-root", str(tmp_path / "runs")])
    assert report.rows[0]["status"].startswith("crashed")
    assert "| crashed" in capsys.readouterr().out  # the tool prints the report
    assert (tmp_path / "runs" / "report" / "report.md").read_text().count("crashed") == 1
    assert (tmp_path / "runs" / broken.stem / "crash.log").is_file()


def test_head_interval_scale_follows_the_loss_variant():
    """An identity flow is N(0, I): the paper's loss without Q implies N(0, 1) per coordinate,
    the official/MMPose ones count log phi per coordinate (phi^2: N(0, 1/2)), and Q narrows it
    further; heads without a density of their own give None."""
    import torch
    from scipy.stats import norm

    from rle.registry import MODELS

    def scale(**loss_cfg):
        head = MODELS.build(dict(type="RLEHead", in_channels=8, num_keypoints=2,
                                 loss_cfg=loss_cfg))  # fmt: skip
        for p in head.loss_module.flow.parameters():
            torch.nn.init.zeros_(p)  # s = t = 0: the identity, phi = N(0, I)
        return head.interval_scale((0.68, 0.95))

    z68, z95 = norm.ppf(0.84), norm.ppf(0.975)
    paper = scale(variant="paper", residual=False)
    assert abs(paper[0.68] - z68) < 0.04 and abs(paper[0.95] - z95) < 0.04
    official = scale(variant="official", residual=False)
    assert abs(official[0.95] - z95 / 2**0.5) < 0.04
    # Gaussian Q on top of phi^2: exp(-u^2) * exp(-u^2 / 2) = N(0, 1/3)
    gauss = scale(variant="mmpose", q="gaussian", residual=True)
    assert abs(gauss[0.95] - z95 / 3**0.5) < 0.04
    assert scale(variant="official")[0.95] < official[0.95]  # Laplace Q narrows it too
    l1 = MODELS.build(dict(type="RegressionHead", in_channels=8, num_keypoints=2))
    assert l1.interval_scale((0.68,)) is None and l1.residual_density([0.0]) is None
    rle3d = MODELS.build(dict(type="RLEHead", in_channels=8, num_keypoints=2, num_dims=3))
    assert rle3d.interval_scale((0.68,)) is None  # no 3-D interval yet


def test_compare_trains_in_parallel_processes(tmp_path, capsys):
    configs = [ROOT / "configs" / "synthcoco" / name for name in HEADS]
    broken = _broken_copy(configs[0], tmp_path)
    report = compare(
        [*configs, broken], work_root=tmp_path / "runs", jobs=2, timing_repeats=1,
        cfg_options={**_tiny(configs[0], tmp_path), "train_cfg.max_epochs": 1},
    )  # fmt: skip
    rows = report.rows
    status = {r["name"]: r["status"] for r in rows}
    assert status[configs[0].stem] == "trained" and status[configs[1].stem] == "trained"
    assert status[broken.stem].startswith("crashed: training failed")
    assert "NoSuchHead" in (tmp_path / "runs" / broken.stem / "crash.log").read_text()
    for cfg in configs:
        work = tmp_path / "runs" / cfg.stem
        assert (work / "done.json").is_file() and (work / "train.log").stat().st_size > 0
    out = capsys.readouterr().out
    assert f"({max(1, (os.cpu_count() or 1) // 2)} threads" in out
    assert (tmp_path / "runs" / "report" / "report.md").read_text().count("trained") == 2
    # the training wall time is the parallel phase, so the comparison's own time stays positive
    split = re.search(r"training ([0-9.]+) s, the comparison itself ([0-9.]+) s", str(report))
    assert split and float(split[1]) > 0 and float(split[2]) > 0
    tool = _tool("compare")
    assert tool.parse_args(["x", "--jobs", "2"]).jobs == 2
    with pytest.raises(SystemExit):
        tool.parse_args(["x", "--jobs", "0"])
    for bad in (dict(jobs=0), dict(timing_repeats=0), dict(seeds=[1, 1])):
        with pytest.raises(ValueError):
            compare(configs, work_root=tmp_path / "never", **bad)


def test_compare_base_config_with_head_blocks(tmp_path):
    base = ROOT / "configs" / "synthcoco" / HEADS[0]
    heads_file = tmp_path / "heads.py"
    heads_file.write_text(
        "heads = dict(\n"
        "    l1=dict(type='RegressionHead', num_keypoints=17, loss='l1'),\n"
        "    ipr=dict(type='SoftArgmaxHead', num_keypoints=17, deconv_channels=(32,), beta=2.0),\n"
        ")\n"
    )
    work = tmp_path / "runs"
    specs = expand_runs([base], work, heads=str(heads_file))
    assert [s.name for s in specs] == [
        "l1_resnet18_1xb32-20e_synthcoco-128x96",
        "ipr_resnet18_1xb32-20e_synthcoco-128x96",
    ]
    from mmengine.config import Config

    cfg = Config.fromfile(str(specs[1].config))
    # the block replaces the base head entirely (no RLE keys left), the rest is the base's
    assert cfg.model.head.to_dict() == dict(
        type="SoftArgmaxHead", num_keypoints=17, deconv_channels=(32,), beta=2.0
    )
    assert cfg.model.backbone.model_name == "resnet18"
    rows = compare([base], work_root=work, heads=str(heads_file), train=False).rows
    assert [r["head"] for r in rows] == ["RegressionHead", "SoftArgmaxHead"]
    assert all("not trained yet" in r["status"] for r in rows)
    bad = tmp_path / "bad.py"
    bad.write_text("heads = dict(x=dict(num_keypoints=17))\n")
    with pytest.raises(ValueError, match="type"):
        expand_runs([base], work, heads=str(bad))
    with pytest.raises(ValueError, match="cannot read heads file"):
        expand_runs([base], work, heads=str(tmp_path / "missing.py"))
    with pytest.raises(ValueError, match="exactly one base config"):
        expand_runs([base, base], work, heads=str(heads_file))
    with pytest.raises(SystemExit):
        _tool("compare").parse_args([str(base), str(base), "--heads", str(heads_file)])
    with pytest.raises(SystemExit, match="compare: no such config"):  # the tool says what
        _tool("compare").main([str(tmp_path / "nope.py")])


def test_parallel_progress_line_reads_the_log_tail(tmp_path):
    assert progress_line("a", tmp_path, 15) == "a starting"
    (tmp_path / "train.log").write_text(
        "x" * 5000
        + "\nINFO - Epoch(train)  [2][ 50/188]  lr: 1e-3\nINFO - Epoch(train) [3][100/188]  lr\n"
    )
    assert progress_line("a", tmp_path, 15) == "a epoch 3/15 (100/188)"


def test_demo_lr_sweep_changes_only_the_lr(tmp_path):
    import importlib.util

    from mmengine.config import Config

    spec = importlib.util.spec_from_file_location(
        "demo_lr_sweep", ROOT / "benchmarks" / "demo_lr_sweep.py"
    )
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    paths = sweep.write_configs([2e-3, 4e-3], tmp_path)
    assert [p.name.split("_")[0] for p in paths] == ["rle-lr0.002", "rle-lr0.004"]
    base = Config.fromfile(str(sweep.BASE)).to_dict()
    cfg = Config.fromfile(str(paths[1])).to_dict()
    optimizer = dict(base["optim_wrapper"]["optimizer"], lr=4e-3)
    assert cfg["optim_wrapper"]["optimizer"] == optimizer
    base.pop("optim_wrapper"), cfg.pop("optim_wrapper")
    assert cfg == base
    with pytest.raises(SystemExit):
        sweep.main(["--lrs", "-1"])


def test_summarize_seeds_mean_and_sample_std():
    from rle.evaluation import report

    rows = [
        dict(name="rle_x-seed0", head="RLEHead", status="trained", AP=0.5, EPE=2.0),
        dict(name="ipr_x", head="SoftArgmaxHead", status="cached", AP=0.4),
        dict(name="rle_x-seed1", head="RLEHead", status="cached", AP=0.7, EPE=float("nan")),
        dict(name="rle_x-seed2", head=None, status="crashed: KeyError: x"),
    ]
    summary = report.summarize_seeds(rows)
    assert [r["name"] for r in summary] == ["rle_x", "ipr_x"]
    rle, ipr = summary
    assert rle["status"] == "2/3 seeds" and rle["seeds"] == 2 and rle["head"] == "RLEHead"
    assert rle["AP"] == pytest.approx(0.6) and rle["AP_std"] == pytest.approx(0.02**0.5)
    assert rle["EPE"] == 2.0 and rle["EPE_std"] is None  # NaN dropped, one value left
    assert ipr["AP"] == 0.4 and ipr["AP_std"] is None and ipr["status"] == "1/1 seeds"
    table = report.summary_markdown(summary)
    assert "| rle_x | RLEHead | 2/3 seeds | 0.600 ± 0.141 |" in table
    assert report.seed_group("a-seed12") == "a" and report.seed_group("a-seedx") == "a-seedx"


def test_compare_with_seeds(tmp_path):
    import torch

    config = ROOT / "configs" / "synthcoco" / HEADS[0]
    work = tmp_path / "runs"
    report = compare(
        [config], seeds=[3, 4], work_root=work, timing_repeats=1,
        cfg_options={**_tiny(config, tmp_path), "train_cfg.max_epochs": 1},
    )  # fmt: skip
    rows = report.rows
    names = [f"{config.stem}-seed3", f"{config.stem}-seed4"]
    assert [r["name"] for r in rows] == names and all(r["status"] == "trained" for r in rows)
    weights = []
    for name in names:
        done = json.loads((work / name / "done.json").read_text())
        ckpt = work / name / done["checkpoint"]  # relative to the work dir
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        assert state["meta"]["seed"] == int(name[-1])
        weights.append(state["state_dict"]["head.fc_sigma.weight"])
    assert not torch.equal(*weights)  # the seed reached the initialisation
    out = work / "report"
    summary = json.loads((out / "summary.json").read_text())
    assert [r["name"] for r in summary] == [config.stem] and summary[0]["seeds"] == 2
    assert summary[0]["AP_std"] is not None
    assert "over the seeds (mean ± sample std)" in str(report)
    assert report.summary[0]["name"] == config.stem
    assert (out / "summary.md").read_text().count("2/2 seeds") == 1
    for bad in (["--seeds", "1", "1"], ["--seeds", "-1"], ["--timing-repeats", "0"]):
        with pytest.raises(SystemExit):
            _tool("compare").parse_args([str(config), *bad])
    with pytest.raises(ValueError, match="finished work dirs"):
        expand_runs([work], tmp_path / "r2", seeds=[0])
