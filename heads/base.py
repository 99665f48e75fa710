"""The one Head interface, and the pieces the heads share.

A head maps backbone features to keypoints. Tensors in, tensors out (never data samples):

* ``forward(feats) -> HeadOutput(coords, sigma, heatmaps, logits, sigma_logits)``
* ``loss(feats_or_output, target, target_weight=None) -> dict`` of named tensors; the keys that
  contain ``"loss"`` are summed by mmengine, the others are logged components (detached).
* ``predict(feats_or_output) -> Prediction(coords, scores, sigma)``
* ``set_epoch(epoch)``: called before every training epoch (a no-op unless the head has a
  schedule).
* the predictive density: ``interval_scale(levels)`` (``{level: k}`` of ``coords +- k sigma``),
  ``log_likelihood(feats_or_output, target) -> (B, K)`` (a proper scoring rule), both ``None``
  for a head without a density (:class:`heads.RegressionHead`).

Coordinates are normalised (:mod:`rle.coords`): ``[-0.5, 0.5]`` of the input crop, order
``(x, y[, z])``; ``z`` of 3-D heads is normalised the same way over the depth range.

Shape letters: B batch, C channels, K keypoints, D coordinate dims (2 or 3), h/w feature size,
H/W heatmap size, Dz depth bins.
"""

from __future__ import annotations

import copy
import numbers
from typing import Dict, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.model import BaseModule
from torch import nn

from heads.functional import (
    heatmap_confidence,
    heatmap_log_likelihood,
    heatmap_variance,
    spatial_softmax,
)
from rle.amp import full_precision, upcast
from rle.evaluation.functional import residual_quantile
from rle.losses import COORDINATE_LOSSES, coordinate_loss

__all__ = [
    "POOLED_INIT_CFG",
    "BaseHead",
    "HeadOutput",
    "HeatmapHead",
    "Prediction",
    "heatmap_trunk",
]

Feats = Union[torch.Tensor, Sequence[torch.Tensor]]

#: default ``init_cfg`` of the heads regressing from pooled features: N(0, 0.01) weights and zero
#: biases for every ``nn.Linear`` (the flow's layers are not ``nn.Linear``, see rle.flow)
POOLED_INIT_CFG = dict(type="Normal", layer="Linear", std=0.01, bias=0)


class HeadOutput(NamedTuple):
    """What ``Head.forward`` returns.

    Attributes:
        coords: ``(B, K, D)`` normalised coordinates (mu).
        sigma: ``(B, K, D)`` predicted scale (normalised units) or ``None``.
        heatmaps: ``(B, K, [Dz,] H, W)`` probability maps or ``None``.
        logits: ``(B, K, [Dz,] H, W)`` unnormalised maps or ``None``.
        sigma_logits: ``(B, K, D)`` logits of sigma or ``None`` (the loss uses them directly
            for a stable ``log sigma``).
    """

    coords: torch.Tensor
    sigma: Optional[torch.Tensor] = None
    heatmaps: Optional[torch.Tensor] = None
    logits: Optional[torch.Tensor] = None
    sigma_logits: Optional[torch.Tensor] = None


class Prediction(NamedTuple):
    """What ``Head.predict`` returns: ``coords`` ``(B, K, D)``, ``scores`` ``(B, K)`` in
    ``[0, 1]``, ``sigma`` ``(B, K, D)`` (normalised units, ``>= 0``; the scale of the head's
    predictive density, :meth:`BaseHead.predictive_sigma`) or ``None``."""

    coords: torch.Tensor
    scores: torch.Tensor
    sigma: Optional[torch.Tensor] = None


class BaseHead(BaseModule):
    """Base of every head.

    It owns the arguments every head shares; a subclass takes them as ``*args, **kwargs``,
    passes them on to ``super().__init__`` and declares only its own options, keyword-only.

    Args:
        in_channels: C of the (last) backbone feature map.
        num_keypoints: K.
        num_dims: D, 2 or 3.
        loss_weight: multiplies the main loss.
        init_cfg: mmengine initialisation config; ``None`` uses the class's
            :attr:`default_init_cfg`.
    """

    #: whether ``predict`` gives sigma (and so a per-keypoint interval): the RLE heads (their
    #: ``HeadOutput.sigma``) and the heatmap heads (the spread of the map, in
    #: ``Prediction.sigma`` only)
    has_sigma = False
    #: the ``init_cfg`` used when none is given (copied, never modified)
    default_init_cfg = None

    def __init__(
        self,
        in_channels: int,
        num_keypoints: int,
        num_dims: int = 2,
        loss_weight: float = 1.0,
        init_cfg=None,
    ) -> None:
        if init_cfg is None:
            init_cfg = copy.deepcopy(self.default_init_cfg)
        super().__init__(init_cfg=init_cfg)
        for name, value in (("in_channels", in_channels), ("num_keypoints", num_keypoints)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if num_dims not in (2, 3):
            raise ValueError(f"num_dims must be 2 or 3, got {num_dims!r}")
        self.in_channels = in_channels
        self.num_keypoints = num_keypoints
        self.num_dims = num_dims
        self.loss_weight = float(loss_weight)

    # -- inputs -----------------------------------------------------------------------------------
    def _feature_map(self, feats: Feats) -> torch.Tensor:
        """The last feature map ``(B, C, h, w)`` of ``feats`` (a tensor or a sequence of them)."""
        if isinstance(feats, (list, tuple)):
            if not feats:
                raise ValueError("feats is an empty sequence; expected tensors (B, C, h, w)")
            feats = feats[-1]
        if not isinstance(feats, torch.Tensor):
            raise TypeError(
                f"feats must be a tensor (B, C, h, w) or a sequence of them, got "
                f"{type(feats).__name__}"
            )
        if feats.dim() != 4 or feats.shape[1] != self.in_channels:
            raise ValueError(
                f"feats must have shape (B, C={self.in_channels}, h, w), got {tuple(feats.shape)}"
            )
        return feats

    def _output(self, feats_or_output) -> HeadOutput:
        """``feats_or_output`` if it is a :class:`HeadOutput`, else ``self(feats_or_output)``."""
        if isinstance(feats_or_output, HeadOutput):
            return feats_or_output
        return self(feats_or_output)

    def _check_target(self, output: HeadOutput, target, target_weight) -> None:
        """Raise unless ``target`` is ``(B, K, D)`` like ``output.coords`` and ``target_weight``
        is ``None``, ``(B, K)``, ``(B, K, 1)`` or ``(B, K, D)``."""
        expected = tuple(output.coords.shape)
        if not isinstance(target, torch.Tensor):
            raise TypeError(f"target must be a torch.Tensor (B, K, D), got {type(target).__name__}")
        if tuple(target.shape) != expected:
            raise ValueError(
                f"target must have shape (B, K, D) = {expected}, got {tuple(target.shape)}"
            )
        if target_weight is not None:
            if not isinstance(target_weight, torch.Tensor):
                raise TypeError("target_weight must be a torch.Tensor or None")
            b, k, d = expected
            if tuple(target_weight.shape) not in ((b, k), (b, k, 1), (b, k, d)):
                raise ValueError(
                    f"target_weight must have shape (B, K), (B, K, 1) or (B, K, D) = "
                    f"({b}, {k}[, 1|{d}]), got {tuple(target_weight.shape)}"
                )

    # -- interface --------------------------------------------------------------------------------
    def forward(self, feats: Feats) -> HeadOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(
        self,
        feats_or_output,
        target: torch.Tensor,
        target_weight: Optional[torch.Tensor] = None,
    ) -> Dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def scores(self, output: HeadOutput) -> torch.Tensor:
        """Keypoint confidence ``(B, K)``; heads override."""
        return output.coords.new_ones(output.coords.shape[:2])

    def predict(self, feats_or_output) -> Prediction:
        """Decode for inference: ``Prediction(coords, scores, sigma)``, sigma from
        :meth:`predictive_sigma`."""
        output = self._output(feats_or_output)
        return Prediction(
            coords=output.coords, scores=self.scores(output), sigma=self.predictive_sigma(output)
        )

    def set_epoch(self, epoch: int) -> None:
        """Called with the 0-based epoch before each training epoch (by
        :class:`rle.engine.SetEpochHook`). A no-op here; heads with a schedule override it
        (sampling-argmax's temperature)."""

    # -- uncertainty ------------------------------------------------------------------------------
    def predictive_sigma(self, feats_or_output) -> Optional[torch.Tensor]:
        """The per-axis scale ``(B, K, D)`` of the predictive density (normalised units), or
        ``None``: here ``HeadOutput.sigma`` (``None`` for a plain regression head, which
        predicts a point and no density)."""
        return self._output(feats_or_output).sigma

    def interval_scale(self, levels: Sequence[float]) -> Optional[Dict[float, float]]:
        """``{level: k}`` such that ``coords +- k * sigma`` is the ``level`` interval of each
        coordinate under the head's own predictive density, or ``None`` where the head defines
        none (here; see :class:`heads.RLELossMixin` and :class:`HeatmapHead`)."""
        return None

    def log_likelihood(self, feats_or_output, target: torch.Tensor) -> Optional[torch.Tensor]:
        """Log density of ``target`` under the head's predictive density: a proper scoring rule
        (its negative, the NLL, is lowest in expectation for the true distribution).

        Args:
            feats_or_output: backbone features or this head's :class:`HeadOutput`.
            target: ``(B, K, D)`` normalised coordinates.

        Returns:
            ``(B, K)`` nats per unit of normalised volume (the density of the D-dim location in
            normalised crop units: heads compare at equal D), or ``None`` where the head has no
            density (here: :class:`heads.RegressionHead`).
        """
        if not isinstance(target, torch.Tensor):
            raise TypeError(f"target must be a torch.Tensor (B, K, D), got {type(target).__name__}")
        if target.dim() != 3 or tuple(target.shape[1:]) != (self.num_keypoints, self.num_dims):
            raise ValueError(
                f"target must have shape (B, K, D) = (B, {self.num_keypoints}, {self.num_dims}), "
                f"got {tuple(target.shape)}"
            )
        return None

    def residual_density(self, grid) -> Optional[np.ndarray]:
        """The density the head learned for one coordinate of the normalised residual
        ``(coords - target) / sigma``, on ``grid`` ``(G,)`` (units of sigma), or ``None``."""
        return None


def heatmap_trunk(
    in_channels: int,
    deconv_channels: Sequence[int] = (256, 256, 256),
    deconv_kernel: int = 4,
    conv_channels: Sequence[int] = (),
) -> nn.Sequential:
    """The SimpleBaseline trunk shared by every heatmap head: ``ConvTranspose2d(k=4, s=2) + BN +
    ReLU`` per entry of ``deconv_channels`` (each doubles the resolution), then optional
    ``3x3 conv + BN + ReLU`` layers. Returns the trunk; its output has ``out_channels``
    attribute."""
    if deconv_kernel not in (2, 3, 4):
        raise ValueError(f"deconv_kernel must be 2, 3 or 4, got {deconv_kernel}")
    padding, output_padding = {4: (1, 0), 3: (1, 1), 2: (0, 0)}[deconv_kernel]
    layers = []
    channels = in_channels
    for out in deconv_channels:
        layers += [
            nn.ConvTranspose2d(
                channels,
                out,
                deconv_kernel,
                stride=2,
                padding=padding,
                output_padding=output_padding,
                bias=False,
            ),
            nn.BatchNorm2d(out),
            nn.ReLU(inplace=True),
        ]
        channels = out
    for out in conv_channels:
        layers += [
            nn.Conv2d(channels, out, 3, padding=1, bias=False),
            nn.BatchNorm2d(out),
            nn.ReLU(inplace=True),
        ]
        channels = out
    trunk = nn.Sequential(*layers)
    trunk.out_channels = channels
    return trunk


class HeatmapHead(BaseHead):
    """Shared body of the heatmap heads: trunk -> 1x1 conv -> logits -> heatmaps -> coords.

    Args:
        *args, **kwargs: ``in_channels``, ``num_keypoints``, ``num_dims``, ``loss_weight``,
            ``init_cfg`` of :class:`BaseHead`.
        depth_bins: Dz of the volumetric 3-D mode (``num_dims=3``): the final conv predicts
            ``K * Dz`` channels reshaped to ``(B, K, Dz, H, W)``.
        deconv_channels, deconv_kernel, conv_channels: the trunk (:func:`heatmap_trunk`).
        beta: inverse temperature of the softmax.
        loss: coordinate loss kind (``"l1"``, ``"l2"``, ``"smooth_l1"``, ``"euclidean"``).
        grid: where the decoded coordinates put bin ``j`` of an axis of ``m`` bins (input size
            ``n`` px along it, stride ``n / m``). ``"center"`` (default): the bin centre,
            normalised ``(j + 0.5)/m - 0.5`` (crop px ``(j + 0.5) * stride - 0.5``).
            ``"mmpose"``: MMPose's ``IntegralRegressionHead`` / ``DSNTHead`` grid, crop px
            ``j * stride`` (``arange(m)/m`` in its ``u/n`` frame), i.e. normalised
            ``(j * stride + 0.5)/n - 0.5``: our grid shifted by the constant
            ``delta = 0.5/n - 0.5/m`` per axis (-3.5 crop px at stride 8; see
            :meth:`grid_offset`). Each map sums to 1, so the expectation (and the debiased one,
            and every sampling-argmax sample) on that grid is ours plus ``delta`` exactly: the
            offset is added to the coordinates, and the DSNT regularisers place their target
            Gaussian at ``target - delta`` on the map. It exists to reproduce MMPose
            checkpoints: a constant shift of the output that no conversion of the weights can
            express. The depth axis of a volumetric map (``num_dims=3``) is never shifted
            (MMPose has no 3-D integral head).
        input_size: ``(w, h)`` of the input crop in px (two positive ints); required when
            ``grid="mmpose"`` (``n`` above), optional otherwise.
        keypoint_scores: ``"peak"`` (default): the heatmap's peak probability
            (:func:`heads.functional.heatmap_confidence`; a head with its own confidence, such as
            :class:`heads.HeatmapRLEHead`, keeps it); ``"one"``: the constant 1.0 MMPose's
            integral heads report for every keypoint.

    The map is the head's predictive density: ``Prediction.sigma`` is its per-axis standard
    deviation (:meth:`predictive_sigma`), :meth:`interval_scale` the Gaussian quantiles (a
    normal approximation of the map; post-hoc calibration, :mod:`rle.calibration`, corrects the
    shape) and :meth:`log_likelihood` the map's piecewise-constant density at the target.
    ``HeadOutput.sigma`` stays ``None``: the losses read a non-``None`` sigma as RLE's.
    """

    #: accepted values of ``grid``
    GRIDS = ("center", "mmpose")
    #: accepted values of ``keypoint_scores``
    KEYPOINT_SCORES = ("peak", "one")
    #: floor on a bin's probability in :meth:`log_likelihood` (a target off the map, or on an
    #: empty bin, would score -inf and make every mean -inf)
    MIN_BIN_PROB = 1e-12
    #: the map's spread, in ``Prediction.sigma`` only
    has_sigma = True

    default_init_cfg = [
        dict(type="Normal", layer=["ConvTranspose2d"], std=0.001),
        dict(type="Constant", layer="BatchNorm2d", val=1, bias=0),
        dict(type="Normal", layer=["Conv2d"], std=0.001, bias=0),
    ]

    def __init__(
        self,
        *args,
        depth_bins: int = 64,
        deconv_channels: Sequence[int] = (256, 256, 256),
        deconv_kernel: int = 4,
        conv_channels: Sequence[int] = (),
        beta: float = 1.0,
        loss: str = "l1",
        grid: str = "center",
        input_size: Optional[Sequence[int]] = None,
        keypoint_scores: str = "peak",
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        if grid not in self.GRIDS:
            raise ValueError(f"grid must be one of {self.GRIDS}, got {grid!r}")
        if keypoint_scores not in self.KEYPOINT_SCORES:
            raise ValueError(
                f"keypoint_scores must be one of {self.KEYPOINT_SCORES}, got {keypoint_scores!r}"
            )
        if input_size is not None:
            if (
                isinstance(input_size, (str, bytes))
                or not isinstance(input_size, Sequence)
                or len(input_size) != 2
                or any(
                    not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 1
                    for v in input_size
                )
            ):
                raise ValueError(
                    f"input_size must be (w, h), two positive ints, got {input_size!r}"
                )
            input_size = (int(input_size[0]), int(input_size[1]))
        elif grid == "mmpose":
            raise ValueError('input_size (w, h) of the input crop is required with grid="mmpose"')
        self.grid = grid
        self.input_size = input_size
        self.keypoint_scores = keypoint_scores
        if self.num_dims == 3 and (not isinstance(depth_bins, int) or depth_bins < 1):
            raise ValueError(f"depth_bins must be a positive int, got {depth_bins!r}")
        if not beta > 0:
            raise ValueError(f"beta must be positive, got {beta!r}")
        self.depth_bins = depth_bins if self.num_dims == 3 else 1
        self.beta = float(beta)
        self.loss_kind = loss
        if loss not in COORDINATE_LOSSES:
            raise ValueError(f"loss must be one of {COORDINATE_LOSSES}, got {loss!r}")
        self.trunk = heatmap_trunk(self.in_channels, deconv_channels, deconv_kernel, conv_channels)
        self.final = nn.Conv2d(self.trunk.out_channels, self.num_keypoints * self.depth_bins, 1)

    def heatmap_logits(self, feats: Feats) -> torch.Tensor:
        """Unnormalised maps ``(B, K, H, W)`` or ``(B, K, Dz, H, W)``."""
        x = self.final(self.trunk(self._feature_map(feats)))
        b, _, h, w = x.shape
        if self.num_dims == 3:
            return x.view(b, self.num_keypoints, self.depth_bins, h, w)
        return x

    def decode(self, logits: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        """coords ``(B, K, D)`` from the maps; heads override."""
        raise NotImplementedError

    def grid_offset(self, maps: torch.Tensor) -> Optional[torch.Tensor]:
        """The ``(D,)`` offset, in normalised units, of the ``grid`` the coordinates are decoded
        on relative to the bin-centre grid of :mod:`rle.coords`, or ``None`` for
        ``grid="center"``.

        ``"mmpose"``: ``0.5/n - 0.5/m`` per axis, ``x`` from ``W`` and ``input_size[0]``, ``y``
        from ``H`` and ``input_size[1]``; ``z`` (volumetric maps) 0.

        Args:
            maps: heatmaps or logits ``(B, K, [Dz,] H, W)`` (only the sizes, dtype and device
                are used).
        """
        if self.grid == "center":
            return None
        h, w = maps.shape[-2:]
        offset = [0.5 / self.input_size[0] - 0.5 / w, 0.5 / self.input_size[1] - 0.5 / h]
        offset += [0.0] * (self.num_dims - 2)
        return torch.tensor(offset, dtype=maps.dtype, device=maps.device)

    def forward(self, feats: Feats) -> HeadOutput:
        logits = self.heatmap_logits(feats)
        with full_precision(logits):  # the trunk under autocast, the decoding in float32
            logits = upcast(logits)
            heatmaps = spatial_softmax(logits, self.beta)
            coords = self.decode(logits, heatmaps)
            offset = self.grid_offset(heatmaps)
            if offset is not None:
                coords = coords + offset
        return HeadOutput(coords=coords, heatmaps=heatmaps, logits=logits)

    def scores(self, output: HeadOutput) -> torch.Tensor:
        """``keypoint_scores="peak"``: the peak probability of each map; ``"one"``: ones."""
        if self.keypoint_scores == "one":
            return output.coords.new_ones(output.coords.shape[:2])
        return heatmap_confidence(output.heatmaps)

    def predictive_sigma(self, feats_or_output) -> torch.Tensor:
        """The map's per-axis standard deviation ``(B, K, D)`` in normalised units,
        ``sqrt`` of :func:`heads.functional.heatmap_variance` (the bin-centre grid; ``grid``
        shifts it by a constant, which leaves the spread unchanged). ``>= 0``: a one-hot map
        gives 0. Its guards take their branch-free path while exporting
        (:func:`heads.functional._maps.exporting`): it exports with the coordinates."""
        output = self._output(feats_or_output)
        return heatmap_variance(output.heatmaps).sqrt()

    def interval_scale(self, levels: Sequence[float]) -> Optional[Dict[float, float]]:
        """Standard normal quantiles ``{level: k}`` with ``P(|u| <= k) = level``
        (:func:`rle.evaluation.functional.residual_quantile` ``"gaussian"``): ``coords +- k *
        sigma`` under a normal approximation of the map. The map is often far from normal
        (heavy background mass, several modes); post-hoc calibration
        (:mod:`rle.calibration`) corrects the shape."""
        return {float(lv): residual_quantile(float(lv), "gaussian") for lv in levels}

    def log_likelihood(self, feats_or_output, target: torch.Tensor) -> Optional[torch.Tensor]:
        """Log density ``(B, K)`` of ``target`` ``(B, K, D)`` (normalised, on the decoding
        grid) under the map read as a piecewise-constant density: bin probability over bin
        volume (:func:`heads.functional.heatmap_log_likelihood`). A target off the map, or in a
        bin of probability below :attr:`MIN_BIN_PROB`, gets the floor
        ``log(MIN_BIN_PROB) + log(number of bins)``, so means stay finite."""
        output = self._output(feats_or_output)
        self._check_target(output, target, None)
        return heatmap_log_likelihood(
            output.heatmaps,
            target,
            offset=self.grid_offset(output.heatmaps),
            min_prob=self.MIN_BIN_PROB,
        )

    def coordinate_loss(self, coords, target, target_weight) -> torch.Tensor:
        return self.loss_weight * coordinate_loss(
            coords, target, target_weight, kind=self.loss_kind
        )

    def loss(self, feats_or_output, target, target_weight=None) -> Dict[str, torch.Tensor]:
        output = self._output(feats_or_output)
        self._check_target(output, target, target_weight)
        return {"loss_kpt": self.coordinate_loss(output.coords, target, target_weight)}
