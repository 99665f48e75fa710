"""Top-down pose estimator: data preprocessor + backbone + head, on mmengine.

This is the only place that converts between mmengine data samples and head tensors: targets
are stacked into ``(B, K, D)`` / ``(B, K)`` tensors for ``head.loss``; predictions are decoded
back to image pixels with the inverse of the crop warp, in the pixel convention the sample's
crop was made with (``convention`` of the data sample, :mod:`rle.datasets.geometry`). Flip
test (mirror the input, negate x, swap left/right, average coords, sigma and scores) is
implemented here once for every head: in the normalised convention the mirror is exact
negation (MMPose's ``shift_coords=True``); ``test_cfg`` can reproduce the references' other
flip tests (MMPose's ``shift_coords=False``, the official code's unswapped sigma).

Where the data samples carry ``keypoint_labels`` (validation pipelines run ``EncodeKeypoints``),
``predict`` also scores them: ``pred_log_likelihood``, the log density of each label under the
head's predictive density (:meth:`heads.BaseHead.log_likelihood`), a proper scoring rule.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.model import BaseModel

from rle.amp import full_precision
from rle.coords import flip_coords
from rle.datasets.geometry import check_convention
from rle.datasets.transforms import keypoints_to_image
from rle.registry import MODELS

__all__ = ["TopdownPoseEstimator", "check_sample_conventions", "decode_samples"]


def _build(cfg):
    return MODELS.build(cfg) if isinstance(cfg, dict) else cfg


@MODELS.register_module()
class TopdownPoseEstimator(BaseModel):
    """Backbone + head trained and evaluated on cropped person instances.

    Args:
        backbone: backbone config (e.g. ``dict(type="TimmBackbone", model_name="resnet50")``).
        head: head config; ``in_channels`` is filled from the backbone when omitted.
        data_preprocessor: mmengine data preprocessor config (mean/std normalisation).
        test_cfg: ``flip_test`` (bool); ``shift_coords`` (default ``True``: the mirrored
            prediction is the exact mirror; ``False``: MMPose's ``shift_coords=False``, the
            mirrored x is one crop pixel right of the mirror, half a pixel after averaging);
            ``flip_swap_sigma`` (default ``True``: sigma of the mirrored pass is swapped
            left/right like the coordinates and scores; ``False``: the official RLE code's
            flip test, which averages sigma unswapped); ``depth_scale`` (mm per unit of
            normalised depth, 3-D heads; 2000 as the references).
        convention: the pixel convention the weights were trained with
            (:data:`rle.datasets.geometry.CONVENTIONS`); the data samples' crops must be made
            with it (``predict`` raises otherwise). Heatmap heads under ``"mmpose"`` need
            MMPose's grid (``head.grid="mmpose"``, set by :func:`rle.engine.load_config`).
        memory_format: ``"contiguous"`` (default) or ``"channels_last"``: the backbone's
            weights and its input batch in the channels-last layout. Numerically the same
            model (the state dict does not change); under bfloat16 autocast on the CPU it is
            1.24x-2.3x faster to train than float32 (``benchmarks/bench_training.py``),
            alone it is slower at small inputs.
        init_cfg: mmengine init config.
    """

    #: accepted values of ``memory_format``
    MEMORY_FORMATS = ("contiguous", "channels_last")

    def __init__(
        self,
        backbone: Union[dict, torch.nn.Module],
        head: Union[dict, torch.nn.Module],
        data_preprocessor: Optional[dict] = None,
        test_cfg: Optional[dict] = None,
        convention: str = "rle",
        memory_format: str = "contiguous",
        init_cfg=None,
    ) -> None:
        if memory_format not in self.MEMORY_FORMATS:
            raise ValueError(
                f"memory_format must be one of {self.MEMORY_FORMATS}, got {memory_format!r}"
            )
        if data_preprocessor is None:
            data_preprocessor = dict(
                type="ImgDataPreprocessor",
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                bgr_to_rgb=True,
            )
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = _build(backbone)
        if isinstance(head, dict) and "in_channels" not in head:
            head = dict(head, in_channels=self.backbone.out_channels[-1])
        self.head = _build(head)
        self.convention = check_convention(convention)
        self.memory_format = memory_format
        if memory_format == "channels_last":
            self.backbone.to(memory_format=torch.channels_last)
        grid = getattr(self.head, "grid", None)
        if grid is not None and grid != ("mmpose" if convention == "mmpose" else "center"):
            raise ValueError(
                f"a {type(self.head).__name__} with grid={grid!r} in a model of convention "
                f"{convention!r}: MMPose's convention needs the head's grid='mmpose', ours "
                "grid='center' (set convention once in the config: rle.engine.load_config)"
            )
        self.test_cfg = {
            "flip_test": False,
            "shift_coords": True,
            "flip_swap_sigma": True,
            "depth_scale": 2000.0,
            **(test_cfg or {}),
        }

    # -- mmengine entry point ----------------------------------------------------------------
    def forward(
        self, inputs: torch.Tensor, data_samples: Optional[List[dict]] = None, mode: str = "tensor"
    ):
        if mode == "loss":
            return self.loss(inputs, data_samples)
        if mode == "predict":
            return self.predict(inputs, data_samples)
        if mode == "tensor":
            return self.head(self.extract_feat(inputs))
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")

    def extract_feat(self, inputs: torch.Tensor):
        if self.memory_format == "channels_last" and inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return self.backbone(inputs)

    # -- training ------------------------------------------------------------------------------
    @staticmethod
    def targets(data_samples: Sequence[dict], device) -> tuple:
        """Stack ``keypoint_labels`` ``(B, K, D)`` and ``keypoint_weights`` ``(B, K)``."""
        if not data_samples:
            raise ValueError("loss mode needs data_samples with keypoint_labels/_weights")
        for key in ("keypoint_labels", "keypoint_weights"):
            if data_samples[0].get(key) is None:
                raise KeyError(f"data sample lacks {key!r}: add EncodeKeypoints to the pipeline")
        target = torch.stack([torch.as_tensor(s.keypoint_labels) for s in data_samples])
        weight = torch.stack([torch.as_tensor(s.keypoint_weights) for s in data_samples])
        return target.to(device=device, dtype=torch.float32), weight.to(
            device=device, dtype=torch.float32
        )

    def loss(self, inputs: torch.Tensor, data_samples: Sequence[dict]) -> Dict[str, torch.Tensor]:
        target, weight = self.targets(data_samples, inputs.device)
        output = self.head(self.extract_feat(inputs))  # the layers under the caller's autocast
        with full_precision(output.coords):  # the losses (sampling, regularisers) in float32
            return self.head.loss(output, target, weight)

    # -- inference -----------------------------------------------------------------------------
    def _predict_tensors(self, inputs: torch.Tensor, flip_indices):
        """``(coords, scores, sigma)`` of the batch, flip test included (the exported graph)."""
        return self._predict_outputs(inputs, flip_indices)[0]

    def _predict_outputs(self, inputs: torch.Tensor, flip_indices):
        """``((coords, scores, sigma), output)``: :meth:`_predict_tensors` and the head's
        :class:`heads.HeadOutput` of the un-flipped input, which the log-likelihood reads."""
        output = self.head(self.extract_feat(inputs))
        pred = self.head.predict(output)
        coords, scores, sigma = pred.coords, pred.scores, pred.sigma
        if self.test_cfg.get("flip_test"):
            if flip_indices is None:
                raise ValueError("flip_test needs flip_indices in the data samples")
            idx = torch.as_tensor(flip_indices, device=coords.device)
            flipped = self.head.predict(self.extract_feat(inputs.flip(-1)))
            mirrored = flip_coords(flipped.coords[:, idx], axis=0)
            if not self.test_cfg.get("shift_coords", True):
                # MMPose's x -> 1 - x without the -1/n: one crop pixel right of the mirror
                mirrored[..., 0] += 1.0 / inputs.shape[-1]
            coords = (coords + mirrored) / 2
            scores = (scores + flipped.scores[:, idx]) / 2
            # the official flip test averages sigma without the left/right swap (its scores,
            # maxvals, are swapped)
            side = idx if self.test_cfg.get("flip_swap_sigma", True) else slice(None)
            if sigma is not None:
                sigma = (sigma + flipped.sigma[:, side]) / 2
        return (coords, scores, sigma), output

    def log_likelihood(self, output, data_samples: Sequence) -> Optional[torch.Tensor]:
        """``head.log_likelihood`` ``(B, K)`` of the samples' ``keypoint_labels`` under the
        head's ``output``, or ``None`` when a sample has no labels or the head no density.

        Raises:
            ValueError: the labels are not ``(K, D)`` of the head's K and D.
        """
        if not data_samples or any(s.get("keypoint_labels") is None for s in data_samples):
            return None
        target = torch.stack([torch.as_tensor(s.keypoint_labels) for s in data_samples])
        if tuple(target.shape) != tuple(output.coords.shape):
            raise ValueError(
                f"keypoint_labels must be (K, D) = {tuple(output.coords.shape[1:])} per sample "
                f"for this head, got {tuple(target.shape[1:])}"
            )
        target = target.to(device=output.coords.device, dtype=output.coords.dtype)
        return self.head.log_likelihood(output, target)

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor, data_samples: Sequence) -> list:
        """Predict and decode to image coordinates.

        Returns the data samples with the fields ``pred_coords`` (K, D) normalised,
        ``pred_keypoints`` (K, 2) image pixels, ``pred_scores`` (K,), ``pred_sigma`` (K, D)
        normalised or ``None``, and for 3-D heads ``pred_depth`` (K,) root-relative mm.

        Samples with ``keypoint_labels`` (all of the batch) also get ``pred_log_likelihood``
        (K,) float32 when the head has a density (:meth:`log_likelihood`): nats per unit of
        normalised crop volume, for every joint (mask it with ``keypoint_weights``: an
        unlabelled joint has the label 0). It scores the un-flipped pass, also under
        ``flip_test``: the average of two densities is a mixture, not a density of the head's.
        """
        check_sample_conventions(data_samples, self.convention)
        flip_indices = data_samples[0].get("flip_indices") if data_samples else None
        (coords, scores, sigma), output = self._predict_outputs(inputs, flip_indices)
        size = (inputs.shape[-1], inputs.shape[-2])
        samples = decode_samples(
            coords, scores, sigma, data_samples, size, self.convention, self.test_cfg["depth_scale"]
        )
        log_lik = self.log_likelihood(output, samples)
        if log_lik is not None:
            for sample, value in zip(samples, log_lik.float().cpu().numpy()):
                sample.pred_log_likelihood = value
        return samples


def check_sample_conventions(data_samples: Sequence, convention: str) -> None:
    """Raise ``ValueError`` naming the sample when a crop was made in another pixel convention
    than ``convention`` (the model's)."""
    for sample in data_samples:
        if sample.get("convention", "rle") != convention:
            raise ValueError(
                f"sample {sample.get('id')}: its crop was made in the "
                f"{sample.get('convention', 'rle')!r} pixel convention, the model's is "
                f"{convention!r} (set convention once in the config: the datasets and the model "
                "get it from there)"
            )


def decode_samples(
    coords, scores, sigma, data_samples: Sequence, input_size, convention: str = "rle",
    depth_scale: float = 2000.0,
) -> list:  # fmt: skip
    """Write crop-space predictions into their data samples, decoded to image pixels (what
    :meth:`TopdownPoseEstimator.predict` returns; shared with the exported models' runner).

    Args:
        coords: ``(B, K, D)`` normalised coordinates (tensor or array).
        scores: ``(B, K)``; sigma: ``(B, K, D)`` normalised, or ``None``.
        data_samples: B samples with ``input_center``, ``input_scale`` (and optionally
            ``input_size``, ``bbox_rotation``).
        input_size: ``(w, h)`` of the crops, used when a sample has no ``input_size``.
        convention: the pixel convention of the crops (:mod:`rle.datasets.geometry`).
        depth_scale: mm per unit of normalised depth (3-D).

    Returns:
        the samples with ``pred_coords``, ``pred_keypoints`` (K, 2) image px, ``pred_scores``,
        ``pred_sigma`` and, for D = 3, ``pred_depth`` (K,) root-relative mm.
    """

    def _np(x):
        return (
            None
            if x is None
            else np.asarray(x.float().cpu().numpy() if torch.is_tensor(x) else x, dtype=np.float32)
        )

    coords_np, scores_np, sigma_np = _np(coords), _np(scores), _np(sigma)
    for i, sample in enumerate(data_samples):
        size = sample.get("input_size", input_size)
        sample.pred_coords = coords_np[i]
        sample.pred_keypoints = keypoints_to_image(
            coords_np[i, :, :2],
            size,
            sample.input_center,
            sample.input_scale,
            sample.get("bbox_rotation", 0.0),
            convention,
        ).astype(np.float32)
        sample.pred_scores = scores_np[i]
        sample.pred_sigma = None if sigma_np is None else sigma_np[i]
        if coords_np.shape[-1] == 3:
            sample.pred_depth = coords_np[i, :, 2] * depth_scale
    return list(data_samples)
