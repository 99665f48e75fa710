"""Argument checks shared by the synthetic-set writers.

Each check returns the value in the type recorded in ``root/.complete`` and raises TypeError
or ValueError with a message that names the argument.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Tuple, Union

import numpy as np

__all__ = ["PathLike", "check_int", "check_number", "check_root", "check_seed", "check_size"]

PathLike = Union[str, "os.PathLike[str]"]


def _is_int(value: Any) -> bool:
    # bool is an int subclass, but True is no image count
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def check_root(root: Any) -> Path:
    """A str or path-like output folder -> Path."""
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a str or path, got {type(root).__name__}")
    return Path(root)


def check_int(value: Any, name: str, minimum: int) -> int:
    """An int (numpy ints too, not bool) of at least ``minimum``."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_size(image_size: Any) -> Tuple[int, int]:
    """``(width, height)`` in pixels, each an int >= 32."""
    try:
        w, h = image_size
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be (width, height), got {image_size!r}") from None
    for v in (w, h):
        if not _is_int(v):
            raise TypeError(f"image_size must hold ints, got {image_size!r}")
        if v < 32:
            raise ValueError(f"image_size sides must be >= 32 pixels, got {image_size!r}")
    return int(w), int(h)


def check_seed(seed: Any) -> int:
    """A non-negative int seed."""
    if not _is_int(seed):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return int(seed)


def check_number(value: Any, name: str, lo: float, hi: float) -> float:
    """A finite int or float (not bool) in ``[lo, hi]`` -> float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not lo <= value <= hi or not math.isfinite(value):
        raise ValueError(f"{name} must be in [{lo:g}, {hi:g}], got {value!r}")
    return float(value)
