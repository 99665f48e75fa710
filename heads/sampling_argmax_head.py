"""SamplingArgmaxHead: trained on differentiable samples of the location, soft-argmax at test."""

from __future__ import annotations

import math
from typing import Dict, Optional

import torch
from torch import nn

from heads.base import HeadOutput, HeatmapHead
from heads.functional import heatmap_expectation, sampling_argmax, sampling_argmax_tau
from heads.functional.sampling import (
    FIXED_WIDTHS,
    _normalise_basis,
    mixture_log_likelihood,
    mixture_variance,
)
from rle.registry import MODELS

__all__ = ["SamplingArgmaxHead"]


@MODELS.register_module()
class SamplingArgmaxHead(HeatmapHead):
    """Sampling-argmax (Li et al., NeurIPS 2021): the loss is the expected L1 error over
    ``num_samples`` samples; inference is the soft-argmax.

    The predictive distribution is the mixture the basis defines, ``p(x) = sum_j pi_j
    basis(x - c_j; w)`` over the bins of the map: :meth:`predictive_sigma` is its per-axis
    standard deviation, :meth:`log_likelihood` its log density at a target.

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
        learn_width: the basis width (bins; uniform/triangular half-width, gaussian std), trained
            through the samples (:func:`~heads.functional.sampling_argmax`'s ``basis_width``):
            ``"none"`` (default: the fixed basis, the same samples and state dict as before),
            ``"keypoint"`` (``log_width``, an ``nn.Parameter`` of K log-widths) or
            ``"location"`` (``width_conv``, a 1x1 conv beside the heatmap conv giving a log-width
            map ``(B, K, [Dz,] H, W)``, returned as the output's ``sigma_logits``).
        width_loss: how a learned width is trained. ``"samples"`` (default): through the
            samples' expected L1 error, which always favours a narrower basis (the error of a
            jittered sample grows with its jitter) so the width collapses towards 0.
            ``"nll"``: the samples use the width detached, and the width alone learns from
            ``loss_width``, the negative log-likelihood of the targets under the predictive
            mixture with the map detached (:func:`~heads.functional.sampling.
            mixture_log_likelihood`): its maximum-likelihood width given the map, the width
            the predictive density needs to be calibrated on the training data (per location
            the width conv reads the trunk's features detached, so the map's training is that
            of the fixed-width head).
        width_loss_weight: the weight of ``loss_width`` (``width_loss="nll"``); it reaches only
            the width's parameters, so with Adam it acts as their learning-rate scale only.
        init_width: the initial width in bins (default the fixed basis's,
            :data:`~heads.functional.sampling.FIXED_WIDTHS`); per location it is added in log
            space to the conv's output, which the default init starts near 0.
        other arguments: see :class:`heads.base.HeatmapHead` (with ``grid="mmpose"`` the
            training samples are shifted by :meth:`~heads.base.HeatmapHead.grid_offset`, like
            the coordinates).
    """

    #: accepted values of ``learn_width``
    LEARN_WIDTHS = ("none", "keypoint", "location")
    #: accepted values of ``width_loss``
    WIDTH_LOSSES = ("samples", "nll")

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
        learn_width: str = "none",
        width_loss: str = "samples",
        width_loss_weight: float = 1.0,
        init_width: Optional[float] = None,
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
        if learn_width not in self.LEARN_WIDTHS:
            raise ValueError(f"learn_width must be one of {self.LEARN_WIDTHS}, got {learn_width!r}")
        if init_width is not None:
            if learn_width == "none":
                raise ValueError('init_width needs learn_width="keypoint" or "location"')
            if not (
                isinstance(init_width, (int, float))
                and not isinstance(init_width, bool)
                and 0 < init_width < math.inf
            ):
                raise ValueError(f"init_width must be a positive finite number, got {init_width!r}")
        if width_loss not in self.WIDTH_LOSSES:
            raise ValueError(f"width_loss must be one of {self.WIDTH_LOSSES}, got {width_loss!r}")
        if width_loss != "samples" and learn_width == "none":
            raise ValueError(
                f'width_loss={width_loss!r} needs learn_width="keypoint" or "location"'
            )
        if not (
            isinstance(width_loss_weight, (int, float))
            and not isinstance(width_loss_weight, bool)
            and 0 < width_loss_weight < math.inf
        ):
            raise ValueError(
                f"width_loss_weight must be a positive finite number, got {width_loss_weight!r}"
            )
        self.learn_width = learn_width
        self.width_loss = width_loss
        self.width_loss_weight = float(width_loss_weight)
        self.init_width = (
            float(init_width) if init_width is not None else FIXED_WIDTHS[_normalise_basis(basis)]
        )
        # learn_width="none" registers nothing: its state dict is the fixed head's
        if learn_width == "keypoint":
            self.log_width = nn.Parameter(
                torch.full((self.num_keypoints,), math.log(self.init_width))
            )
        elif learn_width == "location":
            self.width_conv = nn.Conv2d(
                self.trunk.out_channels, self.num_keypoints * self.depth_bins, 1
            )
            self._log_width_map: Optional[torch.Tensor] = None  # heatmap_logits -> forward

    def _maps(self, x: torch.Tensor) -> torch.Tensor:
        """Conv output ``(B, K * Dz, H, W)`` -> maps ``(B, K, [Dz,] H, W)``."""
        if self.num_dims == 3:
            return x.view(x.shape[0], self.num_keypoints, self.depth_bins, *x.shape[-2:])
        return x

    def heatmap_logits(self, feats) -> torch.Tensor:
        if self.learn_width != "location":
            return super().heatmap_logits(feats)
        x = self.trunk(self._feature_map(feats))
        # the log-width map comes from the same trunk features; forward hands it on at once (so
        # the base forward, whatever it does with the logits, stays the one code path)
        # width_loss="nll" trains the width alone: the width conv reads the trunk detached
        width_in = x.detach() if self.width_loss == "nll" else x
        self._log_width_map = self._maps(self.width_conv(width_in)) + math.log(self.init_width)
        return self._maps(self.final(x))

    def forward(self, feats) -> HeadOutput:
        output = super().forward(feats)
        if self.learn_width != "location":
            return output
        log_width, self._log_width_map = self._log_width_map, None
        return output._replace(sigma_logits=log_width)

    def decode(self, logits: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        return heatmap_expectation(heatmaps)

    def basis_width(self, output: HeadOutput) -> Optional[torch.Tensor]:
        """The basis width in bins: ``None`` (fixed), ``(K,)`` or ``(B, K, [Dz,] H, W)``."""
        if self.learn_width == "keypoint":
            return self.log_width.exp()
        if self.learn_width == "location":
            if output.sigma_logits is None or output.sigma_logits.shape != output.logits.shape:
                raise ValueError(
                    'learn_width="location" needs the output\'s sigma_logits: the log-width map '
                    f"(B, K, [Dz,] H, W) = {tuple(output.logits.shape)} this head's forward returns"
                )
            return output.sigma_logits.exp()
        return None

    def loss(self, feats_or_output, target, target_weight=None) -> Dict[str, torch.Tensor]:
        """``loss_kpt``, the samples' coordinate loss; with ``width_loss="nll"`` also
        ``loss_width``, the targets' mean negative log-likelihood (nats, normalised units)
        over the labelled keypoints, which trains the width alone."""
        output = self._output(feats_or_output)
        self._check_target(output, target, target_weight)
        width = self.basis_width(output)
        nll = self.width_loss == "nll"
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
            basis_width=width.detach() if nll else width,
        )
        offset = self.grid_offset(output.logits)  # the samples live on the decoding grid too
        if offset is not None:
            samples = samples + offset
        losses = {"loss_kpt": self.coordinate_loss(samples, target, target_weight)}
        if nll:
            log_p = mixture_log_likelihood(
                output.heatmaps.detach(),
                target.detach() - offset if offset is not None else target.detach(),
                self.basis,
                width,
                min_prob=self.MIN_BIN_PROB,
            )
            weight = torch.ones_like(log_p)
            if target_weight is not None:  # (B, K), (B, K, 1) or (B, K, D) -> (B, K)
                weight = target_weight.to(log_p).reshape(*log_p.shape, -1).mean(-1)
            losses["loss_width"] = (
                -self.width_loss_weight * (log_p * weight).sum() / weight.sum().clamp_min(1.0)
            )
        return losses

    def predictive_sigma(self, feats_or_output) -> torch.Tensor:
        """Per-axis standard deviation ``(B, K, D)`` (normalised) of the predictive mixture:
        ``sqrt(map marginal variance + mean basis variance)`` (a constant shift of the grid
        changes neither), :func:`~heads.functional.sampling.mixture_variance`."""
        output = self._output(feats_or_output)
        return mixture_variance(output.heatmaps, self.basis, self.basis_width(output)).sqrt()

    def log_likelihood(self, feats_or_output, target: torch.Tensor) -> torch.Tensor:
        """Log density ``(B, K)`` of ``target`` ``(B, K, D)`` (normalised, on the decoding grid)
        under the predictive mixture, per unit volume of normalised coordinates
        (:func:`~heads.functional.sampling.mixture_log_likelihood`), floored as the base's
        (:attr:`MIN_BIN_PROB`: a target beyond every bin's support stays finite)."""
        output = self._output(feats_or_output)
        self._check_target(output, target, None)
        offset = self.grid_offset(output.heatmaps)
        if offset is not None:  # bin j sits at its centre plus the offset
            target = target - offset
        return mixture_log_likelihood(
            output.heatmaps,
            target,
            self.basis,
            self.basis_width(output),
            min_prob=self.MIN_BIN_PROB,
        )

    def set_epoch(self, epoch: int) -> None:
        """Apply the reference temperature schedule (when ``tau_schedule``)."""
        if self.tau_schedule:
            self.tau = sampling_argmax_tau(epoch, self.num_dims)
