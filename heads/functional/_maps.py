"""What every decoder shares: input validation, per-axis marginals and the cached bin grid.

Shape letters: B batch, K keypoints, D coordinate dims, H/W map size (Dz depth bins), S samples.
"""

from __future__ import annotations

import functools
import math
import sys
from typing import List, Tuple

import torch

from rle.coords import coordinate_grid

__all__: List[str] = []  # private to heads.functional


def spatial_dims(maps: torch.Tensor, name: str, extra: int = 0) -> int:
    """Number of coordinate dims D of ``maps`` shaped ``(B, K, [S,]*spatial)``.

    Args:
        maps: the tensor to check.
        name: the argument's name, for the error messages.
        extra: number of leading non-spatial dims after ``(B, K)`` (1 for samples S).

    Raises:
        TypeError: ``maps`` is not a floating-point tensor.
        ValueError: ``maps`` has no 1, 2 or 3 spatial dims.
    """
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(maps).__name__}")
    if not maps.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {maps.dtype}")
    d = maps.dim() - 2 - extra
    if d not in (1, 2, 3):
        lead = "(B, K, S, " if extra else "(B, K, "
        raise ValueError(
            f"{name} must have shape {lead}W), {lead}H, W) or {lead}Dz, H, W), "
            f"got {tuple(maps.shape)}"
        )
    return d


def check_coords(coords: torch.Tensor, maps: torch.Tensor, d: int, name: str) -> None:
    """Raise unless ``coords`` is a tensor ``(B, K, D)`` matching ``maps`` ``(B, K, ...)``."""
    if not isinstance(coords, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(coords).__name__}")
    if coords.shape != (*maps.shape[:2], d):
        raise ValueError(
            f"{name} must have shape (B, K, D) = {(*maps.shape[:2], d)}, got {tuple(coords.shape)}"
        )


def check_positive(name: str, value: float) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a positive finite number."""
    if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def sizes_xyz(maps: torch.Tensor, d: int) -> Tuple[int, ...]:
    """Map sizes in coordinate order ``(W, H, Dz)`` of the last ``d`` dims of ``maps``."""
    return tuple(maps.shape[-1 - i] for i in range(d))


def marginals(heatmaps: torch.Tensor, d: int) -> List[torch.Tensor]:
    """1-D marginals ``(..., n_axis)`` of the last ``d`` dims, in coordinate order (x first)."""
    if d == 1:
        return [heatmaps]
    if d == 2:
        return [heatmaps.sum(-2), heatmaps.sum(-1)]
    plane = heatmaps.sum(-3)  # (.., H, W): shared by x and y
    return [plane.sum(-2), plane.sum(-1), heatmaps.sum((-2, -1))]


def exporting() -> bool:
    """Whether a graph is being recorded for export (``torch.export``, the ONNX exporters,
    TorchScript tracing) rather than run eagerly.

    The decoders' cheap guards (``bool`` of a reduction, to skip work on finite maps) are
    data-dependent control flow: ``torch.export`` refuses them and tracing would bake in the
    branch of the example input. While exporting, the decoders take their branch-free path,
    which gives the same values on every input (see :func:`finite_logits`).
    """
    # torch.compiler.is_exporting is missing before torch 2.5 (the project supports 2.4)
    is_exporting = getattr(torch.compiler, "is_exporting", None)
    # torch.onnx is imported lazily by torch: an ONNX export has imported it, and eager code
    # need not import it just to ask
    onnx = sys.modules.get("torch.onnx")
    return bool(
        (is_exporting is not None and is_exporting())
        or torch.jit.is_tracing()
        or (onnx is not None and onnx.is_in_onnx_export())
    )


@functools.lru_cache(maxsize=64)
def _cached_grid(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return coordinate_grid(n, dtype=dtype, device=device)


def bin_grid(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """:func:`rle.coords.coordinate_grid` ``(n,)``, cached: decoders run every step on the same
    few sizes (callers never modify it in place). Not cached while :func:`exporting`: a grid
    made under the exporter's fake tensors must not reach later eager calls, and a graph should
    compute its own grid rather than capture an outside tensor."""
    if exporting():
        return coordinate_grid(n, dtype=dtype, device=device)
    return _cached_grid(n, dtype, device)


class _FiniteClamp(torch.autograd.Function):
    """Clamp to the dtype's finite range with the gradient passed through unchanged: exact for
    finite inputs (where the clamp is the identity) without clamp's masked backward pass."""

    @staticmethod
    def forward(ctx, x):
        info = torch.finfo(x.dtype)
        return x.clamp(info.min, info.max)

    @staticmethod
    def backward(ctx, grad):
        return grad


def finite_logits(logits: torch.Tensor) -> torch.Tensor:
    """``logits`` clamped to the dtype's finite range, what softmax and logsumexp can take.

    softmax of a map with ``+inf`` bins is NaN (``inf - inf``); clamped, those bins hold the
    largest value and share the mass equally (every finite bin gets ``exp(x - max) = 0``), the
    limit of raising them together. An all ``-inf`` map becomes equal values: uniform, the limit
    of equal logits. On finite logits this is the identity, in value and gradient (bit for bit);
    NaN stays NaN.

    ``logits`` are flattened maps ``(..., N)``. The clamp (a map-sized copy) runs only when some
    map's maximum is infinite: the check is one read-only reduction, so finite maps, the every-
    step case, cost a fraction of a softmax instead of a copy (the soft-argmax benchmark).
    While :func:`exporting` the clamp always runs, as a plain ``clamp`` (same values; the check
    would be data-dependent control flow, and the graph needs no custom backward).
    """
    if exporting():
        info = torch.finfo(logits.dtype)
        return logits.clamp(info.min, info.max)
    if not bool(torch.isinf(logits.amax(-1)).any()):
        return logits
    return _FiniteClamp.apply(logits)


def limit_logits(flat: torch.Tensor) -> torch.Tensor:
    """Flattened logits ``(..., N)`` with each map whose maximum is infinite replaced by its
    limit: 0 at the maximum bins and ``-inf`` elsewhere (a ``+inf`` map puts its mass on its
    ``+inf`` bins, an all ``-inf`` map is uniform), as :func:`finite_logits` does, but robust to
    any later shift and scale (``(h + g) / tau``). Other maps are returned unchanged, bit for
    bit; the gradient to a replaced map is 0."""
    top = flat.amax(-1, keepdim=True)
    limit = torch.zeros_like(flat).masked_fill_(flat != top, float("-inf"))
    return torch.where(torch.isinf(top), limit, flat)


def limit_marginals(heatmaps: torch.Tensor, d: int) -> List[torch.Tensor]:
    """:func:`marginals` of probability maps, where a map with ``+inf`` entries (an overflowed
    unnormalised map) is read as uniform over those entries, its limit once normalised.

    The ``+inf`` entries are counted on the detached maps, so ``heatmaps`` has the same consumers
    in the autograd graph as with :func:`marginals`, and finite maps get the same values and
    gradients, bit for bit (another consumer would change the order in which the gradients of a
    head's several terms are summed). The gradient to a map with ``+inf`` entries is 0.
    """
    plain = marginals(heatmaps, d)
    # every finite map has a finite marginal sum (or an overflowing one, which the exact check
    # below leaves unchanged too): one look at the small (B, K) sums spares the map-sized passes.
    # An exported graph always takes the full path below: the same values, no data-dependent
    # branch
    if not exporting() and bool(torch.isfinite(plain[0].sum(-1)).all()):
        return plain
    # 1 exactly at +inf (every finite value is <= max), 0 elsewhere; cheaper than a bool cast
    at_inf = (heatmaps.detach() - torch.finfo(heatmaps.dtype).max).clamp_(0, 1)
    counts = marginals(at_inf, d)
    special = counts[0].sum(-1, keepdim=True) > 0
    return [torch.where(special, c / c.sum(-1, keepdim=True), m) for m, c in zip(plain, counts)]


def limit_peak(heatmaps: torch.Tensor, d: int) -> torch.Tensor:
    """The peak probability of each map ``(B, K)``, ``1 / count`` for a map with ``count``
    ``+inf`` entries (as :func:`limit_marginals` reads it)."""
    flat = heatmaps.flatten(-d)
    peak = flat.amax(dim=-1)
    # == inf rather than isposinf (the same mask): the TorchScript ONNX exporter has no isposinf
    count = (flat == math.inf).sum(-1).to(peak.dtype)
    return torch.where(count > 0, 1 / count, peak)
