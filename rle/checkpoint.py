"""Checkpoints that survive a crash at any moment, and resuming from them.

* :func:`atomic_write_bytes`: write a temporary file in the target's folder, fsync it,
  ``os.replace`` it into place, fsync the folder. A reader (or a crash) sees the old file or
  the new one, never half of one. :class:`AtomicLocalBackend` is mmengine's local file backend
  writing this way.
* :class:`AtomicCheckpointHook` (``default_hooks.checkpoint``): mmengine's ``CheckpointHook``
  that saves through that backend and in a safe order: the new checkpoint is complete and in
  place, *then* ``last_checkpoint`` names it, *then* the checkpoints beyond ``max_keep_ckpts``
  are deleted (mmengine deletes first: a crash while saving could leave nothing to resume
  from). ``last_checkpoint`` holds the file name relative to the work dir, so a copied work
  dir resumes from its own files.
* :func:`find_resumable_checkpoint`: what ``--resume`` (auto) resumes from: the checkpoint
  named in ``last_checkpoint`` (relative or absolute) if it loads, else the newest checkpoint in
  the folder that does, with a warning naming both; none loads: a clear error. The hook applies
  it before mmengine's own lookup.
* ``done.json`` (:func:`rle.engine.mark_finished`) names its checkpoint the same way;
  :func:`finished_checkpoint` resolves it.
* :func:`seed_global_rngs`: the model-side randomness (dropout, Gumbel noise) of an iteration
  from ``(seed, iteration)`` (``rle.engine.SetEpochHook`` calls it before every iteration).
  Together with the per-sample augmentation keys (:mod:`rle.datasets.sampler`) a resumed run
  trains exactly the uninterrupted run's iterations.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import os.path as osp
import random
import re
import uuid
from typing import List, Mapping, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook

from rle.registry import HOOKS

__all__ = [
    "ATOMIC_BACKEND",
    "AtomicCheckpointHook",
    "AtomicLocalBackend",
    "atomic_write_bytes",
    "checkpoint_entry",
    "find_resumable_checkpoint",
    "finished_checkpoint",
    "model_metadata",
    "read_last_checkpoint",
    "read_model_metadata",
    "resolve_checkpoint",
    "seed_global_rngs",
]

PathLike = Union[str, os.PathLike]
#: the mmengine file-backend name of :class:`AtomicLocalBackend`
ATOMIC_BACKEND = "rle_atomic_local"
#: the temporary files of :func:`atomic_write_bytes`: ``.NAME.PID.HEX8.tmp``
_TEMP = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}\.tmp$")
#: a step number at the end of a checkpoint name (``iter_12.pth``, ``epoch_3.pth``)
_STEP = re.compile(r"_(\d+)\.pth$")
#: keeps the model-side seeds apart from the per-sample ones (rle.datasets.sampler)
_MODEL_STREAM = 1


def _check_path(path, name: str) -> str:
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise TypeError(f"{name} must be a non-empty path, got {path!r}")
    return os.fspath(path)


def _fsync_dir(folder: str) -> None:
    # makes the rename itself durable; directories cannot be opened for fsync on Windows
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_fully(f, data: bytes) -> None:
    # one seam for the crash tests (tests/test_crash_resume.py kills the process in here)
    f.write(data)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Replace ``path`` by a file holding ``data``, atomically and durably.

    The bytes go to a temporary file ``.NAME.PID.HEX.tmp`` in the same folder (a rename is
    only atomic within one file system), which is fsynced, renamed onto ``path`` with
    ``os.replace`` and the folder fsynced. A crash at any point leaves either the previous
    ``path`` or the complete new one (and at worst a stale temporary file, removed by the next
    :class:`AtomicCheckpointHook` run). The file gets the permissions of a plain ``open``.

    Args:
        path: the file to write; its folder is created if missing.
        data: the content.
    """
    path = _check_path(path, "atomic_write_bytes: path")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"atomic_write_bytes: data must be bytes, got {type(data).__name__}")
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f".{osp.basename(path)}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    # O_EXCL: never write into somebody else's file; 0o666 & ~umask like open(path, "wb")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_fully(f, data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


@register_backend(ATOMIC_BACKEND, force=True)
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose ``put``/``put_text`` write atomically
    (:func:`atomic_write_bytes`). Select it with ``backend_args=dict(backend=ATOMIC_BACKEND)``."""

    def put(self, obj: bytes, filepath: PathLike) -> None:
        atomic_write_bytes(filepath, obj)

    def put_text(self, obj: str, filepath: PathLike, encoding: str = "utf-8") -> None:
        atomic_write_bytes(filepath, obj.encode(encoding))


def _inside(path: str, folder: str) -> bool:
    path, folder = osp.realpath(path), osp.realpath(folder)
    return osp.commonpath([path, folder]) == folder


def checkpoint_entry(work_dir: PathLike, path: PathLike) -> str:
    """How ``last_checkpoint`` and ``done.json`` name the checkpoint ``path``: relative to
    ``work_dir`` when it lies inside (``iter_12.pth``), else absolute."""
    work_dir = _check_path(work_dir, "checkpoint_entry: work_dir")
    path = _check_path(path, "checkpoint_entry: path")
    if "://" in path:
        return path  # remote storage (out_dir a URL)
    if _inside(path, work_dir):
        return osp.relpath(osp.realpath(path), osp.realpath(work_dir))
    return osp.abspath(path)


def resolve_checkpoint(work_dir: PathLike, entry: str) -> str:
    """The file that a ``last_checkpoint`` or ``done.json`` entry names.

    Relative entries are resolved against ``work_dir``. An absolute entry (as mmengine and
    earlier versions wrote) is taken as is, except that one outside ``work_dir`` whose file name
    exists in ``work_dir`` names that file: a copied work dir uses its own copy, not the
    original's.

    Args:
        work_dir: the run's work dir.
        entry: the entry (a path string).

    Returns:
        the path (not checked for existence).
    """
    work_dir = _check_path(work_dir, "resolve_checkpoint: work_dir")
    if not isinstance(entry, str) or not entry.strip():
        raise ValueError(f"resolve_checkpoint: entry must be a non-empty path, got {entry!r}")
    entry = entry.strip()
    if "://" in entry:
        return entry
    if not osp.isabs(entry):
        return osp.join(work_dir, entry)
    own = osp.join(work_dir, osp.basename(entry))
    if not _inside(entry, work_dir) and osp.isfile(own):
        return own
    return entry


def read_last_checkpoint(work_dir: PathLike) -> Optional[str]:
    """The checkpoint that ``WORK_DIR/last_checkpoint`` names (resolved with
    :func:`resolve_checkpoint`), or ``None`` without the file."""
    work_dir = _check_path(work_dir, "read_last_checkpoint: work_dir")
    try:
        with open(osp.join(work_dir, "last_checkpoint")) as f:
            entry = f.read().strip()
    except FileNotFoundError:
        return None
    return resolve_checkpoint(work_dir, entry) if entry else None


def _unreadable(path: str) -> Optional[str]:
    """Why the checkpoint ``path`` cannot be resumed from, or ``None`` when it can."""
    from mmengine.runner.checkpoint import CheckpointLoader

    if "://" not in path and not osp.isfile(path):
        return "missing"
    try:
        # the registered loader for local files (rle.engine.setup_engine), whatever it checks
        ckpt = CheckpointLoader.load_checkpoint(path, map_location="cpu")
    except Exception as err:  # noqa: BLE001 - any failure to load means "not resumable"
        return f"{type(err).__name__}: {str(err)[:400]}"
    if not isinstance(ckpt, dict) or "meta" not in ckpt or "state_dict" not in ckpt:
        return "not a training checkpoint (no 'meta' and 'state_dict')"
    return None


def _newest_first(path: str) -> Tuple[int, float]:
    # the step in the name first: a copy (cp -r) gives every file the same new mtime
    match = _STEP.search(osp.basename(path))
    return (int(match[1]) if match else -1, osp.getmtime(path))


def find_resumable_checkpoint(
    work_dir: PathLike, checkpoint_dir: Optional[PathLike] = None, logger=None
) -> Optional[str]:
    """The checkpoint that ``--resume`` (auto) resumes from.

    The one that ``WORK_DIR/last_checkpoint`` names if it loads; otherwise (missing,
    truncated, unreadable, not a training checkpoint) the newest ``*.pth`` in
    ``checkpoint_dir`` that loads (by the step number in its name, then modification time),
    with a warning naming both files.

    Args:
        work_dir: the run's work dir (holds ``last_checkpoint``).
        checkpoint_dir: where the checkpoints are; default ``work_dir``.
        logger: a ``logging.Logger`` for the warning; default mmengine's current logger.

    Returns:
        the checkpoint path, or ``None`` when there is neither ``last_checkpoint`` nor any
        ``*.pth`` (a fresh start).

    Raises:
        RuntimeError: checkpoints exist but none can be loaded (each file with its error).
    """
    from mmengine.logging import print_log

    work_dir = _check_path(work_dir, "find_resumable_checkpoint: work_dir")
    folder = _check_path(checkpoint_dir or work_dir, "find_resumable_checkpoint: checkpoint_dir")
    latest = read_last_checkpoint(work_dir)
    others = [p for p in glob.glob(osp.join(glob.escape(folder), "*.pth")) if osp.isfile(p)]
    if latest is not None:
        others = [p for p in others if osp.realpath(p) != osp.realpath(latest)]
    others.sort(key=_newest_first, reverse=True)
    candidates = ([latest] if latest is not None else []) + others
    failed: List[Tuple[str, str]] = []
    for path in candidates:
        error = _unreadable(path)
        if error is None:
            if failed or latest is None:
                named = (
                    f"the latest checkpoint {failed[0][0]} (named in last_checkpoint) cannot be "
                    f"loaded ({failed[0][1]})"
                    if latest is not None
                    else f"{work_dir} has no last_checkpoint"
                )
                print_log(
                    f"{named}; resuming from {path}, the newest checkpoint that loads",
                    logger=logger or "current",
                    level=logging.WARNING,
                )
            return path
        failed.append((path, error))
    if not failed:
        return None
    listing = "; ".join(f"{p}: {e}" for p, e in failed)
    raise RuntimeError(
        f"cannot resume from {work_dir}: no checkpoint there can be loaded ({listing}). "
        "Train from scratch in a new work dir, or pass --resume CKPT"
    )


def finished_checkpoint(work_dir: PathLike) -> str:
    """The checkpoint of a finished run: ``WORK_DIR/done.json``'s ``checkpoint``, resolved
    against the work dir (:func:`resolve_checkpoint`; old absolute entries accepted).

    Raises:
        FileNotFoundError: no ``done.json``, or the checkpoint it names is missing.
        ValueError: the run finished without saving a checkpoint.
    """
    work_dir = _check_path(work_dir, "finished_checkpoint: work_dir")
    done_file = osp.join(work_dir, "done.json")
    if not osp.isfile(done_file):
        raise FileNotFoundError(f"{done_file} does not exist: the run has not finished")
    with open(done_file) as f:
        entry = json.load(f).get("checkpoint")
    if not entry:
        raise ValueError(
            f"{done_file}: the run finished without saving a checkpoint (is "
            "default_hooks.checkpoint disabled, or its interval longer than the run with "
            "save_last=False?); nothing to evaluate"
        )
    path = resolve_checkpoint(work_dir, entry)
    if not osp.isfile(path):
        raise FileNotFoundError(f"{done_file} names the checkpoint {entry}, but {path} is missing")
    return path


def seed_global_rngs(seed: int, iteration: int) -> None:
    """Seed torch's (CPU and CUDA), numpy's and Python's global generators from
    ``(seed, iteration)``: the model-side randomness of an iteration (dropout, Gumbel noise)
    becomes a function of the iteration, whatever ran before it in the process (the data
    loader drawing its base seed, validation, a resume).

    Args:
        seed: the run's seed, >= 0.
        iteration: the iteration about to run, >= 0.
    """
    for name, value in (("seed", seed), ("iteration", iteration)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"seed_global_rngs: {name} must be an int, got {type(value).__name__}")
        if value < 0:
            raise ValueError(f"seed_global_rngs: {name} must be >= 0, got {value}")
    words = np.random.SeedSequence([seed, iteration], spawn_key=(_MODEL_STREAM,)).generate_state(4)
    torch.manual_seed((int(words[0]) << 32) | int(words[1]))
    np.random.seed(int(words[2]))
    random.seed(int(words[3]))


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` (same arguments) with crash-safe saving and resuming.

    * Checkpoints are written atomically (:class:`AtomicLocalBackend`, unless ``backend_args``
      or ``file_client_args`` choose another storage, or ``out_dir`` is a URL).
    * Order: write the checkpoint, then ``last_checkpoint`` (atomically, relative to the work
      dir), then delete the checkpoints beyond ``max_keep_ckpts``.
    * Auto-resume (``resume=True`` without ``load_from``) goes through
      :func:`find_resumable_checkpoint` (relative entries, fallback to the newest checkpoint
      that loads).
    * Stale temporary files of a crashed save are removed when training starts.
    * Every checkpoint is self-describing: ``meta["rle_pose"]`` (:func:`model_metadata`) holds
      the model config, the input size and the pixel convention, so ``tools/test.py
      CHECKPOINT`` and the inference API need no config.
    """

    def __init__(self, *args, backend_args=None, file_client_args=None, **kwargs) -> None:
        out_dir = kwargs.get("out_dir")
        if backend_args is None and file_client_args is None and "://" not in str(out_dir or ""):
            backend_args = dict(backend=ATOMIC_BACKEND)
        super().__init__(
            *args, backend_args=backend_args, file_client_args=file_client_args, **kwargs
        )

    def before_run(self, runner) -> None:
        # Runner.load_or_resume runs after before_run: give it the checkpoint to resume from
        # (mmengine's find_latest_checkpoint takes last_checkpoint's text as a path as is)
        if getattr(runner, "_resume", False) and getattr(runner, "_load_from", None) is None:
            # where CheckpointHook.before_train (not run yet) will put the checkpoints
            folder = runner.work_dir
            if self.out_dir is not None and self.out_dir != runner.work_dir:
                folder = osp.join(str(self.out_dir), osp.basename(runner.work_dir.rstrip(osp.sep)))
            found = find_resumable_checkpoint(runner.work_dir, folder, runner.logger)
            if found is not None:
                runner.logger.info(f"auto-resume: {found}")
                runner._load_from = found

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if not is_main_process():
            return
        for folder in {runner.work_dir, str(self.out_dir)}:
            if osp.isdir(folder):
                for name in os.listdir(folder):
                    if _TEMP.match(name):
                        os.unlink(osp.join(folder, name))  # a save that a crash interrupted

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault("meta", {})["rle_pose"] = model_metadata(runner.cfg)

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        # CheckpointHook's bookkeeping, but the expired checkpoints are deleted last
        expired = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                expired.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            # the checkpoint still lists the expired ones: killed before they are deleted, the
            # resumed run's before_train deletes them
            runner.message_hub.update_info("keep_ckpt_ids", expired + list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info("last_ckpt", self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args,
        )
        if not is_main_process():
            return
        entry = checkpoint_entry(runner.work_dir, self.last_ckpt)
        atomic_write_bytes(osp.join(runner.work_dir, "last_checkpoint"), entry.encode())
        for old in expired:
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                self.file_backend.rmtree(path)  # deepspeed checkpoints are folders
        if self.max_keep_ckpts > 0:
            runner.message_hub.update_info("keep_ckpt_ids", list(self.keep_ckpt_ids))


def _plain(value):
    """Config values as plain builtins (what the restricted unpickler reads back)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def _pipeline_input_size(cfg) -> Optional[Tuple[int, int]]:
    for key in ("test_dataloader", "val_dataloader", "train_dataloader"):
        loader = cfg.get(key) or {}
        for step in (loader.get("dataset") or {}).get("pipeline") or ():
            if isinstance(step, Mapping) and step.get("type") == "TopdownAffine":
                w, h = step.get("input_size", (192, 256))
                return int(w), int(h)
    return None


def model_metadata(cfg) -> dict:
    """What a self-describing checkpoint carries in ``meta["rle_pose"]``: ``model`` (the
    estimator config, plain builtins, the backbone's ``pretrained`` file dropped: the weights
    are in the checkpoint), ``input_size`` ``[w, h]`` (the test pipeline's crop) and
    ``convention`` (the pixel convention the weights were trained with)."""
    model = _plain(cfg.get("model") or {})
    if isinstance(model.get("backbone"), dict) and model["backbone"].get("pretrained"):
        model["backbone"]["pretrained"] = None
    size = _pipeline_input_size(cfg)
    convention = cfg.get("convention") or model.get("convention") or "rle"
    return dict(
        model=model,
        input_size=None if size is None else list(size),
        convention=convention,
    )


def read_model_metadata(checkpoint: Mapping, source: str = "checkpoint") -> dict:
    """``meta["rle_pose"]`` of a loaded checkpoint, checked: a dict with the ``model`` config,
    ``input_size`` ``[w, h]`` and ``convention``.

    Raises:
        ValueError: naming ``source``: no such metadata (with the converter's command when the
            state dict has an MMPose or official-RLE layout), or malformed metadata.
    """
    from rle.converters import detect_layout

    meta = checkpoint.get("meta") if isinstance(checkpoint, Mapping) else None
    info = meta.get("rle_pose") if isinstance(meta, Mapping) else None
    if info is None:
        state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else {}
        layout = detect_layout(state) if isinstance(state, Mapping) else None
        hint = (
            f"; it has the {layout} layout: convert it first with python "
            f"tools/convert_checkpoint.py {source} OUT.pth --from {layout}"
            if layout
            else "; pass the config it was trained with"
        )
        raise ValueError(f"{source}: not a self-describing rle-pose checkpoint (no "
                         f"meta['rle_pose'] with the model config){hint}")  # fmt: skip
    if not isinstance(info, Mapping) or not isinstance(info.get("model"), Mapping):
        raise ValueError(f"{source}: meta['rle_pose'] must be a dict with a 'model' config dict")
    size = info.get("input_size")
    if size is not None and (
        not isinstance(size, (list, tuple))
        or len(size) != 2
        or not all(isinstance(v, int) and v > 0 for v in size)
    ):
        raise ValueError(f"{source}: meta['rle_pose']['input_size'] must be [w, h], got {size!r}")
    from rle.datasets.geometry import check_convention

    try:
        check_convention(info.get("convention", "rle"))
    except ValueError as err:
        raise ValueError(f"{source}: meta['rle_pose']: {err}") from None
    return dict(info)
