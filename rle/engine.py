"""mmengine integration that works on current torch and without a GPU.

* :func:`load_config`: the one config loader of every tool and of :mod:`rle.compare`
  (``--cfg-options``, seed, work dir, launcher, resume, AMP); :func:`train` and :func:`test` run
  a loaded config (what ``tools/train.py`` and ``tools/test.py`` call).
* :func:`setup_engine` (called by :func:`train`, :func:`test` and the comparison):
  - a checkpoint loader for local files with ``torch.load(weights_only=False)``: torch >= 2.6
    defaults to ``weights_only=True`` and mmengine's own checkpoints (HistoryBuffer, numpy
    objects) then fail to load on ``--resume``. Only for trusted local files.
  - :class:`CPUCompatibleDDP` registered in mmengine's root model-wrapper registry: mmengine
    passes ``device_ids=[LOCAL_RANK]``, which DDP rejects for CPU modules.
  - :func:`init_distributed`: creates the process group (NCCL on GPUs, gloo on CPU) before the
    Runner, so mmengine skips its own CUDA-only ``init_dist``.
* Hooks: :class:`NonFiniteLossHook` stops training with a message naming the loss component;
  :class:`SetEpochHook` forwards the epoch to heads with a schedule (sampling-argmax tau).
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

from rle.registry import HOOKS

__all__ = [
    "CPUCompatibleDDP",
    "NonFiniteLossError",
    "NonFiniteLossHook",
    "SetEpochHook",
    "add_engine_arguments",
    "config_from_args",
    "finalize_distributed",
    "init_distributed",
    "load_config",
    "mark_finished",
    "setup_engine",
    "test",
    "train",
]

_SETUP_DONE = False


def _load_local_checkpoint(filename: str, map_location=None):
    # trusted local files only: mmengine checkpoints pickle HistoryBuffer and numpy objects
    return torch.load(filename, map_location=map_location, weights_only=False)


def setup_engine() -> None:
    """Register the checkpoint loader (idempotent)."""
    global _SETUP_DONE
    if _SETUP_DONE:
        return
    from mmengine.runner.checkpoint import CheckpointLoader

    CheckpointLoader.register_scheme(prefixes="", force=True)(_load_local_checkpoint)
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


def mark_finished(work_dir, epochs) -> None:
    """Write ``WORK_DIR/done.json`` (the last checkpoint and the epochs trained): the mark by
    which ``tools/compare.py`` knows a finished run and evaluates it instead of training it.
    Called by the main process only, after ``runner.train()`` returned."""
    import json
    from pathlib import Path

    work_dir = Path(work_dir)
    ckpt = (work_dir / "last_checkpoint").read_text().strip()
    (work_dir / "done.json").write_text(json.dumps(dict(checkpoint=ckpt, epochs=epochs)))


def add_engine_arguments(parser) -> None:
    """Add the command-line options that ``tools/train.py`` and ``tools/test.py`` share, named
    as :func:`load_config`'s arguments: ``--work-dir``, ``--cfg-options``, ``--launcher`` (and
    the ``--local-rank`` that ``torch.distributed.launch`` passes)."""
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


def load_config(
    config,
    *,
    cfg_options: Optional[dict] = None,
    work_dir: Optional[str] = None,
    launcher: str = "none",
    seed: Optional[int] = None,
    resume: Union[bool, str, None] = None,
    amp: bool = False,
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
        amp: mixed precision (mmengine's ``AmpOptimWrapper``, CUDA only).

    Returns:
        the :class:`mmengine.config.Config`.
    """
    from mmengine.config import Config

    if not isinstance(config, (str, os.PathLike)) or not osp.isfile(config):
        raise FileNotFoundError(f"config file {config!r} does not exist")
    if launcher not in ("none", "pytorch", "slurm"):
        raise ValueError(f"launcher must be 'none', 'pytorch' or 'slurm', got {launcher!r}")
    cfg = Config.fromfile(str(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if seed is not None:
        cfg.merge_from_dict({"randomness.seed": seed})
    cfg.launcher = launcher
    cfg.default_scope = cfg.get("default_scope", "rle")
    if work_dir is not None:
        cfg.work_dir = str(work_dir)
    elif cfg.get("work_dir") is None:
        cfg.work_dir = osp.join("work_dirs", osp.splitext(osp.basename(str(config)))[0])
    if amp:
        if not torch.cuda.is_available():
            raise RuntimeError(
                "amp needs a CUDA device (AmpOptimWrapper is GPU-only in mmengine); train in "
                "fp32 on the CPU"
            )
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.setdefault("loss_scale", "dynamic")
    if resume is True or resume == "auto":
        cfg.resume, cfg.load_from = True, None
    elif resume:
        cfg.resume, cfg.load_from = True, str(resume)
    if launcher != "none":
        cfg.setdefault("model_wrapper_cfg", dict(type="CPUCompatibleDDP"))
    return cfg


def config_from_args(args, **options):
    """:func:`load_config` from parsed command-line arguments (``config`` and those of
    :func:`add_engine_arguments`) plus ``options``; a missing file or an impossible option
    exits with its message instead of a traceback."""
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    try:
        return load_config(
            args.config,
            cfg_options=args.cfg_options,
            work_dir=args.work_dir,
            launcher=args.launcher,
            **options,
        )
    except (FileNotFoundError, RuntimeError) as err:
        raise SystemExit(str(err)) from None


def train(cfg):
    """Train a loaded config (:func:`load_config`) and mark the work dir finished.

    Creates the process group for ``cfg.launcher`` first and destroys it at the end; only the
    main process writes ``done.json``. Returns the mmengine ``Runner``.
    """
    from mmengine.dist import is_main_process
    from mmengine.runner import Runner

    setup_engine()
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


def test(cfg, checkpoint: str) -> dict:
    """Evaluate ``checkpoint`` with a loaded config's test dataloader and evaluator; returns
    the metrics."""
    from mmengine.runner import Runner

    setup_engine()
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
    """Call ``model.head.set_epoch(epoch)`` before each training epoch (sampling-argmax's tau).

    Every head has ``set_epoch`` (a no-op on ``heads.BaseHead``); a model without a ``head``
    attribute is left alone.
    """

    def before_train_epoch(self, runner) -> None:
        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        head = getattr(model, "head", None)
        if head is not None:
            head.set_epoch(runner.epoch)
