"""What every decoder shares: input validation, per-axis marginals and the cached bin grid.

Shape letters: B batch, K keypoints, D coordinate dims, H/W map size (Dz depth bins), S samples.
"""

from __future__ import annotations

import functools
import math
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


@functools.lru_cache(maxsize=64)
def bin_grid(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """:func:`rle.coords.coordinate_grid` ``(n,)``, cached: decoders run every step on the same
    few sizes (callers never modify it in place)."""
    return coordinate_grid(n, dtype=dtype, device=device)
