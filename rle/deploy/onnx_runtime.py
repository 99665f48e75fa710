"""An exported crop model (:func:`rle.deploy.export_onnx`) on onnxruntime, behind the
pose-model protocol of :mod:`rle.apis.inference`.

Shape letters: B batch, K keypoints, D coordinate dims (2 or 3), H/W crop size.
"""

from __future__ import annotations

import math
import os
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from rle.deploy.onnx_export import _import, read_onnx_metadata

__all__ = ["OnnxPoseModel"]


class OnnxPoseModel:
    """An exported crop model on onnxruntime, behind the estimator's inference protocol.

    ``rle.apis.inference_topdown(OnnxPoseModel(path), image, bboxes)`` runs as with the eager
    estimator: the test pipeline crops, :attr:`data_preprocessor` normalises as the model's
    ``ImgDataPreprocessor`` did (BGR->RGB, ``(x - mean) / std``), :meth:`predict` runs the graph
    and decodes with :func:`rle.models.topdown.decode_samples`, like the estimator's
    ``predict``. The flip test is whatever the graph was exported with (``test_cfg``).

    Args:
        path: an ``.onnx`` file written by :func:`export_onnx`.
        providers: onnxruntime execution providers (default ``["CPUExecutionProvider"]``).
        session_options: an ``onnxruntime.SessionOptions`` (threads, graph optimisation).

    Attributes:
        metadata: the parsed metadata (:func:`read_onnx_metadata`).
        dataset_meta: the stored dataset meta; without one
            :func:`rle.apis.default_dataset_meta` (COCO's for 17 2-D keypoints).
        test_pipeline: transform configs for in-memory images (box -> crop -> pack).
        convention, test_cfg, input_size ``(w, h)``, num_keypoints, num_dims, has_sigma.
    """

    def __init__(self, path, *, providers: Optional[Sequence[str]] = None, session_options=None):
        if not isinstance(path, (str, os.PathLike)) or not osp.isfile(path):
            raise ValueError(f"path must be an existing .onnx file, got {path!r}")
        if providers is not None and (
            isinstance(providers, str) or not isinstance(providers, Sequence)
        ):
            raise TypeError(f"providers must be a list of provider names, got {providers!r}")
        ort = _import("onnxruntime")
        self.path = os.fspath(path)
        self.session = ort.InferenceSession(
            self.path,
            sess_options=session_options,
            providers=list(providers) if providers else ["CPUExecutionProvider"],
        )
        self.metadata = meta = read_onnx_metadata(self.session)
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.input_size = tuple(meta["input_size"])
        self.convention = meta["convention"]
        self.test_cfg = dict(meta["test_cfg"])
        self.num_keypoints = int(meta["num_keypoints"])
        self.num_dims = int(meta["num_dims"])
        self.has_sigma = "sigma" in self.output_names
        dataset_meta = meta.get("dataset_meta")
        if dataset_meta is None:
            from rle.apis import default_dataset_meta

            # what init_model gives a checkpoint without one (COCO's for 17 2-D keypoints);
            # the flip test in the graph keeps the indices it was exported with
            dataset_meta = default_dataset_meta(self.num_keypoints, self.num_dims)
            flip = meta.get("flip_indices")
            if flip is not None:
                dataset_meta["flip_indices"] = list(flip)
                dataset_meta["flip_pairs"] = [(i, j) for i, j in enumerate(flip) if i < j]
        elif dataset_meta.get("sigmas") is not None:
            dataset_meta["sigmas"] = np.asarray(dataset_meta["sigmas"], dtype=np.float64)
        self.dataset_meta = dataset_meta
        w, h = self.input_size
        self.test_pipeline = [
            dict(type="GetBBoxCenterScale", padding=1.25, convention=self.convention),
            dict(type="TopdownAffine", input_size=(w, h), convention=self.convention),
            dict(type="PackPoseInputs"),
        ]
        pre = meta["data_preprocessor"]
        from mmengine.model import ImgDataPreprocessor

        self.data_preprocessor = ImgDataPreprocessor(
            mean=pre["mean"],
            std=pre["std"],
            bgr_to_rgb=pre["bgr_to_rgb"],
            pad_size_divisor=pre.get("pad_size_divisor", 1),
            pad_value=pre.get("pad_value", 0),
        )
        scale = meta.get("interval_scale")
        self._interval = None if scale is None else {float(k): v for k, v in scale.items()}

    def __repr__(self) -> str:
        return (
            f"OnnxPoseModel({self.path!r}, head={self.metadata.get('head')}, "
            f"input_size={self.input_size}, flip_test={self.test_cfg.get('flip_test')})"
        )

    def run(self, inputs) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """The graph on normalised crops ``(B, 3, H, W)`` (tensor or array): ``coords``,
        ``scores`` and ``sigma`` (``None`` without) as float32 arrays."""
        x = inputs.detach().cpu().numpy() if torch.is_tensor(inputs) else np.asarray(inputs)
        w, h = self.input_size
        if x.ndim != 4 or x.shape[1:] != (3, h, w):
            raise ValueError(f"inputs must have shape (B, 3, H={h}, W={w}), got {x.shape}")
        batch = self.session.get_inputs()[0].shape[0]
        if isinstance(batch, int) and x.shape[0] != batch:
            raise ValueError(
                f"inputs: the graph takes batches of {batch} only (exported with "
                f"dynamic_batch=False), got {x.shape[0]}"
            )
        x = np.ascontiguousarray(x, dtype=np.float32)
        outputs = dict(zip(self.output_names, self.session.run(self.output_names, {"inputs": x})))
        return outputs["coords"], outputs["scores"], outputs.get("sigma")

    def predict(self, inputs, data_samples: Sequence) -> list:
        """Run the graph and decode to image pixels, as
        :meth:`rle.models.TopdownPoseEstimator.predict` (the same fields)."""
        from rle.models.topdown import check_sample_conventions, decode_samples

        check_sample_conventions(data_samples, self.convention)
        baked = self.metadata.get("flip_indices")
        for sample in data_samples:
            theirs = sample.get("flip_indices")
            if baked is not None and theirs is not None and list(map(int, theirs)) != baked:
                raise ValueError(
                    f"sample {sample.get('id')}: flip_indices {list(theirs)} differ from the "
                    f"ones the graph's flip test was exported with {baked}"
                )
        coords, scores, sigma = self.run(inputs)
        return decode_samples(
            coords, scores, sigma, data_samples, self.input_size, self.convention,
            self.test_cfg.get("depth_scale", 2000.0),
        )  # fmt: skip

    def test_step(self, data: dict) -> list:
        """mmengine's ``test_step``: preprocess, then :meth:`predict`."""
        data = self.data_preprocessor(data, training=False)
        return self.predict(data["inputs"], data["data_samples"])

    def interval_scale(self, levels: Sequence[float]) -> Optional[Dict[float, float]]:
        """``{level: k}`` as the exported head's ``interval_scale``, from the stored levels
        (:data:`rle.deploy.INTERVAL_LEVELS`); ``None`` for a head without intervals.

        Raises:
            ValueError: a level that was not stored (naming the stored ones).
        """
        if self._interval is None:
            return None
        out = {}
        for level in levels:
            key = float(level)
            match = [v for k, v in self._interval.items() if math.isclose(k, key, abs_tol=1e-9)]
            if not match:
                raise ValueError(
                    f"levels: {level!r} was not stored at export; stored: {sorted(self._interval)}"
                )
            out[level] = match[0]
        return out
