"""Train a model from an mmengine config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--cfg-options key=value ...] [--launcher {none,pytorch,slurm}]

Multi-process: ``torchrun --nproc_per_node=N tools/train.py CONFIG --launcher pytorch``
(NCCL on GPUs, gloo on CPU); slurm: ``srun ... python tools/train.py CONFIG --launcher slurm``.
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(description="Train a keypoint model (rle-pose)")
    parser.add_argument("config", help="config file")
    parser.add_argument("--work-dir", help="where logs and checkpoints go")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        help="resume from CKPT, or from the latest checkpoint in the work dir",
    )
    parser.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        default={},
        help="override config entries, e.g. train_cfg.max_epochs=2",
    )
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm"], default="none")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def build_cfg(args):
    import torch
    from mmengine.config import Config

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    cfg.default_scope = cfg.get("default_scope", "rle")
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = osp.join("work_dirs", osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        if not torch.cuda.is_available():
            raise SystemExit(
                "--amp needs a CUDA device (AmpOptimWrapper is GPU-only in "
                "mmengine); train in fp32 on the CPU"
            )
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.setdefault("loss_scale", "dynamic")
    if args.resume == "auto":
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    if args.launcher != "none":
        cfg.setdefault("model_wrapper_cfg", dict(type="CPUCompatibleDDP"))
    return cfg


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    from mmengine.dist import is_main_process
    from mmengine.runner import Runner

    from rle.engine import finalize_distributed, init_distributed, mark_finished, setup_engine

    setup_engine()
    init_distributed(args.launcher)
    runner = Runner.from_cfg(build_cfg(args))
    try:
        runner.train()
    except BaseException:
        finalize_distributed(barrier=False)  # the other ranks may never reach a barrier
        raise
    if is_main_process():
        mark_finished(runner.work_dir, runner.epoch)
    finalize_distributed()
    return runner


if __name__ == "__main__":
    main()
