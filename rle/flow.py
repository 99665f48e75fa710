"""RealNVP density of the normalised residual, built on nflows (the RLE parameterisation).

The flow follows the nflows contract: ``forward`` is data -> noise and returns
``(outputs, logabsdet)``; :meth:`RealNVP.log_prob` is ``N(0, I).log_prob(z) + logabsdet``.

Structure (identical in the official RLE code and in MMPose): ``num_layers`` affine couplings
with alternating masks (mask = 1 marks the conditioning coordinates), scale net
``Linear-LeakyReLU-Linear-LeakyReLU-Linear-Tanh`` and shift net without the ``Tanh``; both nets
see the full vector with the transformed coordinates zeroed. In the data -> noise direction the
couplings run from the last to the first (``i = L-1 .. 0``)::

    z_ = m * z;  s = S_i(z_) * (1 - m);  t = T_i(z_) * (1 - m)
    z  = (1 - m) * (z - t) * exp(-s) + z_;  logabsdet -= sum(s)

nflows 0.14's ``AffineCouplingTransform`` hard-codes ``scale = sigmoid(x + 2) + 1e-3``, so the
coupling here is a small custom :class:`nflows.transforms.base.Transform`; the composition and
the prior are nflows' ``CompositeTransform`` and ``StandardNormal``.

State dicts of the official repository (``mask``, ``s.{i}.{0,2,4}.*``, ``t.{i}.{0,2,4}.*``) and of
MMPose (the same plus ``loc`` and ``cov`` buffers) convert both ways with
:func:`from_reference_state_dict` / :func:`to_reference_state_dict`.

Shape letters: N rows (e.g. B*K), D features (2, or 3 for Human3.6M).
"""

from __future__ import annotations

import re
from typing import Dict, Mapping, Optional

import torch
from nflows.distributions.normal import StandardNormal
from nflows.flows.base import Flow
from nflows.transforms.base import CompositeTransform, Transform
from torch import nn
from torch.nn import functional as F

__all__ = [
    "AffineCoupling",
    "FlowLinear",
    "RealNVP",
    "coupling_masks",
    "from_reference_state_dict",
    "to_reference_state_dict",
]

INITS = ("near_identity", "torch_default")
#: ``RealNVP(scale=...)``: the references' free scale, or standardised to unit variance
SCALES = ("free", "variance", "median")
#: the median of |x| of a unit Gaussian coordinate, Phi^-1(0.75): ``scale="median"``'s target
_GAUSS_MEDIAN_ABS = 0.6744897501960817
#: the reference implementations whose state-dict keys :func:`to_reference_state_dict` writes
VARIANTS = ("official", "mmpose")


class FlowLinear(nn.Module):
    """A linear layer that is deliberately not an ``nn.Linear``.

    mmengine's layer-typed initialisers (``init_cfg=dict(type='Normal', layer='Linear')`` on a
    head) match modules by class name and direct base class, and silently re-draw every
    ``nn.Linear`` below the head, flow included (what happens in MMPose). A distinct class keeps
    the flow's own initialisation. State-dict keys (``weight``, ``bias``) are those of
    ``nn.Linear``.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.Linear.reset_parameters(self)  # PyTorch's default Linear init, as the official flow

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def _mlp(features: int, hidden: int, tanh: bool) -> nn.Sequential:
    layers = [
        FlowLinear(features, hidden),
        nn.LeakyReLU(),
        FlowLinear(hidden, hidden),
        nn.LeakyReLU(),
        FlowLinear(hidden, features),
    ]
    if tanh:
        layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def coupling_masks(features: int, num_layers: int) -> torch.Tensor:
    """The reference masks, ``(num_layers, features)``: ``[[0, 1], [1, 0]] * 3`` for 2-D and
    ``[[0, 0, 1], [1, 1, 0]] * 3`` for 3-D (1 = conditioning coordinate)."""
    if features < 2:
        raise ValueError(f"features must be >= 2, got {features}")
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    even = torch.zeros(features)
    even[-1] = 1.0
    return torch.stack([even if i % 2 == 0 else 1.0 - even for i in range(num_layers)])


class AffineCoupling(Transform):
    """One RLE affine coupling; ``forward`` is data -> noise.

    Args:
        mask: ``(D,)`` with 1 on the conditioning coordinates.
        hidden_features: width of the scale and shift nets.
    """

    def __init__(self, mask: torch.Tensor, hidden_features: int = 64) -> None:
        super().__init__()
        features = mask.numel()
        self.register_buffer("mask", mask.clone().float())
        self.s = _mlp(features, hidden_features, tanh=True)
        self.t = _mlp(features, hidden_features, tanh=False)

    def _scale_shift(self, inputs: torch.Tensor):
        """``(1 - m, m * x, s, t)``: the transformed-coordinate mask, the conditioning part of
        ``inputs`` and the masked scale and shift, shared by both directions."""
        m = self.mask.to(inputs.dtype)
        kept = inputs * m
        inv = 1 - m
        return inv, kept, self.s(kept) * inv, self.t(kept) * inv

    def forward(self, inputs: torch.Tensor, context=None):
        inv, kept, s, t = self._scale_shift(inputs)
        outputs = inv * (inputs - t) * torch.exp(-s) + kept
        return outputs, -s.sum(-1)

    def inverse(self, inputs: torch.Tensor, context=None):
        inv, kept, s, t = self._scale_shift(inputs)
        outputs = kept + inv * (inputs * torch.exp(s) + t)
        return outputs, s.sum(-1)


class RealNVP(Flow):
    """RLE's RealNVP on nflows: ``forward`` / :meth:`transform_to_noise` map data -> noise.

    Args:
        features: D, 2 (COCO) or 3 (Human3.6M).
        num_layers: number of couplings (6 in both references).
        hidden_features: width of the coupling nets (64 in both references).
        init: ``"near_identity"`` (default: weights Xavier-uniform with gain 0.01 as MMPose's
            ``RealNVP.init_weights``, biases zero, so the flow starts as the identity and the
            loss starts as the pure Q likelihood) or ``"torch_default"`` (PyTorch's Linear init,
            which is what the official code trains with: it never calls its init).
        scale: ``"free"`` (default, the references' flow), ``"variance"`` or ``"median"``: the
            density is standardised per coordinate, ``phi(x) = prod_d s_d * phi_raw(s * x)``,
            with ``s`` the raw flow's standard deviation (``"variance"``: unit variance) or its
            median ``|x|`` over that of a unit Gaussian (``"median"``: median ``|x|`` = 0.674),
            measured on the raw flow's samples of a fixed set of ``scale_samples`` base points
            (a buffer: deterministic, nothing drawn from the global RNG; differentiable). With
            the 2-D RLE losses only the product of sigma and the flow's scale is learned;
            pinning the scale is meant to make sigma the error's scale (an option of this
            project; no reference has it). Measured: the variance does not pin it (a spike
            with wide tails keeps variance 1, README "Uncertainty").
        scale_samples: base points of the standardisation.

    Shapes:
        ``log_prob(x)``: ``(N, D) -> (N,)``; ``forward(x)``: ``(N, D) -> ((N, D), (N,))``.
    """

    def __init__(
        self,
        features: int = 2,
        num_layers: int = 6,
        hidden_features: int = 64,
        init: str = "near_identity",
        scale: str = "free",
        scale_samples: int = 2048,
    ) -> None:
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
        if not isinstance(scale_samples, int) or scale_samples < 2:
            raise ValueError(f"scale_samples must be an int >= 2, got {scale_samples!r}")
        masks = coupling_masks(features, num_layers)
        couplings = [AffineCoupling(masks[i], hidden_features) for i in range(num_layers)]
        # data -> noise runs the couplings from the last to the first, as the reference
        super().__init__(CompositeTransform(couplings[::-1]), StandardNormal([features]))
        self.features = features
        self.num_layers = num_layers
        self.hidden_features = hidden_features
        self.init = init
        self.scale = scale
        if scale != "free":
            base = torch.randn(scale_samples, features, generator=torch.Generator().manual_seed(0))
            # not persistent: the state dict keeps the references' keys
            self.register_buffer("scale_noise", base, persistent=False)
        self.init_weights()

    # -- nflows direction helpers -------------------------------------------------------------
    def forward(self, inputs: torch.Tensor, context=None):
        """Data -> noise: ``(N, D) -> (z (N, D), logabsdet (N,))``."""
        self._check(inputs)
        if self.scale == "free":
            return self._transform(inputs, context=context)
        s = self.unit_scale()
        z, logabsdet = self._transform(inputs * s.to(inputs.dtype), context=context)
        return z, logabsdet + s.log().sum().to(logabsdet.dtype)

    def inverse(self, noise: torch.Tensor, context=None):
        """Noise -> data: ``(N, D) -> (x (N, D), logabsdet (N,))``."""
        self._check(noise)
        if self.scale == "free":
            return self._transform.inverse(noise, context=context)
        s = self.unit_scale()
        x, logabsdet = self._transform.inverse(noise, context=context)
        return x / s.to(x.dtype), logabsdet - s.log().sum().to(logabsdet.dtype)

    def log_prob(self, inputs: torch.Tensor, context=None) -> torch.Tensor:
        """``log N(0, I)(z) + logabsdet`` of ``inputs`` ``(N, D)`` -> ``(N,)``."""
        self._check(inputs)
        if self.scale == "free":
            return super().log_prob(inputs, context)
        z, logabsdet = self.forward(inputs, context)
        return self._distribution.log_prob(z, context) + logabsdet

    def unit_scale(self) -> torch.Tensor:
        """``(D,)``: the raw flow's scale on :attr:`scale_noise`'s samples (``scale=
        "variance"``: their std; ``"median"``: their median ``|x|`` / 0.674); the raw flow's
        data divided by it has unit variance, or a unit Gaussian's median ``|x|``."""
        if self.scale == "free":
            raise ValueError("unit_scale needs scale='variance' or 'median'")
        raw, _ = self._transform.inverse(self.scale_noise)  # a buffer: the flow's device, dtype
        if self.scale == "variance":
            return raw.std(0).clamp_min(1e-6)
        return (raw.abs().median(0).values / _GAUSS_MEDIAN_ABS).clamp_min(1e-6)

    def _check(self, inputs: torch.Tensor) -> None:
        if not isinstance(inputs, torch.Tensor):
            raise TypeError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
        if inputs.dim() != 2 or inputs.shape[1] != self.features:
            raise ValueError(
                f"inputs must have shape (N, {self.features}), got {tuple(inputs.shape)}"
            )

    @property
    def couplings(self):
        """The couplings in reference order ``0 .. L-1`` (noise -> data order)."""
        return list(self._transform._transforms)[::-1]

    # -- initialisation -------------------------------------------------------------------------
    def init_weights(self) -> None:
        """(Re)initialise the flow with its own scheme.

        mmengine's ``BaseModule.init_weights`` calls ``init_weights`` of children that have one
        after applying the parent's ``init_cfg``, so a parent's initialisation never replaces
        the flow's (see also :class:`FlowLinear`).
        """
        for module in self.modules():
            if isinstance(module, FlowLinear):
                if self.init == "torch_default":
                    module.reset_parameters()
                else:
                    nn.init.xavier_uniform_(module.weight, gain=0.01)
                    nn.init.zeros_(module.bias)

    def extra_repr(self) -> str:
        return (
            f"features={self.features}, num_layers={self.num_layers}, "
            f"hidden_features={self.hidden_features}, init={self.init!r}"
            + (f", scale={self.scale!r}" if self.scale != "free" else "")
        )

    # -- reference state dicts ------------------------------------------------------------------
    def load_reference_state_dict(
        self, state_dict: Mapping[str, torch.Tensor], prefix: str = "", strict: bool = True
    ):
        """Load an official-RLE or MMPose flow state dict (optionally under ``prefix``, e.g.
        ``"flow."``, ``"flow3d."``, ``"head.loss_module.flow_model."``)."""
        converted = from_reference_state_dict(state_dict, self.num_layers, prefix=prefix)
        return self.load_state_dict(converted, strict=strict)

    def reference_state_dict(self, variant: str = "official") -> Dict[str, torch.Tensor]:
        """This flow's weights under the reference keys of ``variant`` (``"official"`` or
        ``"mmpose"``, see :func:`to_reference_state_dict`)."""
        return to_reference_state_dict(self.state_dict(), variant=variant)


_REF_KEY = re.compile(r"^(s|t)\.(\d+)\.(\d+)\.(weight|bias)$")
_OUR_KEY = re.compile(r"^_transform\._transforms\.(\d+)\.(s|t)\.(\d+)\.(weight|bias)$")
_OUR_MASK = re.compile(r"^_transform\._transforms\.(\d+)\.mask$")


def from_reference_state_dict(
    state_dict: Mapping[str, torch.Tensor], num_layers: Optional[int] = None, prefix: str = ""
) -> Dict[str, torch.Tensor]:
    """Official / MMPose flow keys -> :class:`RealNVP` keys.

    Args:
        state_dict: a flow state dict, or a whole checkpoint state dict with ``prefix``.
        num_layers: number of couplings; inferred from the keys when ``None``.
        prefix: key prefix to select and strip (e.g. ``"flow."``).

    Raises:
        ValueError: unknown keys, a missing ``mask``, or MMPose ``loc``/``cov`` buffers that
            are not a standard normal (the reference prior is N(0, I)).
    """
    sub = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if "mask" not in sub:
        raise ValueError(f"state_dict has no '{prefix}mask' key: not an RLE flow state dict")
    masks = sub.pop("mask")
    loc, cov = sub.pop("loc", None), sub.pop("cov", None)
    if loc is not None and (loc.abs().max() > 0):
        raise ValueError("MMPose flow buffer 'loc' must be zero (the prior is N(0, I))")
    if cov is not None and not torch.equal(cov, torch.eye(cov.shape[0], dtype=cov.dtype)):
        raise ValueError("MMPose flow buffer 'cov' must be the identity (the prior is N(0, I))")
    layers = masks.shape[0] if num_layers is None else num_layers
    if masks.shape[0] != layers:
        raise ValueError(f"'mask' has {masks.shape[0]} rows, expected num_layers={layers}")
    out: Dict[str, torch.Tensor] = {}
    for i in range(layers):
        out[f"_transform._transforms.{layers - 1 - i}.mask"] = masks[i].clone()
    for key, value in sub.items():
        match = _REF_KEY.match(key)
        if match is None:
            raise ValueError(f"unexpected key {prefix + key!r} in an RLE flow state dict")
        net, i, idx, kind = match.groups()
        out[f"_transform._transforms.{layers - 1 - int(i)}.{net}.{idx}.{kind}"] = value
    return out


def to_reference_state_dict(
    state_dict: Mapping[str, torch.Tensor], variant: str = "official"
) -> Dict[str, torch.Tensor]:
    """:class:`RealNVP` keys -> the keys of a reference implementation.

    Args:
        state_dict: a :class:`RealNVP` state dict.
        variant: which reference: ``"official"`` (the RLE repository) or ``"mmpose"`` (the
            same keys plus the ``loc`` / ``cov`` buffers of MMPose's prior).

    Raises:
        ValueError: an unknown ``variant``, or keys that are not a :class:`RealNVP`'s.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    masks: Dict[int, torch.Tensor] = {}
    nets: Dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        match = _OUR_MASK.match(key)
        if match:
            masks[int(match.group(1))] = value
            continue
        match = _OUR_KEY.match(key)
        if match is None:
            raise ValueError(f"unexpected key {key!r} in a RealNVP state dict")
        j, net, idx, kind = match.groups()
        nets[f"{net}.{j}.{idx}.{kind}"] = value
    layers = len(masks)
    if layers == 0:
        raise ValueError("state_dict has no coupling masks: not a RealNVP state dict")
    out: Dict[str, torch.Tensor] = {
        "mask": torch.stack([masks[layers - 1 - i] for i in range(layers)])
    }
    # official module order: t nets, then s nets (so the dict iterates like the reference)
    for net in ("t", "s"):
        for i in range(layers):
            for idx in (0, 2, 4):
                for kind in ("weight", "bias"):
                    out[f"{net}.{i}.{idx}.{kind}"] = nets[f"{net}.{layers - 1 - i}.{idx}.{kind}"]
    if variant == "mmpose":
        dim = out["mask"].shape[1]
        out["loc"] = torch.zeros(dim)
        out["cov"] = torch.eye(dim)
    return out
