"""The folders the synthetic sets are written to: ownership, completion marker, lock, ensure.

A generation writes ``root/.synthetic`` (kept for good: the folder is ours), then
``root/.incomplete`` while it runs and ``root/.complete`` (its parameters as json) when it is
done. :func:`ensure` generates only when ``.complete`` is missing or records other
parameters, under a lock on a sibling file so that processes started together generate a
set once. A writer describes its set to :func:`ensure` and :func:`make` by a
:class:`SynthSet`.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Sequence, Tuple

import cv2
import numpy as np

from rle.datasets.synthetic.checks import check_root

__all__ = [
    "FORMAT_VERSION",
    "Generation",
    "SynthSet",
    "dump_json",
    "ensure",
    "finish",
    "make",
    "start",
    "write_jpeg",
]

_MARKER = ".complete"
_PENDING = ".incomplete"
_OWNER = ".synthetic"  # kept for good: the folder may be cleared even without a marker
FORMAT_VERSION = 1
_JPEG = [cv2.IMWRITE_JPEG_QUALITY, 90]


@dataclass(frozen=True)
class SynthSet:
    """One synthetic set, as :func:`ensure` and :func:`make` use it.

    Attributes:
        generate: ``generate(root, **arguments, progress=bool) -> paths``; the defaults of
            its signature are those of :func:`ensure`.
        params: ``params(**arguments) -> dict``: the checked parameters that
            ``root/.complete`` records (raises TypeError / ValueError naming the argument).
        paths: ``paths(root) -> dict`` of the files and folders a generation writes.
        num_images: ``num_images(params) -> int``, the images a generation writes.
    """

    generate: Callable[..., Dict[str, Path]]
    params: Callable[..., Dict[str, Any]]
    paths: Callable[[Path], Dict[str, Path]]
    num_images: Callable[[Dict[str, Any]], int]


# ------------------------------------------------------------------------------ output folders
def start(root: Path, params: Dict[str, Any], subdirs: Sequence[str]) -> None:
    """Clear a previous synthetic generation in ``root`` and mark this one as pending.

    Only folders a generator wrote before are cleared, so pointing a generator at a real
    dataset by mistake fails instead of deleting it.

    Args:
        root: the output folder (created).
        params: the generation's parameters (``params["generator"]`` names the set).
        subdirs: the folders below ``root`` the generation writes.

    Raises:
        FileExistsError: a non-empty ``subdirs`` folder that no generator wrote.
    """
    ours = any((root / name).exists() for name in (_MARKER, _PENDING, _OWNER))
    for sub in subdirs:
        path = root / sub
        if path.exists():
            if not ours and any(path.iterdir()):
                raise FileExistsError(
                    f"root {root} already holds {sub}/ not written by the synthetic generator"
                )
            shutil.rmtree(path)
    root.mkdir(parents=True, exist_ok=True)
    (root / _OWNER).write_text(params["generator"] + "\n")
    (root / _MARKER).unlink(missing_ok=True)
    (root / _PENDING).write_text(json.dumps(params, sort_keys=True))


def finish(root: Path, params: Dict[str, Any]) -> None:
    """Mark the generation started by :func:`start` as complete."""
    (root / _MARKER).write_text(json.dumps(params, sort_keys=True, indent=1) + "\n")
    (root / _PENDING).unlink(missing_ok=True)


def _marker_matches(root: Path, params: Dict[str, Any]) -> bool:
    try:
        # the round trip turns tuples into lists, as the marker stores them
        return json.loads((root / _MARKER).read_text()) == json.loads(json.dumps(params))
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``root``'s sibling ``.NAME.lock`` file, so that processes
    started together (``tools/compare.py --jobs``) generate a set once and the others wait
    and then find it complete. No-op where ``fcntl`` is missing (Windows)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def dump_json(obj: Any, path: Path) -> None:
    """Write ``obj`` as compact json (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))


def write_jpeg(path: Path, img: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 BGR image as a quality-90 JPEG."""
    cv2.imwrite(str(path), img, _JPEG)


# ------------------------------------------------------------------------ generate when needed
def _arguments(spec: SynthSet, kwargs: Dict[str, Any]) -> Tuple[Dict[str, Any], bool]:
    """The generator's arguments with its defaults filled in, and ``progress``."""
    params = inspect.signature(spec.generate).parameters
    kw = {name: p.default for name, p in params.items() if name not in ("root", "progress")}
    unknown = set(kwargs) - set(kw) - {"progress"}
    if unknown:
        raise TypeError(
            f"unexpected arguments {sorted(unknown)} (those of {spec.generate.__name__} are "
            f"{sorted(kw)})"
        )
    kw.update(kwargs)
    progress = kw.pop("progress", True)
    return kw, progress


def _ensure(
    spec: SynthSet, root: Path, kw: Dict[str, Any], progress: bool
) -> Tuple[Dict[str, Path], bool]:
    with _exclusive(root):
        if _marker_matches(root, spec.params(**kw)):
            return spec.paths(root), False
        return spec.generate(root, progress=progress, **kw), True


def ensure(spec: SynthSet, root: Any, /, **kwargs: Any) -> Dict[str, Path]:
    """Generate a set in ``root`` unless ``root/.complete`` records the same parameters.

    Args:
        spec: the set.
        root: dataset folder.
        **kwargs: arguments of ``spec.generate`` (defaults as there), ``progress`` included.

    Returns:
        The paths dict of ``spec.generate``.

    Raises:
        TypeError: an argument ``spec.generate`` does not take, or one of a wrong type.
        ValueError: an invalid argument value.
    """
    root = check_root(root)
    return _ensure(spec, root, *_arguments(spec, kwargs))[0]


@dataclass(frozen=True)
class Generation:
    """What :func:`make` did; ``str()`` gives the report ``tools/make_synthetic.py`` prints.

    Attributes:
        paths: the paths dict of the set's generator.
        num_images: images in the set.
        seconds: generation time, None when the folder was already up to date.
    """

    paths: Dict[str, Path]
    num_images: int
    seconds: Optional[float]

    def __str__(self) -> str:
        lines = [f"{key:>15}: {path}" for key, path in self.paths.items()]
        n = self.num_images
        if self.seconds is None:
            lines.append(f"{self.paths['root']} is up to date ({n} images), nothing generated")
        else:
            rate = n / max(self.seconds, 1e-9)
            lines.append(f"{n} images in {self.seconds:.1f} s ({rate:.0f} images/s)")
        return "\n".join(lines)


def make(spec: SynthSet, root: Any, /, if_needed: bool = False, **kwargs: Any) -> Generation:
    """Generate a set (or, with ``if_needed``, :func:`ensure` it) and time it.

    Args:
        spec: the set.
        root: dataset folder; a previous synthetic generation in it is replaced.
        if_needed: generate only when ``root/.complete`` records other parameters.
        **kwargs: arguments of ``spec.generate``, ``progress`` included.

    Returns:
        The paths, the number of images and the time taken.

    Raises:
        TypeError, ValueError: an invalid argument (the message names it).
        FileExistsError: ``root`` holds data folders no generator wrote.
    """
    root = check_root(root)
    kw, progress = _arguments(spec, kwargs)
    begin = time.perf_counter()
    if if_needed:
        paths, generated = _ensure(spec, root, kw, progress)
    else:
        paths, generated = spec.generate(root, progress=progress, **kw), True
    seconds = time.perf_counter() - begin if generated else None
    return Generation(paths, spec.num_images(spec.params(**kw)), seconds)
