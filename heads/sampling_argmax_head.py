"""SamplingArgmaxHead: trained on differentiable samples of the location, soft-argmax at test."""

from __future__ import annotations

from typing import Dict, Optional

import torch

from heads.base import HeatmapHead
from heads.functional import heatmap_expectation, sampling_argmax, sampling_argmax_tau
from rle.registry import MODELS

__all__ = ["SamplingArgmaxHead"]


@MODELS.register_module()
class SamplingArgmaxHead(HeatmapHead):
    """Sampling-argmax (Li et al., NeurIPS 2021): the loss is the expected L1 error over
    ``num_samples`` samples; inference is the soft-argmax.

    Args:
        basis: ``"uniform"``, ``"triangular"`` (default, best in the paper) or ``"gaussian"``.
        num_samples: S (30 for COCO, 10 for Human3.6M in the paper).
        tau: Gumbel-softmax temperature; ``tau_schedule=True`` follows the reference schedule
            through :meth:`set_epoch` (2-D: 2 -> 0.5 over 25 epochs).
        variant: ``"official"`` (``softmax(h + g/tau)``) or ``"textbook"``
            (``softmax((h + g)/tau)``), see :func:`heads.functional.sampling_argmax`.
        clip_integral: the official 2-D model's sign-clipped integral gradient.
        chunk_size: bound memory by processing samples in chunks (checkpointed).
        generator: optional ``torch.Generator`` for the sampling noise.
        other arguments: see :class:`heads.base.HeatmapHead` (with ``grid="mmpose"`` the
            training samples are shifted by :meth:`~heads.base.HeatmapHead.grid_offset`, like
            the coordinates).
    """

    def __init__(
        self,
        *args,
        basis: str = "triangular",
        num_samples: int = 30,
        tau: float = 2.0,
        tau_schedule: bool = True,
        variant: str = "official",
        clip_integral: bool = False,
        chunk_size: Optional[int] = None,
        generator: Optional[torch.Generator] = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.basis = basis
        self.num_samples = num_samples
        self.tau = float(tau)
        self.tau_schedule = tau_schedule
        self.variant = variant
        self.clip_integral = clip_integral
        self.chunk_size = chunk_size
        self.generator = generator
        # validate the sampling arguments once, on a tiny map (this draws from the global RNG:
        # seeded runs depend on it, so it stays)
        sampling_argmax(
            torch.zeros(1, 1, 2),
            self.tau,
            num_samples,
            basis,
            variant=variant,
            chunk_size=chunk_size,
        )

    def decode(self, logits: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        return heatmap_expectation(heatmaps)

    def loss(self, feats_or_output, target, target_weight=None) -> Dict[str, torch.Tensor]:
        output = self._output(feats_or_output)
        self._check_target(output, target, target_weight)
        samples = sampling_argmax(
            output.logits * self.beta if self.beta != 1.0 else output.logits,
            self.tau,
            self.num_samples,
            self.basis,
            training=True,
            variant=self.variant,
            generator=self.generator,
            clip_integral=self.clip_integral,
            chunk_size=self.chunk_size,
        )
        offset = self.grid_offset(output.logits)  # the samples live on the decoding grid too
        if offset is not None:
            samples = samples + offset
        return {"loss_kpt": self.coordinate_loss(samples, target, target_weight)}

    def set_epoch(self, epoch: int) -> None:
        """Apply the reference temperature schedule (when ``tau_schedule``)."""
        if self.tau_schedule:
            self.tau = sampling_argmax_tau(epoch, self.num_dims)
