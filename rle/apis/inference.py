"""Top-down inference from Python: build a model, run it on an image and its person boxes.

* :func:`init_model`: the estimator of a config (file or mmengine ``Config``) and/or a
  checkpoint; a self-describing checkpoint (``meta["rle_pose"]``, every checkpoint trained or
  converted here) needs no config. The returned model carries ``dataset_meta`` and
  ``test_pipeline``.
* :func:`inference_topdown`: one image (a file or an ``(H, W, 3)`` BGR uint8 array) and its
  boxes -> one :class:`PoseResult` per box, in image pixels, with the keypoint sigma and the
  per-keypoint interval of the head's learned density where the head has them.
* calibration: a model with ``model.calibration`` (a :class:`rle.calibration.Calibration`,
  attached by :func:`init_model` from ``CKPT.calibration.json`` or the checkpoint's metadata)
  gets calibrated sigma and intervals, ``c_j * sigma`` per keypoint ``j``.

**The pose-model protocol.** :func:`inference_topdown` uses nothing of the model but this, so
any object providing it runs through it unchanged (the estimator of :func:`init_model`, or an
exported model running on another runtime):

* ``dataset_meta``: dict with ``keypoint_names``, ``skeleton_links`` (0-based pairs) and
  ``flip_indices`` (K ints);
* ``test_pipeline``: list of transform config dicts (``rle`` transform registry) for in-memory
  images: ``GetBBoxCenterScale``, ``TopdownAffine``, ``PackPoseInputs``;
* ``convention``: the pixel convention of the crops (:data:`rle.datasets.geometry.CONVENTIONS`);
* ``test_cfg``: dict (``flip_test`` ...; honoured by ``predict``);
* ``data_preprocessor(data, training)``: collated ``dict(inputs, data_samples)`` -> the same
  with ``inputs`` a normalised ``(B, 3, h, w)`` tensor;
* ``predict(inputs, data_samples)``: the data samples with ``pred_keypoints`` (K, 2) image px,
  ``pred_scores`` (K,), ``pred_sigma`` (K, D) normalised to the crop or ``None``, and for 3-D
  models ``pred_depth`` (K,) root-relative mm;
* ``interval_scale(levels)`` -> ``{level: k}`` or ``None``; a model without that method is
  asked through ``model.head.interval_scale`` (:meth:`heads.BaseHead.interval_scale`).

The samples are built as the datasets build theirs (:mod:`rle.datasets.coco`): ``bbox``
float32 xyxy with pixel-edge coordinates, ``bbox_score``, ``flip_indices`` from the meta and the
model's ``convention``, so a box gives the crop, and the prediction, a dataset sample with the
same box gives.
"""

from __future__ import annotations

import copy
import os
import re
import weakref
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch

__all__ = [
    "BBOX_FORMATS",
    "PoseResult",
    "default_dataset_meta",
    "init_model",
    "inference_topdown",
    "model_interval_scale",
    "read_image",
]

#: accepted ``bbox_format`` values of :func:`inference_topdown`
BBOX_FORMATS = ("xyxy", "xywh")
#: the steps of a dataset pipeline that need files or ground truth, dropped for inference
_FILE_OR_GT_STEPS = ("LoadImage", "EncodeKeypoints")
#: ``{model: {level: k}}``: a head's interval scale integrates its flow's density on a fine
#: grid (seconds on a CPU), and a model's flow does not change during inference
_INTERVAL_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass
class PoseResult:
    """One person instance predicted by :func:`inference_topdown`.

    Attributes:
        bbox: ``(4,)`` float32 ``x1, y1, x2, y2`` image px (pixel edges), the input box.
        bbox_score: the box's score (1.0 unless given).
        keypoints: ``(K, 2)`` float32 image px, index units (pixel centre = integer), ``(x, y)``.
        keypoint_scores: ``(K,)`` float32 confidences in ``[0, 1]``.
        keypoint_sigma: ``(K, 2)`` float32 the head's sigma in image px (its crop-normalised
            sigma times the crop box ``input_scale``; times the calibration factor of the
            keypoint when a calibration applies), or ``None`` for heads without sigma.
        interval_level: the level of ``interval_axes``, or ``None`` without them.
        interval_axes: ``(K, 2)`` float32 semi-axes in image px, ``k * keypoint_sigma`` with
            ``k`` the head's interval scale at ``interval_level``: ``keypoints[j, d] +-
            interval_axes[j, d]`` is the marginal ``interval_level`` interval of coordinate
            ``d`` of keypoint ``j`` under the head's learned density. The axis-aligned ellipse
            with these semi-axes touches the four interval ends; it is a picture of the two
            marginal intervals, not a joint ``interval_level`` region (the probability inside
            it is lower). A per-level calibration (``method="levels"``) scales them by its
            factor at ``interval_level`` instead of the sigma's. ``None`` for heads without a
            density (:meth:`heads.BaseHead.interval_scale` is ``None``) or when no level was
            asked for.
        keypoint_depth: ``(K,)`` float32 root-relative depth in mm (3-D heads), else ``None``.
    """

    bbox: np.ndarray
    bbox_score: float
    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    keypoint_sigma: Optional[np.ndarray] = None
    interval_level: Optional[float] = None
    interval_axes: Optional[np.ndarray] = None
    keypoint_depth: Optional[np.ndarray] = None

    def to_dict(self) -> Dict[str, Any]:
        """The fields as json-ready builtins (arrays as nested lists, absent ones ``None``)."""
        return {
            key: value.tolist() if isinstance(value, np.ndarray) else value
            for key, value in self.__dict__.items()
        }


# -- the model -------------------------------------------------------------------------------
def default_dataset_meta(num_keypoints: int, num_dims: int = 2) -> dict:
    """The dataset meta of a model whose checkpoint carries none: COCO's person meta for 17
    keypoints in 2-D, Human3.6M's for 17 (18 with the thorax) in 3-D, else ``k0 .. k{K-1}``
    without a skeleton and with identity ``flip_indices`` (a flip test then mirrors without
    swapping any pair)."""
    from rle.datasets.coco import COCO_PERSON_CATEGORY, _meta_from_category

    if num_dims == 3 and num_keypoints in (17, 18):
        from rle.datasets.coco import flip_indices_from_names
        from rle.datasets.h36m import H36M_JOINT_NAMES, H36M_SKELETON

        names = list(H36M_JOINT_NAMES) + ["thorax_mid_shoulders"] * (num_keypoints == 18)
        flip = flip_indices_from_names(names)
        return dict(dataset_name="h36m", keypoint_names=names, num_keypoints=num_keypoints,
                    skeleton_links=list(H36M_SKELETON), flip_indices=flip,
                    flip_pairs=[(i, j) for i, j in enumerate(flip) if i < j])  # fmt: skip
    if num_keypoints == 17:
        return _meta_from_category(COCO_PERSON_CATEGORY, "COCO")
    return dict(
        dataset_name="unknown",
        keypoint_names=[f"k{i}" for i in range(num_keypoints)],
        num_keypoints=num_keypoints,
        skeleton_links=[],
        flip_indices=list(range(num_keypoints)),
        flip_pairs=[],
    )


def _dataset_meta(checkpoint: Optional[Mapping], num_keypoints: int, num_dims: int, src) -> dict:
    meta = checkpoint.get("meta") if isinstance(checkpoint, Mapping) else None
    saved = meta.get("dataset_meta") if isinstance(meta, Mapping) else None
    if not isinstance(saved, Mapping):
        return default_dataset_meta(num_keypoints, num_dims)
    out = dict(saved)
    names = out.get("keypoint_names")
    if names is not None and len(names) != num_keypoints:
        raise ValueError(
            f"{src}: meta['dataset_meta'] names {len(names)} keypoints, the model has "
            f"{num_keypoints}"
        )
    if out.get("flip_indices") is None:
        from rle.datasets.coco import flip_indices_from_names

        out["flip_indices"] = (
            flip_indices_from_names(names) if names else list(range(num_keypoints))
        )
    if len(out["flip_indices"]) != num_keypoints:
        raise ValueError(
            f"{src}: meta['dataset_meta']['flip_indices'] has {len(out['flip_indices'])} "
            f"entries, the model has {num_keypoints} keypoints"
        )
    out.setdefault("keypoint_names", [f"k{i}" for i in range(num_keypoints)])
    out.setdefault("num_keypoints", num_keypoints)
    out.setdefault("skeleton_links", [])
    return out


def _config_pipeline(cfg) -> List[dict]:
    """The test (else val) dataset pipeline of a config, without the file / GT steps."""
    for key in ("test_dataloader", "val_dataloader"):
        dataset = (cfg.get(key) or {}).get("dataset")
        while isinstance(dataset, Mapping) and "pipeline" not in dataset and "dataset" in dataset:
            dataset = dataset["dataset"]  # dataset wrappers
        steps = dataset.get("pipeline") if isinstance(dataset, Mapping) else None
        if steps:
            out = [copy.deepcopy(dict(s)) for s in steps if s.get("type") not in _FILE_OR_GT_STEPS]
            types = [s.get("type") for s in out]
            if "TopdownAffine" not in types or "PackPoseInputs" not in types:
                raise ValueError(
                    f"the config's {key}.dataset.pipeline has no TopdownAffine and "
                    f"PackPoseInputs (steps: {types})"
                )
            return out
    raise ValueError("the config has no test_dataloader.dataset.pipeline (or val_dataloader's)")


def _default_pipeline(input_size: Sequence[int]) -> List[dict]:
    return [
        dict(type="GetBBoxCenterScale", padding=1.25),
        dict(type="TopdownAffine", input_size=tuple(int(v) for v in input_size)),
        dict(type="PackPoseInputs"),
    ]


def _load_config(config, cfg_options):
    from mmengine.config import Config

    from rle.engine import apply_convention, load_config

    if isinstance(config, (str, os.PathLike)):
        return load_config(config, cfg_options=cfg_options)
    if not isinstance(config, Config):
        raise TypeError(
            f"config must be a config file path or an mmengine Config, got {type(config).__name__}"
        )
    cfg = copy.deepcopy(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    apply_convention(cfg)  # idempotent for a config from load_config
    return cfg


def _checkpoint_config(checkpoint: Mapping, path: str, cfg_options):
    """The config (model, test pipeline, convention) of a self-describing checkpoint."""
    from mmengine.config import Config

    from rle.checkpoint import read_model_metadata
    from rle.engine import apply_convention

    info = read_model_metadata(checkpoint, source=path)
    if not info.get("input_size"):
        raise ValueError(f"{path}: meta['rle_pose'] has no input_size: pass the config")
    pipeline = _default_pipeline(info["input_size"])
    cfg = Config(
        dict(
            convention=info.get("convention", "rle"),
            model=copy.deepcopy(dict(info["model"])),
            test_dataloader=dict(dataset=dict(pipeline=pipeline)),
        )
    )
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    apply_convention(cfg)  # the convention to the model (and a heatmap head's grid)
    return cfg


def _load_weights(model: torch.nn.Module, checkpoint: Mapping, path: str) -> None:
    from rle.conventions import warn_convention
    from rle.serialization import check_state_dict

    revise = [(r"^module\.", "")]
    own = model.state_dict()
    check_state_dict(own, checkpoint, path, revise)  # names every missing / unexpected key
    warn_convention(checkpoint, model, path)
    state = checkpoint.get("state_dict", checkpoint)
    state = {re.sub(revise[0][0], revise[0][1], k): v for k, v in state.items()}
    # check_state_dict tolerates a missing BatchNorm counter as mmengine does; strict
    # load_state_dict does not: keep the model's own
    for key, value in own.items():
        if "num_batches_tracked" in key and key not in state:
            state[key] = value
    model.load_state_dict(state, strict=True)


def init_model(
    config=None,
    checkpoint=None,
    device: Union[str, torch.device] = "cpu",
    *,
    unsafe_load: bool = False,
    cfg_options: Optional[dict] = None,
    calibration="auto",
) -> torch.nn.Module:
    """Build a top-down estimator for inference, in eval mode on ``device``.

    Args:
        config: a config file (read with :func:`rle.engine.load_config`, which carries its
            ``convention`` to the model) or an mmengine ``Config``; ``None``: the model, input
            size and convention of the self-describing ``checkpoint`` (``meta["rle_pose"]``).
        checkpoint: a checkpoint file, loaded without running code from it
            (:func:`rle.serialization.load_checkpoint_file`) and strictly: every key must fit
            (:class:`rle.serialization.CheckpointMismatchError` lists what does not).
            ``None`` (with a config): the config's initial weights.
        device: where the model runs (``"cpu"``, ``"cuda:0"`` ...).
        unsafe_load: load the checkpoint with plain ``torch.load`` (trusted files only).
        cfg_options: ``{"dotted.key": value}`` overrides, as ``--cfg-options``.
        calibration: ``"auto"``: the checkpoint's (:func:`rle.calibration_store.find_calibration`:
            ``CKPT.calibration.json`` beside it, else its ``meta["rle_pose"]["calibration"]``),
            none without one; ``None``: none; a JSON file or a
            :class:`rle.calibration.Calibration`: that one.

    Returns:
        the estimator with ``dataset_meta`` (the checkpoint's ``meta["dataset_meta"]`` (the
        training set's metainfo), else :func:`default_dataset_meta`), ``test_pipeline`` (the
        config's test pipeline without ``LoadImage`` / ``EncodeKeypoints``, or, from the
        checkpoint alone, ``GetBBoxCenterScale(padding=1.25)``, ``TopdownAffine(input_size)``,
        ``PackPoseInputs``), ``cfg`` (the config it was built from) and ``calibration`` (the
        :class:`rle.calibration.Calibration` that :func:`inference_topdown` applies, or None).

    Raises:
        ValueError: neither a config nor a checkpoint, a checkpoint without metadata and no
            config, a config without a usable test pipeline, a bad ``device``, a malformed
            calibration or one of another number of keypoints.
        TypeError: ``config`` of another type, a checkpoint that is not a dict.
        FileNotFoundError: a missing config or checkpoint file.
    """
    from rle.registry import MODELS
    from rle.serialization import load_checkpoint_file

    if config is None and checkpoint is None:
        raise ValueError("init_model: pass a config, a checkpoint, or both")
    if not isinstance(unsafe_load, bool):
        raise TypeError(f"init_model: unsafe_load must be a bool, got {unsafe_load!r}")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"init_model: device {device!r} is not a torch device ({err})") from None
    ckpt, path = None, None
    if checkpoint is not None:
        path = os.fspath(checkpoint) if isinstance(checkpoint, os.PathLike) else checkpoint
        ckpt = load_checkpoint_file(path, map_location="cpu", unsafe=unsafe_load)
        if not isinstance(ckpt, Mapping):
            raise TypeError(f"{path}: expected a checkpoint dict, got {type(ckpt).__name__}")
    if config is not None:
        cfg = _load_config(config, cfg_options)
    else:
        cfg = _checkpoint_config(ckpt, str(path), cfg_options)
    if not isinstance(cfg.get("model"), Mapping):
        raise ValueError("init_model: the config has no model dict")
    model_cfg = copy.deepcopy(cfg.model.to_dict() if hasattr(cfg.model, "to_dict") else cfg.model)
    backbone = model_cfg.get("backbone")
    if ckpt is not None and isinstance(backbone, dict) and backbone.get("pretrained"):
        backbone["pretrained"] = None  # the checkpoint has the weights: no second file to read
    pipeline = _config_pipeline(cfg)
    model = MODELS.build(model_cfg)
    if ckpt is not None:
        _load_weights(model, ckpt, str(path))
    else:
        model.init_weights()
    head = model.head
    model.dataset_meta = _dataset_meta(ckpt, head.num_keypoints, head.num_dims, path)
    model.test_pipeline = pipeline
    model.cfg = cfg
    from rle.calibration_store import resolve_calibration

    model.calibration = resolve_calibration(calibration, path, ckpt, head.num_keypoints)
    return model.to(device).eval()


def model_interval_scale(model, level: float) -> Optional[float]:
    """``k`` with ``mu +- k * sigma`` the ``level`` interval of each coordinate under the head's
    density: ``model.interval_scale([level])`` if the model has that method, else
    ``model.head.interval_scale([level])``; ``None`` where the head defines none. Computed once
    per model object and level (it integrates the flow's density: seconds on a CPU), so a
    model whose weights are replaced afterwards must be built again (:func:`init_model`)."""
    try:
        cache = _INTERVAL_CACHE.setdefault(model, {})
    except TypeError:  # an object that cannot be weakly referenced: no cache
        cache = {}
    if level not in cache:
        method = getattr(model, "interval_scale", None)
        if not callable(method):
            method = model.head.interval_scale
        scales = method([level])
        if scales is None:
            cache[level] = None
        else:
            values = list(scales.values()) if len(scales) == 1 else [scales[level]]
            cache[level] = float(values[0])
    return cache[level]


# -- the inputs ------------------------------------------------------------------------------
def read_image(image) -> np.ndarray:
    """An image path or array as a contiguous ``(H, W, 3)`` BGR uint8 array.

    Raises:
        FileNotFoundError: a path that is not a file.
        ValueError: a truncated or undecodable file (:class:`rle.datasets.transforms.LoadImage`),
            an array of another shape or an empty one.
        TypeError: neither a path nor a numpy array, or an array of another dtype.
    """
    from rle.datasets.transforms import LoadImage

    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"image file not found: {path}")
        return LoadImage()(dict(img_path=path))["img"]
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"image must be a path or an (H, W, 3) BGR uint8 numpy array, got "
            f"{type(image).__name__}"
        )
    if image.dtype != np.uint8:
        raise TypeError(f"image must be an (H, W, 3) BGR uint8 array, got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must be an (H, W, 3) BGR uint8 array, got shape {image.shape}")
    return np.ascontiguousarray(image)


def _check_boxes(bboxes, bbox_format: str, bbox_scores, shape) -> tuple:
    """``(N, 4)`` float32 xyxy boxes and ``(N,)`` scores, checked."""
    if bbox_format not in BBOX_FORMATS:
        raise ValueError(f"bbox_format must be one of {BBOX_FORMATS}, got {bbox_format!r}")
    if bboxes is None:
        h, w = shape
        given = boxes = np.array([[0.0, 0.0, w, h]], dtype=np.float64)  # the whole image
        bbox_format = "xyxy"
    else:
        try:
            given = boxes = np.asarray(bboxes, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"bboxes must be an (N, 4) array of numbers ({err})") from None
        if boxes.size == 0 and boxes.ndim <= 2:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"bboxes must be an (N, 4) array ({bbox_format}), got {boxes.shape}")
    n = len(boxes)
    if not np.isfinite(boxes).all():
        i = int(np.flatnonzero(~np.isfinite(boxes).all(1))[0])
        raise ValueError(f"bboxes: box {i} is not finite: {boxes[i].tolist()}")
    if bbox_format == "xywh":
        # x + w in float64, then float32: how the COCO dataset reads annotation boxes
        boxes = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
    bad = ~(boxes[:, 2:] > boxes[:, :2]).all(1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"bboxes: box {i} ({bbox_format}) has a non-positive width or height: "
            f"{given.reshape(-1, 4)[i].tolist()}"
        )
    try:
        scores = np.ones(n) if bbox_scores is None else np.asarray(bbox_scores, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"bbox_scores must be {n} numbers ({err})") from None
    if scores.shape != (n,) or not np.isfinite(scores).all():
        raise ValueError(f"bbox_scores must be {n} finite numbers, got shape {scores.shape}")
    return boxes.astype(np.float32), scores.astype(np.float32)


def _check_model(model) -> None:
    for name in ("dataset_meta", "test_pipeline", "convention", "data_preprocessor", "predict"):
        if getattr(model, name, None) is None:
            raise TypeError(
                f"model lacks {name!r}: build it with rle.apis.init_model (or give it the "
                "pose-model protocol of rle.apis.inference)"
            )


def _results(samples, level: Optional[float], k: Optional[float], calibration) -> List[PoseResult]:
    out = []
    for s in samples:
        sigma = s.get("pred_sigma")
        sigma_px = axes = None
        if sigma is not None:
            crop = np.asarray(s.get("input_scale"), dtype=np.float64)  # crop box (w, h) in px
            raw = np.asarray(sigma, dtype=np.float64)
            # c_j * sigma: the calibrated density's scale; a per-level calibration also has a
            # factor of its own at the asked level
            sigma = raw if calibration is None else calibration.apply(raw)
            sigma_px = (sigma[:, :2] * crop).astype(np.float32)
            if k is not None:
                level_px = sigma_px
                if calibration is not None:
                    level_px = (calibration.apply(raw, level)[:, :2] * crop).astype(np.float32)
                axes = (k * level_px.astype(np.float64)).astype(np.float32)
        depth = s.get("pred_depth")
        out.append(
            PoseResult(
                bbox=np.asarray(s.get("bbox"), dtype=np.float32),
                bbox_score=float(s.get("bbox_score")),
                keypoints=np.asarray(s.get("pred_keypoints"), dtype=np.float32),
                keypoint_scores=np.asarray(s.get("pred_scores"), dtype=np.float32),
                keypoint_sigma=sigma_px,
                interval_level=level if axes is not None else None,
                interval_axes=axes,
                keypoint_depth=None if depth is None else np.asarray(depth, dtype=np.float32),
            )
        )
    return out


def inference_topdown(
    model,
    image,
    bboxes=None,
    bbox_format: str = "xyxy",
    *,
    bbox_scores=None,
    batch_size: int = 32,
    interval_level: Optional[float] = 0.9,
    calibration="model",
) -> List[PoseResult]:
    """Predict the keypoints of every person box of one image.

    Args:
        model: a pose model (module docstring): the estimator of :func:`init_model`.
        image: an image file (decoded with OpenCV, truncated files refused) or an
            ``(H, W, 3)`` BGR uint8 array.
        bboxes: ``(N, 4)`` boxes in ``bbox_format`` (image px, pixel edges: a box over the
            whole image is ``[0, 0, W, H]``); ``None``: that one box; an empty ``(0, 4)``
            array: no instances (returns ``[]``).
        bbox_format: ``"xyxy"`` (x1, y1, x2, y2) or ``"xywh"`` (x, y, w, h, COCO's).
        bbox_scores: ``(N,)`` the boxes' scores (detector confidences), default 1.
        batch_size: crops per forward pass.
        interval_level: the level of :attr:`PoseResult.interval_axes` in ``(0, 1)``; ``None``:
            no intervals.
        calibration: ``"model"``: ``model.calibration`` where the model has one
            (:func:`init_model`); ``None``: the head's own sigma, uncalibrated; a
            :class:`rle.calibration.Calibration`: that one. A calibration multiplies sigma,
            and so the interval axes, of keypoint ``j`` by its factor ``c_j`` (a per-level
            one the axes by its factor at ``interval_level``).

    Returns:
        one :class:`PoseResult` per box, in the boxes' order. The model's ``test_cfg`` applies
        (``flip_test`` averages the prediction of the mirrored crop).

    Raises:
        FileNotFoundError: a missing image file.
        ValueError: an unreadable image, an array of another shape, boxes that are not
            ``(N, 4)``, not finite or of non-positive size, an unknown ``bbox_format``, bad
            ``bbox_scores``, ``batch_size`` or ``interval_level``, a calibration of another
            number of keypoints.
        TypeError: an image of another type or dtype, boxes that are not numbers, a model
            without the pose-model protocol.
    """
    from mmengine.dataset import Compose, pseudo_collate

    from rle.registry import TRANSFORMS

    _check_model(model)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if interval_level is not None:
        if not isinstance(interval_level, (int, float)) or not 0 < interval_level < 1:
            raise ValueError(f"interval_level must be in (0, 1) or None, got {interval_level!r}")
        interval_level = float(interval_level)
    path = os.fspath(image) if isinstance(image, (str, os.PathLike)) else None
    img = read_image(image)
    boxes, scores = _check_boxes(bboxes, bbox_format, bbox_scores, img.shape[:2])
    if len(boxes) == 0:
        return []
    meta = model.dataset_meta
    num_keypoints = len(meta["flip_indices"])
    if isinstance(calibration, str) and calibration == "model":
        calibration = getattr(model, "calibration", None)
    if calibration is not None:
        from rle.calibration_store import check_calibration_keypoints

        calibration = check_calibration_keypoints(
            calibration, num_keypoints, "inference_topdown: calibration"
        )
    pipeline = Compose(
        [
            TRANSFORMS.build(copy.deepcopy(t)) if isinstance(t, dict) else t
            for t in model.test_pipeline
        ]
    )
    k = None if interval_level is None else model_interval_scale(model, interval_level)
    results: List[PoseResult] = []
    for start in range(0, len(boxes), batch_size):
        packed = []
        for i in range(start, min(start + batch_size, len(boxes))):
            # the fields of a dataset sample (rle.datasets.coco); TopdownAffine warps the
            # keypoints too, so they get zeros as detection samples do
            sample = dict(
                img=img, img_path=path, img_id=path, img_shape=img.shape[:2],
                ori_shape=img.shape[:2], id=i, bbox=boxes[i], bbox_score=scores[i],
                keypoints=np.zeros((num_keypoints, 2), np.float32),
                keypoints_visible=np.zeros(num_keypoints, np.float32),
                flip_indices=list(meta["flip_indices"]), convention=model.convention,
            )  # fmt: skip
            packed.append(pipeline(sample))
        with torch.no_grad():
            data = model.data_preprocessor(pseudo_collate(packed), False)
            samples = model.predict(data["inputs"], data["data_samples"])
        results.extend(_results(samples, interval_level, k, calibration))
    return results
