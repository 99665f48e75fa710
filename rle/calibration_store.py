"""Where an interval calibration lives: a JSON side file or a checkpoint's metadata.

A :class:`rle.calibration.Calibration` converts to plain builtins
(:meth:`~rle.calibration.Calibration.to_dict`), so it can sit in a checkpoint's
``meta["rle_pose"]["calibration"]`` (read by the restricted unpickler) or in a JSON side file
(:func:`save_calibration`, :func:`load_calibration`) next to the checkpoint,
``CKPT.calibration.json`` (:func:`calibration_path`); :func:`find_calibration` looks for both,
the side file first (fitted after the checkpoint was written, it is the newer one).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from rle.calibration import Calibration

__all__ = [
    "calibration_from_checkpoint",
    "calibration_path",
    "check_calibration_keypoints",
    "find_calibration",
    "load_calibration",
    "resolve_calibration",
    "save_calibration",
]


def save_calibration(calibration: Calibration, path) -> Path:
    """Write ``calibration`` as a JSON side file (atomically: a crash leaves the old file).

    Returns:
        the path written.
    """
    if not isinstance(calibration, Calibration):
        raise TypeError(f"calibration must be a Calibration, got {type(calibration).__name__}")
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(calibration.to_dict(), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


def load_calibration(path) -> Calibration:
    """Read a JSON side file of :func:`save_calibration`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the file: not JSON, or not a valid calibration.
    """
    path = Path(path)
    text = path.read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a calibration file (invalid JSON: {err})") from None
    return Calibration.from_dict(data, source=str(path))


def calibration_from_checkpoint(
    checkpoint: Mapping, source: str = "checkpoint"
) -> Optional[Calibration]:
    """The :class:`Calibration` in ``checkpoint["meta"]["rle_pose"]["calibration"]``, or None
    when the checkpoint carries none.

    Raises:
        TypeError: ``checkpoint`` is not a dict.
        ValueError: naming ``source``: the stored calibration is malformed.
    """
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f"checkpoint must be a dict, got {type(checkpoint).__name__}")
    meta = checkpoint.get("meta")
    info = meta.get("rle_pose") if isinstance(meta, Mapping) else None
    data = info.get("calibration") if isinstance(info, Mapping) else None
    if data is None:
        return None
    return Calibration.from_dict(data, source=f"{source}: meta['rle_pose']['calibration']")


def calibration_path(checkpoint) -> Path:
    """The side file of a checkpoint: ``CKPT.calibration.json`` beside ``CKPT``."""
    path = Path(checkpoint)
    return path.with_name(path.name + ".calibration.json")


def find_calibration(
    checkpoint_path, checkpoint: Optional[Mapping] = None
) -> Optional[Calibration]:
    """The calibration of a checkpoint: its side file (:func:`calibration_path`) if there is
    one, else ``meta["rle_pose"]["calibration"]`` of the loaded ``checkpoint`` dict, else None.

    Raises:
        ValueError: naming the file: a side file or stored calibration that is malformed.
    """
    side = calibration_path(checkpoint_path)
    if side.is_file():
        return load_calibration(side)
    if checkpoint is None:
        return None
    return calibration_from_checkpoint(checkpoint, source=str(checkpoint_path))


def check_calibration_keypoints(
    calibration: Any, num_keypoints: int, source: str = "calibration"
) -> Calibration:
    """``calibration`` if it is a :class:`Calibration` fitted on ``num_keypoints`` keypoints.

    Raises:
        TypeError: not a :class:`Calibration`.
        ValueError: naming ``source``: fitted on another number of keypoints.
    """
    if not isinstance(calibration, Calibration):
        raise TypeError(
            f"{source}: expected a rle.calibration.Calibration, got {type(calibration).__name__}"
        )
    if calibration.num_keypoints != num_keypoints:
        raise ValueError(
            f"{source}: fitted on {calibration.num_keypoints} keypoints, the model has "
            f"{num_keypoints}"
        )
    return calibration


def resolve_calibration(
    calibration: Any, checkpoint_path=None, checkpoint: Optional[Mapping] = None,
    num_keypoints: Optional[int] = None,
) -> Optional[Calibration]:  # fmt: skip
    """What ``calibration`` names, checked against ``num_keypoints`` (when given).

    Args:
        calibration: ``"auto"``: :func:`find_calibration` of ``checkpoint_path`` (None without
            a checkpoint or a calibration); ``None``: none; a path: :func:`load_calibration`;
            a :class:`Calibration`: itself.
        checkpoint_path, checkpoint: the checkpoint file and its loaded dict (for ``"auto"``).

    Raises:
        TypeError: ``calibration`` of another type.
        ValueError: a malformed calibration, or one of another number of keypoints (naming
            where it came from).
    """
    if calibration is None:
        return None
    if isinstance(calibration, str) and calibration == "auto":
        if checkpoint_path is None:
            return None
        source = f"{checkpoint_path} (its calibration)"
        calibration = find_calibration(checkpoint_path, checkpoint)
        if calibration is None:
            return None
    elif isinstance(calibration, (str, os.PathLike)):
        source = os.fspath(calibration)
        calibration = load_calibration(calibration)
    elif isinstance(calibration, Calibration):
        source = "calibration"
    else:
        raise TypeError(
            "calibration must be 'auto', None, a calibration JSON file or a Calibration, got "
            f"{type(calibration).__name__}"
        )
    if num_keypoints is None:
        return calibration
    return check_calibration_keypoints(calibration, num_keypoints, source)
