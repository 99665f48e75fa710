"""mmengine integration that works on current torch and without a GPU.

* :func:`load_config`: the one config loader of every tool and of :mod:`rle.compare`
  (``--cfg-options``, seed, work dir, launcher, resume, AMP, and the pixel ``convention`` set
  once at the top of a config and carried to every dataset, the model and its head:
  :func:`apply_convention`); :func:`config_from_checkpoint` builds the config of a
  self-describing checkpoint; :func:`train` and :func:`test` run a loaded config (what
  ``tools/train.py`` and ``tools/test.py`` call).
* :func:`setup_engine` (called by :func:`train`, :func:`test` and the comparison):
  - the loader of local checkpoint files (``load_from``, ``--resume``, auto-resume,
    ``tools/test.py``, the comparison): :func:`rle.serialization.load_checkpoint_file`, a
    restricted unpickler that loads mmengine's and MMPose's checkpoints (which torch's
    ``weights_only=True`` rejects) and refuses any file referencing other globals;
    ``setup_engine(unsafe_load=True)`` (``--unsafe-load``) loads trusted files with plain
    ``torch.load``.
  - strict checkpoint loading: mmengine's ``Runner.load_checkpoint`` defaults to
    ``strict=True`` and raises :class:`rle.serialization.CheckpointMismatchError` listing the
    missing / unexpected keys and shape mismatches (mmengine only logs them and evaluates a
    randomly initialised head).
  - :class:`CPUCompatibleDDP` registered in mmengine's root model-wrapper registry: mmengine
    passes ``device_ids=[LOCAL_RANK]``, which DDP rejects for CPU modules.
  - :func:`init_distributed`: creates the process group (NCCL on GPUs, gloo on CPU) before the
    Runner, so mmengine skips its own CUDA-only ``init_dist``.
* Hooks: :class:`NonFiniteLossHook` stops training with a message naming the loss component;
  :class:`SetEpochHook` forwards the epoch to heads with a schedule (sampling-argmax tau) and
  keys the training randomness by epoch and iteration (exact resume);
  :class:`~rle.checkpoint.AtomicCheckpointHook` (registered here, :mod:`rle.checkpoint`)
  saves crash-safe checkpoints.
"""

from __future__ import annotations

import math
import os
import os.path as osp
from typing import Optional, Union

import torch
from mmengine.hooks import Hook
from mmengine.model.wrappers import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS as ROOT_MODEL_WRAPPERS

from rle.checkpoint import AtomicCheckpointHook, seed_global_rngs
from rle.conventions import apply_convention, config_from_checkpoint, warn_convention
from rle.registry import HOOKS

__all__ = [
    "AtomicCheckpointHook",
    "CPUCompatibleDDP",
    "NonFiniteLossError",
    "NonFiniteLossHook",
    "SetEpochHook",
    "add_engine_arguments",
    "apply_convention",
    "config_from_args",
    "config_from_checkpoint",
    "finalize_distributed",
    "init_distributed",
    "load_config",
    "mark_finished",
    "setup_engine",
    "test",
    "train",
]

_SETUP_DONE = False
_UNSAFE_LOAD = False  # set by every setup_engine call


def _load_local_checkpoint(filename: str, map_location=None):
    from rle.serialization import load_checkpoint_file

    return load_checkpoint_file(filename, map_location, unsafe=_UNSAFE_LOAD)


def _load_checkpoint_strict(
    self, filename: str, map_location="cpu", strict: bool = True, revise_keys=None
):
    """mmengine 0.10.7's ``Runner.load_checkpoint`` with ``strict=True`` by default and the
    keys checked first: ``load_or_resume`` and ``resume`` call it without ``strict``, and a
    non-strict load only logs what did not fit (an RLE checkpoint on a regression config
    evaluated a random head, exit 0). An explicit ``strict=False`` keeps mmengine's warning."""
    from mmengine.model import is_model_wrapper
    from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model

    from rle.serialization import check_state_dict

    revise_keys = [(r"^module.", "")] if revise_keys is None else revise_keys
    checkpoint = _load_checkpoint(filename, map_location=map_location)
    self.call_hook("after_load_checkpoint", checkpoint=checkpoint)
    model = self.model.module if is_model_wrapper(self.model) else self.model
    if strict:
        check_state_dict(model.state_dict(), checkpoint, filename, revise_keys)
    warn_convention(checkpoint, model, filename)
    checkpoint = _load_checkpoint_to_model(model, checkpoint, strict, revise_keys=revise_keys)
    self._has_loaded = True
    self.logger.info(f"Load checkpoint from {filename}")
    return checkpoint


def setup_engine(unsafe_load: bool = False) -> None:
    """Register the checkpoint loader and strict loading (once) and set the load mode.

    Args:
        unsafe_load: ``False``: every local checkpoint goes through the restricted unpickler
            of :func:`rle.serialization.load_checkpoint_file`. ``True``: plain
            ``torch.load(weights_only=False)``, which runs whatever the file's pickle names:
            only for checkpoints you trust (``--unsafe-load``). Each call sets the mode for
            every later load in this process, so a call without it is safe again.
    """
    global _SETUP_DONE, _UNSAFE_LOAD
    if not isinstance(unsafe_load, bool):
        raise TypeError(f"setup_engine: unsafe_load must be a bool, got {unsafe_load!r}")
    _UNSAFE_LOAD = unsafe_load
    if _SETUP_DONE:
        return
    from mmengine.runner import Runner
    from mmengine.runner.checkpoint import CheckpointLoader

    CheckpointLoader.register_scheme(prefixes="", force=True)(_load_local_checkpoint)
    Runner.load_checkpoint = _load_checkpoint_strict
    _SETUP_DONE = True


@ROOT_MODEL_WRAPPERS.register_module(force=True)
class CPUCompatibleDDP(MMDistributedDataParallel):
    """mmengine's DDP wrapper that drops ``device_ids`` for modules living on the CPU."""

    def __init__(self, module, device_ids=None, **kwargs) -> None:
        if next(module.parameters()).device.type == "cpu":
            device_ids = None
        super().__init__(module=module, device_ids=device_ids, **kwargs)


def init_distributed(launcher: str, backend: Optional[str] = None) -> None:
    """Create the default process group for ``launcher`` in {"pytorch", "slurm"} before the
    Runner is built. ``backend`` defaults to NCCL with CUDA, gloo otherwise."""
    import torch.distributed as dist

    if launcher == "none" or dist.is_initialized():
        return
    if launcher == "slurm":
        # torchrun sets these; under srun derive them from SLURM's environment
        os.environ.setdefault("RANK", os.environ["SLURM_PROCID"])
        os.environ.setdefault("WORLD_SIZE", os.environ["SLURM_NTASKS"])
        os.environ.setdefault("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0"))
        os.environ.setdefault("MASTER_PORT", "29500")
        if "MASTER_ADDR" not in os.environ:
            import subprocess

            node = subprocess.getoutput(
                f"scontrol show hostname {os.environ['SLURM_NODELIST']} | head -n1"
            )
            os.environ["MASTER_ADDR"] = node
    elif launcher != "pytorch":
        raise ValueError(f"launcher must be 'none', 'pytorch' or 'slurm', got {launcher!r}")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend)


def finalize_distributed(barrier: bool = True) -> None:
    """Wait for every rank (unless this rank failed), then destroy the process group:
    exiting with a live gloo group aborts a rank ("terminate called without an active
    exception")."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if barrier:
            dist.barrier()
        dist.destroy_process_group()


def mark_finished(work_dir, epochs: int) -> None:
    """Write ``WORK_DIR/done.json`` (the last checkpoint and the epochs trained): the mark by
    which ``tools/compare.py`` knows a finished run and evaluates it instead of training it.
    Called by the main process only, after ``runner.train()`` returned.

    The checkpoint is named relative to the work dir (a copied work dir evaluates its own
    files; :func:`rle.checkpoint.finished_checkpoint` resolves it). A run that saved none gets
    ``"checkpoint": null`` and a warning; evaluating it then says so.
    """
    import json
    import logging

    from mmengine.logging import print_log

    from rle.checkpoint import atomic_write_bytes, checkpoint_entry, read_last_checkpoint

    if not isinstance(work_dir, (str, os.PathLike)):
        raise TypeError(f"mark_finished: work_dir must be a path, got {type(work_dir).__name__}")
    last = read_last_checkpoint(work_dir)
    entry = checkpoint_entry(work_dir, last) if last is not None and osp.isfile(last) else None
    if entry is None:
        print_log(
            f"training finished without a checkpoint in {work_dir} (last_checkpoint: {last}); "
            "done.json marks the run finished with nothing to evaluate. Enable "
            "default_hooks.checkpoint (save_last=True) to keep the weights",
            logger="current",
            level=logging.WARNING,
        )
    done = json.dumps(dict(checkpoint=entry, epochs=epochs)).encode()
    atomic_write_bytes(osp.join(work_dir, "done.json"), done)


def add_engine_arguments(parser) -> None:
    """Add the command-line options that ``tools/train.py`` and ``tools/test.py`` share, named
    as :func:`load_config`'s arguments: ``--work-dir``, ``--cfg-options``, ``--launcher`` (and
    the ``--local-rank`` that ``torch.distributed.launch`` passes), and ``--unsafe-load``
    (``unsafe_load`` of :func:`train` / :func:`test`)."""
    import argparse

    from mmengine.config import DictAction

    parser.add_argument("--work-dir", help="where logs and checkpoints go")
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        default={},
        help="override config entries, e.g. train_cfg.max_epochs=2",
    )
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm"], default="none")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--unsafe-load",
        action="store_true",
        help="load checkpoints with plain torch.load, which runs code in the file: only for "
        "checkpoints you trust that the safe loader refuses",
    )


def load_config(
    config,
    *,
    cfg_options: Optional[dict] = None,
    work_dir: Optional[str] = None,
    launcher: str = "none",
    seed: Optional[int] = None,
    resume: Union[bool, str, None] = None,
    amp: Union[bool, str] = False,
):
    """Read a config file and apply the options every tool shares.

    Args:
        config: path of an mmengine config file.
        cfg_options: ``{"dotted.key": value}`` overrides (``--cfg-options``).
        work_dir: where logs and checkpoints go; default the config's ``work_dir``, else
            ``work_dirs/<config file stem>``.
        launcher: ``"none"``, ``"pytorch"`` or ``"slurm"``; multi-process launchers get the
            CPU-capable DDP wrapper unless the config names one.
        seed: overrides ``randomness.seed``.
        resume: ``True`` (or ``"auto"``): resume from the work dir's latest checkpoint; a path:
            resume from that checkpoint.
        amp: mixed precision on any device (:class:`rle.amp.MixedPrecisionOptimWrapper`):
            ``True`` = bfloat16 autocast on the CPU, float16 with loss scaling on CUDA; or the
            dtype, ``"bfloat16"`` / ``"float16"``.

    Returns:
        the :class:`mmengine.config.Config`, its ``convention`` applied
        (:func:`apply_convention`).
    """
    from mmengine.config import Config

    if not isinstance(config, (str, os.PathLike)) or not osp.isfile(config):
        raise FileNotFoundError(f"config file {config!r} does not exist")
    cfg = Config.fromfile(str(config))
    stem = osp.splitext(osp.basename(str(config)))[0]
    return _finish_config(cfg, stem, cfg_options, work_dir, launcher, seed, resume, amp)


def _use_amp(cfg, amp) -> None:
    """Wrap the config's optimizer in :class:`rle.amp.MixedPrecisionOptimWrapper` (mmengine's
    ``AmpOptimWrapper`` asserts a GPU and always scales the loss)."""
    from rle.amp import AMP_DTYPES

    if amp is not True and amp not in AMP_DTYPES:
        raise ValueError(f"amp must be True, False or one of {AMP_DTYPES}, got {amp!r}")
    wrapper = cfg.optim_wrapper
    if wrapper.get("type", "OptimWrapper") not in ("OptimWrapper", "AmpOptimWrapper",
                                                    "MixedPrecisionOptimWrapper"):  # fmt: skip
        raise ValueError(f"amp: the config's optim_wrapper type {wrapper.type!r} is not an "
                         "OptimWrapper; set its precision in the config instead")  # fmt: skip
    wrapper.type = "MixedPrecisionOptimWrapper"
    if amp is not True:
        wrapper.dtype = amp
    elif wrapper.get("dtype") not in AMP_DTYPES:
        wrapper.dtype = None  # the device's default, chosen on the first step


def _finish_config(cfg, stem, cfg_options, work_dir, launcher, seed=None, resume=None, amp=False):
    if launcher not in ("none", "pytorch", "slurm"):
        raise ValueError(f"launcher must be 'none', 'pytorch' or 'slurm', got {launcher!r}")
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if seed is not None:
        cfg.merge_from_dict({"randomness.seed": seed})
    cfg.launcher = launcher
    cfg.default_scope = cfg.get("default_scope", "rle")
    if work_dir is not None:
        cfg.work_dir = str(work_dir)
    elif cfg.get("work_dir") is None:
        cfg.work_dir = osp.join("work_dirs", stem)
    if amp:
        _use_amp(cfg, amp)
    if resume is True or resume == "auto":
        cfg.resume, cfg.load_from = True, None
    elif resume:
        cfg.resume, cfg.load_from = True, str(resume)
    if launcher != "none":
        cfg.setdefault("model_wrapper_cfg", dict(type="CPUCompatibleDDP"))
    apply_convention(cfg)
    return cfg


def config_from_args(args, **options):
    """:func:`load_config` from parsed command-line arguments (``config`` and those of
    :func:`add_engine_arguments`) plus ``options``; a missing file or an impossible option
    exits with its message instead of a traceback. ``args.config = None`` (``tools/test.py
    CHECKPOINT``): :func:`config_from_checkpoint` of ``args.checkpoint`` with
    ``args.dataset_config`` / ``args.data_root``."""
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    try:
        if args.config is None:
            return config_from_checkpoint(
                args.checkpoint,
                dataset_config=getattr(args, "dataset_config", None),
                data_root=getattr(args, "data_root", None),
                cfg_options=args.cfg_options,
                work_dir=args.work_dir,
                launcher=args.launcher,
                unsafe_load=getattr(args, "unsafe_load", False),
            )
        return load_config(
            args.config,
            cfg_options=args.cfg_options,
            work_dir=args.work_dir,
            launcher=args.launcher,
            **options,
        )
    except (FileNotFoundError, RuntimeError) as err:
        raise SystemExit(str(err)) from None
    except ValueError as err:
        if args.config is None:  # not a self-describing checkpoint: say what to do
            raise SystemExit(str(err)) from None
        raise


def train(cfg, *, unsafe_load: bool = False):
    """Train a loaded config (:func:`load_config`) and mark the work dir finished.

    Creates the process group for ``cfg.launcher`` first and destroys it at the end; only the
    main process writes ``done.json``. ``unsafe_load``: :func:`setup_engine`'s (resume and
    ``load_from`` files; trusted files only). Returns the mmengine ``Runner``.
    """
    from mmengine.dist import is_main_process
    from mmengine.runner import Runner

    setup_engine(unsafe_load)
    init_distributed(cfg.launcher)
    runner = Runner.from_cfg(cfg)
    try:
        runner.train()
    except BaseException:
        finalize_distributed(barrier=False)  # the other ranks may never reach a barrier
        raise
    if is_main_process():
        mark_finished(runner.work_dir, runner.epoch)
    finalize_distributed()
    return runner


def test(cfg, checkpoint: str, *, unsafe_load: bool = False) -> dict:
    """Evaluate ``checkpoint`` with a loaded config's test dataloader and evaluator; returns
    the metrics. A checkpoint that does not fit the config's model raises
    :class:`rle.serialization.CheckpointMismatchError`; ``unsafe_load``: :func:`setup_engine`'s
    (trusted files only)."""
    from mmengine.runner import Runner

    setup_engine(unsafe_load)
    init_distributed(cfg.launcher)
    cfg.load_from = str(checkpoint)
    runner = Runner.from_cfg(cfg)
    try:
        metrics = runner.test()
    except BaseException:
        finalize_distributed(barrier=False)
        raise
    finalize_distributed()
    return metrics


class NonFiniteLossError(RuntimeError):
    """A loss component became NaN or infinite."""


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training with a clear message naming the component when a logged loss (or any
    logged component) turns NaN or infinite."""

    priority = "ABOVE_NORMAL"

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not outputs:
            return
        values = {
            name: float(v.detach().float().mean()) if torch.is_tensor(v) else float(v)
            for name, v in outputs.items()
        }
        bad = [name for name, v in values.items() if not math.isfinite(v)]
        if not bad:
            return
        # name the components, not just the summed total
        named = [name for name in bad if name != "loss"] or bad
        raise NonFiniteLossError(
            "non-finite "
            + ", ".join(f"{name} = {values[name]}" for name in named)
            + f" at iteration {runner.iter + 1} (epoch {runner.epoch + 1}); all components: "
            + ", ".join(f"{k}={v:.4g}" for k, v in values.items())
            + ". Check the learning rate, gradient clipping (optim_wrapper.clip_grad) and the "
            "inputs."
        )


@HOOKS.register_module()
class SetEpochHook(Hook):
    """The epoch and the iteration where training needs them.

    * ``model.head.set_epoch(epoch)`` before each training epoch (sampling-argmax's tau).
      Every head has ``set_epoch`` (a no-op on ``heads.BaseHead``); a model without a
      ``head`` attribute is left alone.
    * Augmentation keyed by ``(seed, epoch, index)``: before training the train loader is made
      to yield :class:`~rle.datasets.sampler.SampleKey` s
      (:func:`~rle.datasets.sampler.key_samples`). A run resumed from a checkpoint taken in
      the middle of an epoch skips the samples of that epoch it trained on before (mmengine's
      epoch loop would repeat the whole epoch).
    * Before every iteration the global generators are seeded from ``(seed, iteration)``
      (:func:`~rle.checkpoint.seed_global_rngs`: dropout, sampling-argmax's Gumbel noise).

    So a run killed anywhere and resumed trains the same iterations on the same samples with
    the same draws as an uninterrupted one.
    """

    def before_train(self, runner) -> None:
        from rle.datasets.sampler import key_samples

        loop = runner.train_loop
        self._keys = key_samples(loop.dataloader, runner.seed, runner.logger)
        if self._keys is not None and hasattr(loop, "dataloader_iterator"):
            # the iteration-based loop made its iterator when it was built, before this hook
            # (its workers may have taken indices already): restart it on the keyed sampler
            loop.dataloader_iterator = type(loop.dataloader_iterator)(loop.dataloader)

    def before_train_epoch(self, runner) -> None:
        from mmengine.runner import EpochBasedTrainLoop

        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        head = getattr(model, "head", None)
        if head is not None:
            head.set_epoch(runner.epoch)
        keys = getattr(self, "_keys", None)
        if keys is None or not isinstance(runner.train_loop, EpochBasedTrainLoop):
            return  # the iteration-based loop fast-forwards its loader on resume itself
        loader = runner.train_loop.dataloader
        trained = runner.iter - runner.epoch * len(loader)
        if trained > 0:
            batch = loader.batch_size or loader.batch_sampler.batch_size
            keys.skip_next(trained * batch)
            runner.logger.info(
                f"resumed in epoch {runner.epoch + 1}: skipping its {trained} trained batches"
            )

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        seed_global_rngs(runner.seed, runner.iter)
