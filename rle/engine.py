"""mmengine integration that works on current torch and without a GPU.

* :func:`setup_engine` (called by ``tools/train.py`` and ``tools/test.py``):
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
from typing import Optional

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
    "finalize_distributed",
    "init_distributed",
    "mark_finished",
    "setup_engine",
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
    """Call ``head.set_epoch(epoch)`` before each training epoch (sampling-argmax's tau)."""

    def before_train_epoch(self, runner) -> None:
        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        head = getattr(model, "head", None)
        if head is not None and hasattr(head, "set_epoch"):
            head.set_epoch(runner.epoch)
