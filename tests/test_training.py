"""Every config builds; every head trains a few iterations on generated data and evaluates;
a non-finite loss stops training with the component's name."""

import importlib.util
from pathlib import Path

import pytest
from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.py") if "_base_" not in p.parts)


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny(cfg_path: Path, tmp: Path) -> dict:
    """cfg-options shrinking a config to seconds on a CPU, on generated data in ``tmp``."""
    synth3d = "h36m" in cfg_path.parent.name
    opts = {
        "model.backbone.model_name": "test_resnet",
        "train_dataloader.batch_size": 4,
        "val_dataloader.batch_size": 4,
        "test_dataloader.batch_size": 4,
        "train_cfg.max_epochs": 1,
        "train_cfg.val_interval": 1,
        "default_hooks.logger.interval": 1,
        "default_hooks.checkpoint.interval": 1,
    }
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        opts[f"{loader}.num_workers"] = 0
        opts[f"{loader}.persistent_workers"] = False
    if synth3d:
        synth = dict(frames_per_subject=1, image_size=(128, 128), seed=0)
        root = str(tmp / "synth_h36m")
    else:
        synth = dict(num_train_images=3, num_val_images=2, image_size=(128, 96), seed=0)
        root = str(tmp / "synth_coco")
        opts["val_evaluator.ann_file"] = root + "/annotations/person_keypoints_val.json"
        opts["test_evaluator.ann_file"] = root + "/annotations/person_keypoints_val.json"
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        opts[f"{loader}.dataset.data_root"] = root
        opts[f"{loader}.dataset.synth_cfg"] = synth
    return opts


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_builds(path):
    from rle.registry import DATASETS, METRICS, MODELS

    cfg = Config.fromfile(str(path))
    assert cfg.default_scope == "rle"
    model = MODELS.build(cfg.model)
    assert model.head.num_keypoints == 17
    assert DATASETS.get(cfg.train_dataloader.dataset.type) is not None
    assert METRICS.get(cfg.val_evaluator.type) is not None
    # the file name says head, backbone, schedule, dataset and input size
    head, backbone, schedule, data = path.stem.split("_")
    assert backbone in cfg.model.backbone.model_name
    assert schedule.endswith(f"-{cfg.train_cfg.max_epochs}e")


# the small CPU configs; the benchmark folders repeat the same heads with longer schedules
SYNTH = [
    p for p in CONFIGS if p.parent.name.startswith("synth") and p.parent.parent.name == "configs"
]


@pytest.mark.parametrize("path", SYNTH, ids=[p.stem for p in SYNTH])
def test_every_head_trains_and_evaluates(path, tmp_path):
    from mmengine.runner import Runner

    from rle.engine import load_config, setup_engine

    cfg = load_config(path, work_dir=str(tmp_path / "work"), cfg_options=_tiny(path, tmp_path))

    setup_engine()
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.val_loop.run()
    key = "h36m/MPJPE" if "h36m" in path.parent.name else "coco/AP"
    assert key in metrics
    assert (tmp_path / "work" / "epoch_1.pth").is_file()
