"""The one Head interface, and the pieces the heads share.

A head maps backbone features to keypoints. Tensors in, tensors out (never data samples):

* ``forward(feats) -> HeadOutput(coords, sigma, heatmaps, logits, sigma_logits)``
* ``loss(feats_or_output, target, target_weight=None) -> dict`` of named tensors; the keys that
  contain ``"loss"`` are summed by mmengine, the others are logged components (detached).
* ``predict(feats_or_output) -> Prediction(coords, scores, sigma)``
* ``set_epoch(epoch)``: called before every training epoch (a no-op unless the head has a
  schedule).

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

from heads.functional import heatmap_confidence, spatial_softmax
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
    ``[0, 1]``, ``sigma`` ``(B, K, D)`` or ``None``."""

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

    #: whether the head predicts sigma (and so a per-keypoint interval)
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
        """Decode for inference: ``Prediction(coords, scores, sigma)``."""
        output = self._output(feats_or_output)
        return Prediction(coords=output.coords, scores=self.scores(output), sigma=output.sigma)

    def set_epoch(self, epoch: int) -> None:
        """Called with the 0-based epoch before each training epoch (by
        :class:`rle.engine.SetEpochHook`). A no-op here; heads with a schedule override it
        (sampling-argmax's temperature)."""

    # -- uncertainty ------------------------------------------------------------------------------
    def interval_scale(self, levels: Sequence[float]) -> Optional[Dict[float, float]]:
        """``{level: k}`` such that ``coords +- k * sigma`` is the ``level`` interval of each
        coordinate under the head's own predictive density, or ``None`` where the head defines
        none (here: every head without an RLE density; see :class:`heads.RLELossMixin`)."""
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
    """

    #: accepted values of ``grid``
    GRIDS = ("center", "mmpose")
    #: accepted values of ``keypoint_scores``
    KEYPOINT_SCORES = ("peak", "one")

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

    def coordinate_loss(self, coords, target, target_weight) -> torch.Tensor:
        return self.loss_weight * coordinate_loss(
            coords, target, target_weight, kind=self.loss_kind
        )

    def loss(self, feats_or_output, target, target_weight=None) -> Dict[str, torch.Tensor]:
        output = self._output(feats_or_output)
        self._check_target(output, target, target_weight)
        return {"loss_kpt": self.coordinate_loss(output.coords, target, target_weight)}
