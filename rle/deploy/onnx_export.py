"""ONNX export of a top-down estimator's crop model, decoding and the flip test in the graph
(the package docstring, :mod:`rle.deploy`, describes the graph, the exporters and the
metadata).

Shape letters: B batch, K keypoints, D coordinate dims (2 or 3), H/W crop size.
"""

from __future__ import annotations

import io
import json
import numbers
import os
import os.path as osp
import re
import warnings
from collections.abc import Mapping
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

__all__ = [
    "EXPORTERS",
    "FORMAT_VERSION",
    "INTERVAL_LEVELS",
    "CropPoseModule",
    "export_checkpoint",
    "export_onnx",
    "read_onnx_metadata",
]

#: the interval levels whose ``interval_scale`` is stored in an exported file
INTERVAL_LEVELS = (0.5, 0.68, 0.8, 0.9, 0.95, 0.99)
#: accepted values of ``exporter`` in :func:`export_onnx`
EXPORTERS = ("auto", "dynamo", "torchscript")
#: version of the metadata layout written by :func:`export_onnx`
FORMAT_VERSION = 1
_DEPLOY_HINT = "install the deploy extra: pip install 'rle-pose[deploy]'"
# the example batch the graph is recorded on: not 1 (torch.export specialises sizes 0 and 1)
_TRACE_BATCH = 2
# the batch the export is checked on: another size than the traced one, so a batch baked into
# the graph shows up as an error
_VERIFY_BATCH = 3
_VERIFY_ATOL = 1e-4  # normalised units (~0.02 px on a 192-px crop)


def _import(name: str):
    try:
        return __import__(name)
    except ImportError as err:
        raise ImportError(f"{name} is needed for ONNX export/inference: {_DEPLOY_HINT}") from err


# -- the exported module ---------------------------------------------------------------------
class CropPoseModule(nn.Module):
    """The estimator's tensor path as a module: normalised crops -> coords, scores[, sigma].

    Runs ``model._predict_tensors`` (head decoding and the estimator's flip test, the very code
    of :meth:`~rle.models.TopdownPoseEstimator.predict`) with ``flip_test`` set for this module
    only.

    Args:
        model: a :class:`rle.models.TopdownPoseEstimator`.
        flip_test: run the flip test (mirror, swap left/right, average) in the module.
        flip_indices: ``K`` ints, the mirror keypoint of each keypoint (needed for the flip
            test).

    Shape:
        ``(B, 3, H, W)`` normalised crops -> ``coords (B, K, D)``, ``scores (B, K)`` and, when
        the head has sigma, ``sigma (B, K, D)``.
    """

    def __init__(
        self, model: nn.Module, flip_test: bool = False, flip_indices: Optional[Sequence] = None
    ) -> None:
        super().__init__()
        self.model = model
        self.flip_test = bool(flip_test)
        self.flip_indices = None if flip_indices is None else [int(i) for i in flip_indices]
        self.has_sigma = bool(getattr(model.head, "has_sigma", False))

    def forward(self, inputs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        model = self.model
        saved = model.test_cfg
        # the estimator reads flip_test from its test_cfg: swap in this module's choice for the
        # call only, so the flip test is the estimator's code whatever its own setting
        model.test_cfg = {**saved, "flip_test": self.flip_test}
        try:
            coords, scores, sigma = model._predict_tensors(inputs, self.flip_indices)
        finally:
            model.test_cfg = saved
        if not self.has_sigma:
            return coords, scores
        return coords, scores, sigma


def _check_outputs(head: nn.Module, outputs, batch: int) -> List[str]:
    """Output names of the module's eager outputs; raise naming the head when they are not the
    exported layout."""
    name = type(head).__name__
    k, d = getattr(head, "num_keypoints", None), getattr(head, "num_dims", None)
    has_sigma = bool(getattr(head, "has_sigma", False))
    names = ["coords", "scores"] + (["sigma"] if has_sigma else [])
    shapes = {"coords": (batch, k, d), "scores": (batch, k), "sigma": (batch, k, d)}
    for key, value in zip(names, outputs):
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != shapes[key]:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            hint = " (the head has has_sigma=True)" if key == "sigma" else ""
            raise TypeError(
                f"{name}.predict gave {key} {got}, expected a tensor {shapes[key]}{hint}: only "
                "heads whose predict returns Prediction(coords (B, K, D), scores (B, K), "
                "sigma (B, K, D) or None) can be exported"
            )
    return names


# -- metadata ----------------------------------------------------------------------------------
def _jsonable(value):
    """Plain JSON types (mmengine configs, numpy arrays and scalars, tuples)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return value.tolist()
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if value is None or isinstance(value, str):
        return value
    return repr(value)  # nothing a runner needs; kept readable


def _preprocessor_meta(model: nn.Module) -> dict:
    pre = getattr(model, "data_preprocessor", None)
    normalise = bool(getattr(pre, "_enable_normalize", False))
    return dict(
        type=type(pre).__name__,
        mean=pre.mean.flatten().tolist() if normalise else None,
        std=pre.std.flatten().tolist() if normalise else None,
        # mmengine's bgr_to_rgb and rgb_to_bgr are one channel reversal
        bgr_to_rgb=bool(getattr(pre, "_channel_conversion", False)),
        pad_size_divisor=int(getattr(pre, "pad_size_divisor", 1)),
        pad_value=float(getattr(pre, "pad_value", 0)),
    )


def _interval_meta(head: nn.Module) -> Optional[Dict[str, float]]:
    scale = head.interval_scale(INTERVAL_LEVELS)
    return None if scale is None else {repr(float(k)): float(v) for k, v in scale.items()}


def _model_cfg(model: nn.Module, model_cfg):
    if model_cfg is None:
        # the config rle.apis.init_model attaches (an mmengine Config: not a Mapping)
        cfg = getattr(model, "cfg", None)
        model_cfg = cfg.get("model") if callable(getattr(cfg, "get", None)) else None
    if model_cfg is not None and not isinstance(model_cfg, Mapping):
        raise TypeError(f"model_cfg must be a config dict or None, got {type(model_cfg).__name__}")
    return None if model_cfg is None else _jsonable(model_cfg)


def read_onnx_metadata(source) -> dict:
    """The metadata :func:`export_onnx` stored, parsed: ``{key: value}``.

    Args:
        source: a path to an ``.onnx`` file, an ``onnx.ModelProto`` or an onnxruntime
            ``InferenceSession``.

    Raises:
        ValueError: naming the source when it has no rle-pose metadata.
    """
    if hasattr(source, "get_modelmeta"):
        raw = dict(source.get_modelmeta().custom_metadata_map)
        label = "the session's model"
    elif hasattr(source, "metadata_props"):
        raw = {p.key: p.value for p in source.metadata_props}
        label = "the ONNX model"
    else:
        if not isinstance(source, (str, os.PathLike)) or not osp.isfile(source):
            raise ValueError(f"source must be an existing .onnx file, got {source!r}")
        onnx = _import("onnx")
        raw = {
            p.key: p.value for p in onnx.load(str(source), load_external_data=False).metadata_props
        }
        label = str(source)
    if "format_version" not in raw:
        raise ValueError(f"{label} has no rle-pose metadata: export it with rle.deploy.export_onnx")
    out = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value  # another tool's plain-string entry
    return out


# -- export ------------------------------------------------------------------------------------
def _check_size(input_size, name: str = "input_size") -> Tuple[int, int]:
    if (
        isinstance(input_size, (str, bytes))
        or not isinstance(input_size, Sequence)
        or len(input_size) != 2
        or any(
            not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 1 for v in input_size
        )
    ):
        raise ValueError(f"{name} must be (w, h), two positive ints, got {input_size!r}")
    return int(input_size[0]), int(input_size[1])


def _default_input_size(model: nn.Module) -> Tuple[int, int]:
    for step in getattr(model, "test_pipeline", None) or ():
        if isinstance(step, Mapping) and step.get("type") == "TopdownAffine":
            return _check_size(
                tuple(step.get("input_size", (192, 256))), "test_pipeline input_size"
            )
    size = getattr(model.head, "input_size", None)
    if size is not None:
        return _check_size(size, "head.input_size")
    raise ValueError(
        "input_size (w, h) is needed: the model has no test_pipeline with a TopdownAffine and "
        "its head no input_size"
    )


def _flip_indices(model: nn.Module, flip_indices, k: int) -> List[int]:
    if flip_indices is None:
        meta = getattr(model, "dataset_meta", None)
        flip_indices = meta.get("flip_indices") if isinstance(meta, Mapping) else None
    if flip_indices is None:
        raise ValueError(
            "flip_test needs flip_indices: pass flip_indices= or give the model a dataset_meta "
            "with 'flip_indices'"
        )
    idx = list(flip_indices) if not isinstance(flip_indices, (str, bytes)) else None
    if (
        idx is None
        or sorted(int(i) for i in idx if isinstance(i, numbers.Integral)) != list(range(k))
        or len(idx) != k
    ):
        raise ValueError(
            f"flip_indices must be a permutation of range(K={k}), got {flip_indices!r}"
        )
    return [int(i) for i in idx]


def _export_dynamo(module, example, names, opset, dynamic_batch):
    shapes = ({0: torch.export.Dim("batch", min=1)},) if dynamic_batch else None
    program = torch.onnx.export(
        module,
        (example,),
        dynamo=True,
        input_names=["inputs"],
        output_names=names,
        opset_version=opset,
        dynamic_shapes=shapes,
        verbose=False,
        report=False,
    )
    return program.model_proto


def _export_torchscript(module, example, names, opset, dynamic_batch):
    axes = {n: {0: "batch"} for n in ["inputs", *names]} if dynamic_batch else None
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated (still the fallback where dynamo fails)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        # the shape checks the tracer warns about are static for a fixed crop size
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            module,
            (example,),
            buffer,
            dynamo=False,
            input_names=["inputs"],
            output_names=names,
            opset_version=opset,
            dynamic_axes=axes,
        )
    return _import("onnx").load_model_from_string(buffer.getvalue())


def _summary(err: Exception) -> str:
    """One line of an exporter's error: torch.export's own summary line where it has one."""
    lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(err)).splitlines()]
    lines = [ln for ln in lines if ln]
    if "## Exception summary" in lines:
        lines = lines[lines.index("## Exception summary") + 1 :]
    return f"{type(err).__name__}: {lines[0][:300] if lines else ''}"


def _verify(proto, module, example, names, dynamic_batch: bool) -> Optional[str]:
    """The disagreement of the graph with the eager module on a fresh batch, or ``None``."""
    try:
        ort = __import__("onnxruntime")
    except ImportError:
        return None  # nothing to run it on: the ONNX checker has passed
    batch = _VERIFY_BATCH if dynamic_batch else example.shape[0]
    x = torch.randn(batch, *example.shape[1:], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = module(x)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(names, {"inputs": x.numpy()})
    for name, want, have in zip(names, expected, got):
        if have.shape != tuple(want.shape):
            return f"{name} has shape {have.shape} at batch {batch}, eager {tuple(want.shape)}"
        err = float(np.abs(have - want.numpy()).max()) if have.size else 0.0
        if not err <= _VERIFY_ATOL:  # NaN too
            return f"{name} differs from eager by {err:.3g} (> {_VERIFY_ATOL})"
    return None


def export_onnx(
    model: nn.Module,
    out: Union[str, os.PathLike],
    *,
    input_size: Optional[Sequence[int]] = None,
    flip_test: Optional[bool] = None,
    flip_indices: Optional[Sequence[int]] = None,
    opset: int = 18,
    dynamic_batch: bool = True,
    exporter: str = "auto",
    model_cfg: Optional[Mapping] = None,
    verify: bool = True,
) -> str:
    """Export the crop model of a top-down estimator to ONNX, decoding inside the graph.

    Args:
        model: a :class:`rle.models.TopdownPoseEstimator` (its mode is restored afterwards).
        out: the ``.onnx`` file to write (folders are created).
        input_size: ``(w, h)`` of the crops; default the ``TopdownAffine`` of
            ``model.test_pipeline``, else ``model.head.input_size``.
        flip_test: put the flip test in the graph; default ``model.test_cfg["flip_test"]``.
        flip_indices: the mirror keypoint of each keypoint (flip test); default
            ``model.dataset_meta["flip_indices"]``.
        opset: ONNX opset (18 by default: onnxruntime 1.14 and later run it).
        dynamic_batch: a dynamic batch axis (else the graph takes batches of 2 only).
        exporter: ``"auto"`` (dynamo, then TorchScript where dynamo fails or disagrees),
            ``"dynamo"`` or ``"torchscript"``.
        model_cfg: the estimator's config dict for the metadata; default ``model.cfg``'s
            ``model`` entry when the model has one, else null.
        verify: run the graph on onnxruntime (when installed) against the eager model on a
            random batch of another size; a disagreement above 1e-4 rejects that exporter.

    Returns:
        the path written.

    Raises:
        TypeError: ``model`` is not a top-down estimator, or its head's ``predict`` does not
            give ``coords``/``scores``/``sigma`` tensors.
        ValueError: a bad argument (named), or no flip indices for the flip test.
        RuntimeError: no exporter produced a graph that passes (every error listed).
    """
    from rle.models.topdown import TopdownPoseEstimator

    if not isinstance(model, TopdownPoseEstimator):
        raise TypeError(f"model must be a TopdownPoseEstimator, got {type(model).__name__}")
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a path, got {type(out).__name__}")
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    if not isinstance(opset, int) or isinstance(opset, bool) or not 13 <= opset <= 23:
        raise ValueError(f"opset must be an int in [13, 23], got {opset!r}")
    w, h = _default_input_size(model) if input_size is None else _check_size(input_size)
    head = model.head
    k = head.num_keypoints
    flip = bool(model.test_cfg.get("flip_test", False)) if flip_test is None else flip_test
    if not isinstance(flip, bool):
        raise TypeError(f"flip_test must be a bool or None, got {type(flip_test).__name__}")
    indices = _flip_indices(model, flip_indices, k) if flip else None
    cfg = _model_cfg(model, model_cfg)

    module = CropPoseModule(model, flip, indices).eval()
    example = torch.randn(_TRACE_BATCH, 3, h, w, generator=torch.Generator().manual_seed(0))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            names = _check_outputs(head, module(example), _TRACE_BATCH)
            meta = dict(
                format_version=FORMAT_VERSION,
                model=cfg,
                input_size=[w, h],
                convention=model.convention,
                test_cfg=_jsonable({**model.test_cfg, "flip_test": flip}),
                dataset_meta=_jsonable(getattr(model, "dataset_meta", None)),
                data_preprocessor=_preprocessor_meta(model),
                interval_scale=_interval_meta(head),
                head=type(head).__name__,
                num_keypoints=k,
                num_dims=head.num_dims,
                outputs=names,
                flip_indices=indices,
                dynamic_batch=bool(dynamic_batch),
            )
            order = ["dynamo", "torchscript"] if exporter == "auto" else [exporter]
            proto, problems = None, []
            for kind in order:
                run = _export_dynamo if kind == "dynamo" else _export_torchscript
                try:
                    proto = run(module, example, names, opset, dynamic_batch)
                    _import("onnx").checker.check_model(proto)
                    problem = (
                        _verify(proto, module, example, names, dynamic_batch) if verify else None
                    )
                except Exception as err:  # every failure is reported below
                    problem = _summary(err)
                if problem is None:
                    meta["exporter"] = kind
                    break
                problems.append(f"{kind}: {problem}")
                proto = None
    finally:
        model.train(was_training)
    if proto is None:
        raise RuntimeError(f"ONNX export of {type(head).__name__} failed: " + "; ".join(problems))
    if problems:
        warnings.warn(f"ONNX export fell back to {meta['exporter']}: {problems[0]}", stacklevel=2)
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    out = os.fspath(out)
    if osp.dirname(out):
        os.makedirs(osp.dirname(out), exist_ok=True)
    _import("onnx").save(proto, out)
    return out


def export_checkpoint(
    checkpoint: Union[str, os.PathLike],
    out: Union[str, os.PathLike],
    *,
    config: Optional[Union[str, os.PathLike]] = None,
    unsafe_load: bool = False,
    **kwargs,
) -> str:
    """Build the model with :func:`rle.apis.init_model` and :func:`export_onnx` it (what
    ``tools/export_onnx.py`` runs).

    Args:
        checkpoint: the checkpoint file; without ``config`` it must be self-describing
            (``meta["rle_pose"]``: every checkpoint trained or converted here).
        out: the ``.onnx`` file.
        config: the config file the checkpoint was trained with, or ``None``.
        unsafe_load: load the checkpoint with plain ``torch.load`` (trusted files only).
        kwargs: the options of :func:`export_onnx` (``flip_test``, ``opset`` ...).

    Returns:
        the path written.
    """
    from rle.apis import init_model

    config = None if config is None else os.fspath(config)
    model = init_model(config, os.fspath(checkpoint), device="cpu", unsafe_load=unsafe_load)
    return export_onnx(model, out, **kwargs)
