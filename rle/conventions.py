"""The pixel convention of a config, and configs of self-describing checkpoints.

* :func:`apply_convention`: a config's top-level ``convention``
  (:data:`rle.datasets.geometry.CONVENTIONS`) carried to every dataset, the model and a heatmap
  head's grid (what :func:`rle.engine.load_config` calls);
* :func:`config_from_checkpoint`: the test config of a checkpoint with ``meta["rle_pose"]``
  (``tools/test.py CHECKPOINT``);
* :func:`warn_convention`: a checkpoint loaded into a model of another convention.
"""

from __future__ import annotations

import os.path as osp
from typing import Optional

__all__ = ["apply_convention", "config_from_checkpoint", "warn_convention"]


def _datasets(cfg):
    """Every dataset config of the config's dataloaders (wrappers' inner ones included)."""
    stack = [(cfg.get(key) or {}).get("dataset") for key in _LOADERS]
    while stack:
        ds = stack.pop()
        if not isinstance(ds, dict):
            continue
        inner = [ds.get("dataset")] + list(ds.get("datasets") or [])
        if any(isinstance(d, dict) for d in inner):
            stack.extend(inner)
        else:
            yield ds


_LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")


def _set_once(target: dict, key: str, value, where: str) -> None:
    if target.get(key) is not None and target[key] != value:
        raise ValueError(
            f"the config sets convention={value!r} but {where} sets {key}={target[key]!r}: set "
            "the pixel convention once, at the top of the config"
        )
    target[key] = value


def apply_convention(cfg) -> None:
    """Carry the config's top-level ``convention`` (:data:`rle.datasets.geometry.CONVENTIONS`;
    absent = ``"rle"``, nothing changed) to every dataset (``convention``: the crops and their
    decoding), the model (``model.convention``) and, for ``"mmpose"``, a heatmap head's grid
    (``grid="mmpose"`` with the test pipeline's ``input_size``: MMPose's integral heads put bin
    j at crop pixel ``j * stride``). Values set explicitly elsewhere must agree."""
    from rle.checkpoint import _pipeline_input_size
    from rle.datasets.geometry import check_convention
    from rle.registry import MODELS

    convention = cfg.get("convention")
    if convention is None:
        return
    check_convention(convention)
    for ds in _datasets(cfg):
        _set_once(ds, "convention", convention, f"the {ds.get('type')} dataset")
    model = cfg.get("model")
    if not isinstance(model, dict):
        return
    _set_once(model, "convention", convention, "model")
    head = model.get("head")
    if convention != "mmpose" or not isinstance(head, dict) or "type" not in head:
        return
    cls = MODELS.get(head["type"])
    if cls is not None and hasattr(cls, "grid_offset"):  # a heatmap head (heads.HeatmapHead)
        _set_once(head, "grid", "mmpose", "model.head")
        if head.get("input_size") is None:
            size = _pipeline_input_size(cfg)
            if size is None:
                raise ValueError(
                    "convention='mmpose' with a heatmap head needs model.head.input_size (w, h) "
                    "or a TopdownAffine in the test pipeline"
                )
            head["input_size"] = size


def config_from_checkpoint(
    checkpoint,
    *,
    dataset_config=None,
    data_root: Optional[str] = None,
    cfg_options: Optional[dict] = None,
    work_dir: Optional[str] = None,
    launcher: str = "none",
    unsafe_load: bool = False,
):
    """The test config of a self-describing checkpoint (``meta["rle_pose"]``: written by every
    training run here and by :func:`rle.converters.convert_checkpoint`).

    The model, its input size and pixel convention come from the checkpoint; the data and the
    evaluator from ``dataset_config`` (default: the repository's
    ``configs/_base_/datasets/coco-256x192.py``, COCO val2017 under the published protocol)
    on ``configs/_base_/default_runtime.py``.

    Args:
        checkpoint: the checkpoint file.
        dataset_config: a config file with ``test_dataloader`` and ``test_evaluator``.
        data_root: the dataset root: replaces the test dataset's ``data_root`` and makes the
            evaluator's ``ann_file`` the dataset's annotation file under it.
        cfg_options, work_dir, launcher: as :func:`load_config` (``work_dir`` default
            ``work_dirs/<checkpoint stem>``).
        unsafe_load: read the checkpoint with plain ``torch.load`` (trusted files only).

    Raises:
        ValueError: the checkpoint has no rle-pose metadata (naming the converter when it has an
            MMPose or official layout).
    """
    from mmengine.config import Config

    from rle.checkpoint import read_model_metadata
    from rle.serialization import load_checkpoint_file

    configs = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), "configs", "_base_")
    dataset_config = dataset_config or osp.join(configs, "datasets", "coco-256x192.py")
    runtime = osp.join(configs, "default_runtime.py")
    for path in (dataset_config, runtime):
        if not osp.isfile(path):
            raise FileNotFoundError(f"config file {path!r} does not exist (pass dataset_config)")
    info = read_model_metadata(
        load_checkpoint_file(checkpoint, map_location="cpu", unsafe=unsafe_load), str(checkpoint)
    )
    cfg = Config.fromfile(runtime)
    cfg.merge_from_dict(Config.fromfile(dataset_config).to_dict())
    cfg.model = info["model"]
    cfg.convention = info.get("convention", "rle")
    for ds in _datasets(cfg):
        for step in ds.get("pipeline") or ():
            if step.get("type") == "TopdownAffine" and info.get("input_size"):
                step["input_size"] = tuple(info["input_size"])
    for key in ("train_dataloader", "train_cfg", "optim_wrapper", "param_scheduler"):
        cfg.pop(key, None)
    for key in ("val_dataloader", "val_cfg", "val_evaluator"):
        cfg.pop(key, None)
    if cfg.get("test_cfg") is None:
        cfg.test_cfg = dict(type="TestLoop")
    stem = osp.splitext(osp.basename(str(checkpoint)))[0]
    from rle.engine import _finish_config

    cfg = _finish_config(cfg, stem, cfg_options, work_dir, launcher)
    if data_root is not None:  # after cfg_options, which may name another annotation file
        dataset = cfg.test_dataloader.dataset
        dataset.data_root = str(data_root)
        evaluators = cfg.test_evaluator
        for ev in evaluators if isinstance(evaluators, list) else [evaluators]:
            if "ann_file" in ev:
                ev.ann_file = osp.join(str(data_root), dataset.ann_file)
    return cfg


def warn_convention(checkpoint, model, filename: str) -> None:
    """A loud warning when a self-describing checkpoint was trained in another pixel convention
    than the model it is loaded into: the keys fit, the predictions move by sub-pixel amounts
    (fine-tuning may want that; evaluating rarely does)."""
    import logging

    from mmengine.logging import print_log

    meta = checkpoint.get("meta") if isinstance(checkpoint, dict) else None
    info = meta.get("rle_pose") if isinstance(meta, dict) else None
    theirs = info.get("convention") if isinstance(info, dict) else None
    ours = getattr(model, "convention", None)
    if theirs is not None and ours is not None and theirs != ours:
        print_log(
            f"{filename} was trained in the {theirs!r} pixel convention, the model is "
            f"{ours!r}: its predictions will be off by sub-pixel amounts. Set "
            f"convention = {theirs!r} at the top of the config (--cfg-options "
            f"convention={theirs}) to reproduce them",
            logger="current",
            level=logging.WARNING,
        )
