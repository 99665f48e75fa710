"""Checkpoints of MMPose 1.x and of the official RLE code, converted to rle-pose and back.

Supported layouts (``source``):

* ``"mmpose"``: an mmengine checkpoint of MMPose's ``TopdownPoseEstimator`` with a ``ResNet``
  backbone and an ``RLEHead`` (after ``GlobalAveragePooling``), an ``IntegralRegressionHead``
  or a ``DSNTHead``.
* ``"official"``: the state dict of the official RLE ``RegressFlow`` (``preact`` ResNet,
  ``fc_coord`` on the L2-normalised feature, ``fc_sigma``, ``flow``).

The converted model runs in the source's pixel convention (:mod:`rle.datasets.geometry`):
``"mmpose"`` for MMPose checkpoints (with MMPose's heatmap grid and constant keypoint scores for
the integral heads), which reproduces MMPose's predictions; ``"rle"`` for official checkpoints:
the official data pipeline (box centre ``x + (w - 1)/2`` as ours, but the scale from ``w - 1``
and the centre mapped to crop ``(w/2, h/2)``) is not reproduced, so image-space predictions
differ from the official code's by sub-pixel amounts (the network's outputs on the same crops
are identical).

The architecture is read from the tensors (ResNet depth from the block counts and block type,
stage widths, K, deconvolution channels and kernel) and from MMPose's config text where the
tensors cannot tell (``DSNTHead`` against ``IntegralRegressionHead``, ``beta``, ``debias``).
Every source key is accounted for: mapped, or dropped for a stated reason (MMPose's constant
grid buffers); anything left over is an error. The result is self-describing:
``meta["rle_pose"]`` holds the rle-pose model config, the input size and the pixel convention
the weights were trained with, so the checkpoint needs nothing else to be built.

Coordinate frames (crop index ``u``, size ``n``): MMPose regresses ``u / n``, the official code
``u / n - 0.5``, rle-pose ``(u + 0.5) / n - 0.5`` (:mod:`rle.coords`). The regression heads'
coordinate biases are moved by the constant between the frames, which makes the converted head
give the same crop points; heatmap heads need no weight change (their grid is a decoding
convention).
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import torch

from rle.flow import from_reference_state_dict, to_reference_state_dict

__all__ = [
    "SOURCES",
    "Conversion",
    "convert_checkpoint",
    "detect_layout",
    "export_checkpoint",
    "from_mmpose",
    "from_official",
    "infer_resnet",
    "to_mmpose",
    "to_official",
]

SOURCES = ("mmpose", "official")
#: ResNet block counts per stage -> depth, for basic (False) and bottleneck (True) blocks
_RESNETS = {
    ((2, 2, 2, 2), False): 18,
    ((3, 4, 6, 3), False): 34,
    ((3, 4, 6, 3), True): 50,
    ((3, 4, 23, 3), True): 101,
    ((3, 8, 36, 3), True): 152,
}
_DEFAULT_WIDTHS = (64, 128, 256, 512)
_MMPOSE_FLOW = "head.loss_module.flow_model."
_OUR_FLOW = "head.loss_module.flow."
_MMPOSE_TRUNK = "head.simplebaseline_head.deconv_layers."
_MMPOSE_FINAL = "head.simplebaseline_head.final_layer."
#: the official test transform: RGB, x / 255 minus these per R, G, B, no std
_OFFICIAL_MEAN = (0.406, 0.457, 0.480)
_IMAGENET = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])


class Conversion(NamedTuple):
    """A converted checkpoint.

    Attributes:
        state_dict: the rle-pose (or, from :func:`to_mmpose` / :func:`to_official`, the
            reference) state dict.
        model: the rle-pose ``TopdownPoseEstimator`` config the state dict fits.
        input_size: ``(w, h)`` of the crops the model was trained on.
        convention: the pixel convention to run the model in (``"mmpose"`` or ``"rle"``).
        mapping: ``(source key, target key or "dropped: why")`` for every source key.
    """

    state_dict: Dict[str, torch.Tensor]
    model: dict
    input_size: Tuple[int, int]
    convention: str
    mapping: List[Tuple[str, str]]


class _Keys:
    """Source keys taken once each; :meth:`check_all_taken` fails on leftovers."""

    def __init__(self, state: Mapping[str, torch.Tensor], source: str) -> None:
        self.state, self.source, self.taken = state, source, {}

    def take(self, key: str, target: str) -> torch.Tensor:
        if key not in self.state:
            raise ValueError(f"{self.source} checkpoint has no key {key!r}")
        self.taken[key] = target
        return self.state[key]

    def prefixed(self, prefix: str) -> Dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in self.state.items() if k.startswith(prefix)}

    def check_all_taken(self) -> List[Tuple[str, str]]:
        left = [k for k in self.state if k not in self.taken]
        if left:
            raise ValueError(
                f"{len(left)} {self.source} keys were not converted (an unsupported layout?): "
                f"{left[:8]}{' ...' if len(left) > 8 else ''}"
            )
        return list(self.taken.items())


def detect_layout(state: Mapping[str, torch.Tensor]) -> Optional[str]:
    """``"mmpose"`` or ``"official"`` when ``state`` has that layout's keys, else ``None`` (a
    loader can then suggest the converter instead of listing mismatched keys)."""
    if any(k.startswith(_MMPOSE_FLOW) for k in state) or f"{_MMPOSE_FINAL}weight" in state:
        return "mmpose"
    if "fc_coord.linear.weight" in state and any(k.startswith("preact.") for k in state):
        return "official"
    return None


def infer_resnet(state: Mapping[str, torch.Tensor], prefix: str = "") -> dict:
    """The timm ResNet that has the tensors of ``state`` under ``prefix``.

    Args:
        state: a state dict holding ``{prefix}conv1.weight``, ``{prefix}layer{1-4}.{i}....``.
        prefix: the backbone's key prefix.

    Returns:
        ``TimmBackbone`` arguments: ``model_name`` and, for non-standard stage widths,
        ``channels``.
    """
    blocks, bottleneck = [], f"{prefix}layer1.0.conv3.weight" in state
    for stage in range(1, 5):
        ids = {
            int(m[1])
            for k in state
            if (m := re.match(rf"{re.escape(prefix)}layer{stage}\.(\d+)\.", k))
        }
        blocks.append(len(ids))
    depth = _RESNETS.get((tuple(blocks), bottleneck))
    if depth is None or f"{prefix}conv1.weight" not in state:
        raise ValueError(
            f"the backbone under {prefix!r} is not a ResNet timm can build (blocks per stage "
            f"{tuple(blocks)}, bottleneck={bottleneck})"
        )
    if state[f"{prefix}conv1.weight"].shape[0] != 64:
        raise ValueError("only ResNets with a 64-channel stem convert to timm")
    widths = tuple(int(state[f"{prefix}layer{s}.0.conv1.weight"].shape[0]) for s in range(1, 5))
    out = dict(type="TimmBackbone", model_name=f"resnet{depth}", pretrained=None)
    if widths != _DEFAULT_WIDTHS:
        out["channels"] = widths
    return out


def _frame_shift(input_size: Sequence[int], dims: int, offset: float) -> torch.Tensor:
    """``(K*D,)``-broadcastable shift ``0.5 / n + offset`` per coordinate, x and y alternating."""
    n = torch.tensor([float(v) for v in input_size[:dims]], dtype=torch.float64)
    return 0.5 / n + offset


def _estimator(
    backbone: dict, head: dict, preprocessor: dict, convention: str, test_cfg: dict
) -> dict:
    return dict(
        type="TopdownPoseEstimator",
        data_preprocessor=dict(type="ImgDataPreprocessor", bgr_to_rgb=True, **preprocessor),
        backbone=backbone,
        head=head,
        test_cfg=test_cfg,
        convention=convention,
    )


def _mmpose_test_cfg(cfg_text: str) -> dict:
    """MMPose's ``model.test_cfg`` flip settings from its config text (default: flip test with
    ``shift_coords=True``, MMPose's own default)."""
    out = dict(flip_test=True, shift_coords=True)
    for key in out:
        found = re.search(rf"{key}\s*=\s*(True|False)", cfg_text)
        if found:
            out[key] = found[1] == "True"
    return out


def _config_text(checkpoint: Mapping) -> str:
    meta = checkpoint.get("meta") if isinstance(checkpoint, Mapping) else None
    cfg = meta.get("cfg") if isinstance(meta, Mapping) else None
    return cfg if isinstance(cfg, str) else ""


def _input_size_from(cfg_text: str) -> Optional[Tuple[int, int]]:
    found = re.search(r"input_size\s*=\s*\(\s*(\d+)\s*,\s*(\d+)\s*,?\s*\)", cfg_text)
    return (int(found[1]), int(found[2])) if found else None


def _state_dict_of(checkpoint: Mapping) -> Mapping[str, torch.Tensor]:
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(
            "expected a checkpoint dict with a 'state_dict' of tensors, or a state dict"
        )
    return state


def from_mmpose(checkpoint: Mapping, input_size: Optional[Sequence[int]] = None) -> Conversion:
    """An MMPose checkpoint (RLE, integral regression or DSNT head) in rle-pose's layout.

    Args:
        checkpoint: the loaded checkpoint (``meta`` with MMPose's config text, ``state_dict``),
            or a bare state dict.
        input_size: ``(w, h)``; read from the config text (``codec.input_size``) when omitted.

    Returns:
        the :class:`Conversion`.
    """
    state = _state_dict_of(checkpoint)
    cfg_text = _config_text(checkpoint)
    size = tuple(input_size) if input_size is not None else _input_size_from(cfg_text)
    if size is None or len(size) != 2:
        raise ValueError("input_size (w, h) is not in the checkpoint's config: pass it")
    keys = _Keys(state, "MMPose")
    out: Dict[str, torch.Tensor] = {}
    for key in keys.prefixed("backbone."):
        out[f"backbone.model.{key}"] = keys.take(f"backbone.{key}", f"backbone.model.{key}")
    backbone = infer_resnet(state, "backbone.")
    if "head.fc.weight" in state:  # RLEHead: one fc, (x, y, sigma_x, sigma_y) per joint
        weight, bias = (
            keys.take("head.fc.weight", "head.fc_coord/fc_sigma.weight"),
            keys.take("head.fc.bias", "head.fc_coord/fc_sigma.bias"),
        )
        k = weight.shape[0] // 4
        w4, b4 = weight.view(k, 4, -1), bias.view(k, 4)
        shift = _frame_shift(size, 2, -0.5).to(bias.dtype)
        out["head.fc_coord.weight"] = w4[:, :2].reshape(2 * k, -1).clone()
        out["head.fc_coord.bias"] = (b4[:, :2] + shift).reshape(-1)
        out["head.fc_sigma.weight"] = w4[:, 2:].reshape(2 * k, -1).clone()
        out["head.fc_sigma.bias"] = b4[:, 2:].reshape(-1).clone()
        flow = from_reference_state_dict(state, prefix=_MMPOSE_FLOW)
        for key in keys.prefixed(_MMPOSE_FLOW):
            keys.take(_MMPOSE_FLOW + key, _OUR_FLOW + "*")
        out.update({_OUR_FLOW + key: v for key, v in flow.items()})
        head = dict(
            type="RLEHead", num_keypoints=k, normalize_feats=False, loss_cfg=dict(variant="mmpose")
        )
    elif f"{_MMPOSE_FINAL}weight" in state:  # IntegralRegressionHead / DSNTHead
        trunk = keys.prefixed(_MMPOSE_TRUNK)
        for key in trunk:
            keys.take(_MMPOSE_TRUNK + key, f"head.trunk.{key}")
            out[f"head.trunk.{key}"] = trunk[key]
        for kind in ("weight", "bias"):
            out[f"head.final.{kind}"] = keys.take(f"{_MMPOSE_FINAL}{kind}", f"head.final.{kind}")
        for buf in ("head.linspace_x", "head.linspace_y"):
            if buf in state:
                keys.take(buf, "dropped: MMPose's constant grid (rebuilt from the map size)")
        deconvs = sorted(
            int(m[1])
            for key in trunk
            if (m := re.match(r"(\d+)\.weight$", key)) and trunk[key].dim() == 4
        )
        channels = tuple(int(trunk[f"{i}.weight"].shape[1]) for i in deconvs)
        kernel = int(trunk[f"{deconvs[0]}.weight"].shape[-1]) if deconvs else 4
        beta = re.search(r"beta\s*=\s*([0-9.eE+-]+)", cfg_text)
        kind = "DSNTHead" if "DSNTHead" in cfg_text else "SoftArgmaxHead"
        if re.search(r"debias\s*=\s*True", cfg_text):
            kind = "DebiasedIPRHead"
        head = dict(
            type=kind,
            num_keypoints=int(state[f"{_MMPOSE_FINAL}weight"].shape[0]),
            deconv_channels=channels,
            deconv_kernel=kernel,
            beta=float(beta[1]) if beta else 1.0,
            # MMPose's grid (bin j at crop px j * stride) and its keypoint scores (all 1)
            grid="mmpose",
            input_size=(int(size[0]), int(size[1])),
            keypoint_scores="one",
        )
    else:
        raise ValueError("not an MMPose RLEHead / IntegralRegressionHead / DSNTHead checkpoint")
    mapping = keys.check_all_taken()
    model = _estimator(backbone, head, dict(_IMAGENET), "mmpose", _mmpose_test_cfg(cfg_text))
    return Conversion(out, model, (int(size[0]), int(size[1])), "mmpose", mapping)


def from_official(
    checkpoint: Mapping, input_size: Sequence[int] = (192, 256), num_dims: int = 2
) -> Conversion:
    """An official RLE ``RegressFlow`` state dict in rle-pose's layout.

    Args:
        checkpoint: the state dict (``torch.save(model.state_dict())``), or a dict holding it
            under ``state_dict``.
        input_size: ``(w, h)`` of the crops (the official COCO setting is 192x256).
        num_dims: 2 (``RegressFlow``); the 3-D model is not supported yet.

    Returns:
        the :class:`Conversion`.
    """
    if num_dims != 2:
        raise ValueError("only the 2-D official model (RegressFlow) converts")
    state = _state_dict_of(checkpoint)
    keys = _Keys(state, "official RLE")
    out: Dict[str, torch.Tensor] = {}
    for key in keys.prefixed("preact."):
        out[f"backbone.model.{key}"] = keys.take(f"preact.{key}", f"backbone.model.{key}")
    backbone = infer_resnet(state, "preact.")
    shift = _frame_shift(input_size, 2, 0.0)
    for ours, theirs in (("fc_coord", "fc_coord.linear"), ("fc_sigma", "fc_sigma.linear")):
        weight = keys.take(f"{theirs}.weight", f"head.{ours}.weight")
        bias = keys.take(f"{theirs}.bias", f"head.{ours}.bias")
        if ours == "fc_coord":  # p = u / n - 0.5 -> (u + 0.5) / n - 0.5
            bias = (bias.view(-1, 2) + shift.to(bias.dtype)).reshape(-1)
        out[f"head.{ours}.weight"], out[f"head.{ours}.bias"] = weight.clone(), bias.clone()
    flow = from_reference_state_dict(state, prefix="flow.")
    for key in keys.prefixed("flow."):
        keys.take(f"flow.{key}", _OUR_FLOW + "*")
    out.update({_OUR_FLOW + key: v for key, v in flow.items()})
    head = dict(
        type="RLEHead",
        num_keypoints=out["head.fc_coord.weight"].shape[0] // 2,
        normalize_feats=True,
        loss_cfg=dict(variant="official"),
    )
    preprocessor = dict(mean=[255 * m for m in _OFFICIAL_MEAN], std=[255.0, 255.0, 255.0])
    size = (int(input_size[0]), int(input_size[1]))
    # the official flip test (shift=True) is the exact mirror, as ours; it averages sigma
    # without the left/right swap: test_cfg.flip_swap_sigma=False reproduces that
    model = _estimator(backbone, head, preprocessor, "rle", dict(flip_test=True))
    return Conversion(out, model, size, "rle", keys.check_all_taken())


def _flow_back(state: Mapping[str, torch.Tensor], prefix: str, variant: str) -> Dict:
    flow = {k[len(_OUR_FLOW) :]: v for k, v in state.items() if k.startswith(_OUR_FLOW)}
    return {prefix + k: v for k, v in to_reference_state_dict(flow, variant=variant).items()}


def to_mmpose(conversion: Conversion) -> Dict[str, torch.Tensor]:
    """The MMPose state dict of an rle-pose RLE (``normalize_feats=False``) or soft-argmax /
    DSNT model: the inverse of :func:`from_mmpose`."""
    state, head = conversion.state_dict, conversion.model["head"]
    out = {
        "backbone." + k[len("backbone.model.") :]: v
        for k, v in state.items()
        if k.startswith("backbone.model.")
    }
    if head["type"] == "RLEHead":
        if head.get("normalize_feats", True):
            raise ValueError("MMPose's RLEHead has no feature normalisation: cannot convert")
        k = head["num_keypoints"]
        shift = _frame_shift(conversion.input_size, 2, -0.5)
        coord_b = state["head.fc_coord.bias"].view(k, 2) - shift.to(
            state["head.fc_coord.bias"].dtype
        )
        weight = torch.cat(
            [
                state["head.fc_coord.weight"].view(k, 2, -1),
                state["head.fc_sigma.weight"].view(k, 2, -1),
            ],
            1,
        )
        bias = torch.cat([coord_b, state["head.fc_sigma.bias"].view(k, 2)], 1)
        out["head.fc.weight"], out["head.fc.bias"] = weight.reshape(4 * k, -1), bias.reshape(-1)
        out.update(_flow_back(state, _MMPOSE_FLOW, "mmpose"))
    elif head["type"] in ("SoftArgmaxHead", "DSNTHead", "DebiasedIPRHead"):
        for key, value in state.items():
            if key.startswith("head.trunk."):
                out[_MMPOSE_TRUNK + key[len("head.trunk.") :]] = value
            elif key.startswith("head.final."):
                out[_MMPOSE_FINAL + key[len("head.final.") :]] = value
        # MMPose's grid buffers: bin j at j / n on the map (stride-32 ResNet, x2 per deconv)
        up = 2 ** len(head.get("deconv_channels", (256, 256, 256)))  # HeatmapHead's default
        w, h = (v // 32 * up for v in conversion.input_size)
        out["head.linspace_x"] = (torch.arange(w, dtype=torch.float32) / w).view(1, 1, 1, w)
        out["head.linspace_y"] = (torch.arange(h, dtype=torch.float32) / h).view(1, 1, h, 1)
    else:
        raise ValueError(f"no MMPose layout for a {head['type']}")
    return out


def to_official(conversion: Conversion) -> Dict[str, torch.Tensor]:
    """The official RLE state dict of an rle-pose ``RLEHead`` with ``normalize_feats=True``: the
    inverse of :func:`from_official`."""
    state, head = conversion.state_dict, conversion.model["head"]
    if head["type"] != "RLEHead" or not head.get("normalize_feats", True):
        raise ValueError("only an RLEHead with normalize_feats=True has the official layout")
    out = {
        "preact." + k[len("backbone.model.") :]: v
        for k, v in state.items()
        if k.startswith("backbone.model.")
    }
    shift = _frame_shift(conversion.input_size, 2, 0.0)
    bias = state["head.fc_coord.bias"]
    out["fc_coord.linear.weight"] = state["head.fc_coord.weight"]
    out["fc_coord.linear.bias"] = (bias.view(-1, 2) - shift.to(bias.dtype)).reshape(-1)
    out["fc_sigma.linear.weight"] = state["head.fc_sigma.weight"]
    out["fc_sigma.linear.bias"] = state["head.fc_sigma.bias"]
    out.update(_flow_back(state, "flow.", "official"))
    return out


def _save(obj, dst) -> None:
    """``torch.save`` to a temporary file next to ``dst``, then rename: no half-written file."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, dst)


def convert_checkpoint(
    src, dst, *, source: str, input_size: Optional[Sequence[int]] = None, unsafe_load: bool = False
) -> Conversion:
    """Convert the checkpoint file ``src`` (``source`` layout) into a self-describing rle-pose
    checkpoint ``dst`` (``meta["rle_pose"]``: model config, input size, convention, source).

    Args:
        src: the MMPose checkpoint or official state dict.
        dst: where to write (written to a temporary file first, then renamed).
        source: ``"mmpose"`` or ``"official"``.
        input_size: ``(w, h)``; MMPose checkpoints carry it, official ones default to 192x256.
        unsafe_load: load ``src`` with plain ``torch.load`` (trusted files only).

    Returns:
        the :class:`Conversion` (its ``mapping`` says which key went where).
    """
    from rle.serialization import load_checkpoint_file

    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    checkpoint = load_checkpoint_file(src, map_location="cpu", unsafe=unsafe_load)
    if source == "mmpose":
        conv = from_mmpose(checkpoint, input_size)
    else:
        conv = from_official(checkpoint, input_size or (192, 256))
    meta = dict(
        rle_pose=dict(
            model=copy.deepcopy(conv.model),
            input_size=list(conv.input_size),
            convention=conv.convention,
            converted_from=dict(file=Path(src).name, layout=source),
        )
    )
    _save(dict(meta=meta, state_dict=conv.state_dict), dst)
    return conv


def export_checkpoint(
    src, dst, *, target: str, unsafe_load: bool = False
) -> Dict[str, torch.Tensor]:
    """Write a self-describing rle-pose checkpoint ``src`` (one :func:`convert_checkpoint`
    wrote, or any with ``meta["rle_pose"]``) in a reference layout.

    Args:
        src: the rle-pose checkpoint.
        dst: the output: an mmengine-style ``dict(meta, state_dict)`` for ``"mmpose"``, a bare
            state dict (as the official ``train.py`` saves) for ``"official"``.
        target: ``"mmpose"`` or ``"official"``.
        unsafe_load: load ``src`` with plain ``torch.load`` (trusted files only).

    Returns:
        the written state dict.
    """
    from rle.serialization import load_checkpoint_file

    if target not in SOURCES:
        raise ValueError(f"target must be one of {SOURCES}, got {target!r}")
    checkpoint = load_checkpoint_file(src, map_location="cpu", unsafe=unsafe_load)
    info = (
        (checkpoint.get("meta") or {}).get("rle_pose") if isinstance(checkpoint, Mapping) else None
    )
    if not isinstance(info, Mapping) or "model" not in info or "input_size" not in info:
        raise ValueError(
            f"{src}: no meta['rle_pose'] with the model config and input size (convert a "
            "checkpoint with convert_checkpoint first)"
        )
    conv = Conversion(
        dict(_state_dict_of(checkpoint)), dict(info["model"]), tuple(info["input_size"]),
        info.get("convention", "rle"), [],
    )  # fmt: skip
    state = to_mmpose(conv) if target == "mmpose" else to_official(conv)
    out = (
        dict(meta=dict(converted_by="rle-pose"), state_dict=state) if target == "mmpose" else state
    )
    _save(out, dst)
    return state
