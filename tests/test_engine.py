"""mmengine integration: non-finite loss stop, resume with identical state, two-process gloo
training with results gathered across ranks."""

import os
import subprocess
import sys

import pytest
import torch

from rle.engine import NonFiniteLossError, NonFiniteLossHook
from tests.test_training import ROOT, _tiny

CFG = ROOT / "configs" / "synthcoco" / "regression-l1_resnet18_1xb32-20e_synthcoco-128x96.py"


def _runner(tmp_path, extra=None, resume=None):
    from mmengine.runner import Runner

    from rle.engine import load_config, setup_engine

    opts = {**_tiny(CFG, tmp_path), **(extra or {})}
    cfg = load_config(CFG, work_dir=str(tmp_path / "work"), cfg_options=opts, resume=resume)

    setup_engine()
    return Runner.from_cfg(cfg)


def test_non_finite_loss_stops_with_the_component_name(tmp_path):
    # std 0 in the data preprocessor: infinite inputs, NaN loss on the first iteration
    runner = _runner(tmp_path, {"model.data_preprocessor.std": [0.0, 0.0, 0.0]})
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss_kpt = nan at iteration 1"):
        runner.train()


def test_hook_names_any_component():
    class Stub:
        iter, epoch = 4, 0

    outputs = {"loss": torch.tensor(1.0), "rle_nf": torch.tensor(float("inf"))}
    with pytest.raises(NonFiniteLossError, match="non-finite rle_nf = inf at iteration 5"):
        NonFiniteLossHook().after_train_iter(Stub(), 0, None, outputs)
    NonFiniteLossHook().after_train_iter(Stub(), 0, None, {"loss": torch.tensor(2.0)})


def test_resume_restores_identical_state(tmp_path):
    first = _runner(tmp_path)
    first.train()
    iters = first.iter
    ckpt_path = tmp_path / "work" / "epoch_1.pth"
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    second = _runner(tmp_path, {"train_cfg.max_epochs": 2}, resume=str(ckpt_path))
    second.load_or_resume()
    assert (second.epoch, second.iter) == (1, iters)
    model = second.model.state_dict()
    for key, value in ckpt["state_dict"].items():
        assert torch.equal(model[key], value), key
    opt = second.optim_wrapper.state_dict()["state"]
    for idx, state in ckpt["optimizer"]["state"].items():
        assert torch.equal(opt[idx]["exp_avg"], state["exp_avg"])
    second._has_loaded = True  # mmengine: do not load again in train()
    second.train()
    assert second.iter == 2 * iters
    assert (tmp_path / "work" / "epoch_2.pth").is_file()


def _torchrun(tmp_path, extra, resume=False):
    args = []
    for key, value in extra.items():
        if isinstance(value, dict):
            args += [f"{key}.{k}={v}" for k, v in value.items()]
        elif isinstance(value, (list, tuple)):
            args.append(f"{key}=[{','.join(str(v) for v in value)}]")
        else:
            args.append(f"{key}={value}")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29517",
        str(ROOT / "tools" / "train.py"),
        str(CFG),
        "--launcher",
        "pytorch",
        "--work-dir",
        str(tmp_path / "work"),
    ]
    cmd += (["--resume"] if resume else []) + ["--cfg-options", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    logs = sorted((tmp_path / "work").glob("*/*.log"))
    return logs[-1].read_text()


def test_two_process_gloo_training_validation_and_resume(tmp_path):
    import json

    opts = _tiny(CFG, tmp_path)
    synth = opts["train_dataloader.dataset.synth_cfg"]
    for key in [k for k in opts if k.endswith(".synth_cfg")]:
        opts[key] = {k: v for k, v in synth.items() if k != "image_size"}
        opts[key]["image_size"] = "(128,96)"
    log = _torchrun(tmp_path, opts)
    assert "Distributed training: True" in log and "GPU number: 2" in log  # mmengine's words
    val_json = tmp_path / "synth_coco" / "annotations" / "person_keypoints_val.json"
    num_val = len(json.loads(val_json.read_text())["annotations"])
    # the metric saw every validation instance: results were gathered from both ranks
    assert f"coco/num_instances: {num_val:.4f}" in log
    assert (tmp_path / "work" / "epoch_1.pth").is_file()
    log = _torchrun(tmp_path, {**opts, "train_cfg.max_epochs": 2}, resume=True)
    assert "resumed epoch: 1" in log
    assert (tmp_path / "work" / "epoch_2.pth").is_file()
