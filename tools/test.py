"""Evaluate a checkpoint with an mmengine config.

python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options ...]
    [--launcher {none,pytorch,slurm}]
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(description="Evaluate a keypoint model (rle-pose)")
    parser.add_argument("config")
    parser.add_argument("checkpoint")
    parser.add_argument("--work-dir")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={})
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm"], default="none")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    from mmengine.config import Config
    from mmengine.runner import Runner

    from rle.engine import finalize_distributed, init_distributed, setup_engine

    setup_engine()
    init_distributed(args.launcher)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    cfg.default_scope = cfg.get("default_scope", "rle")
    cfg.work_dir = (
        args.work_dir
        or cfg.get("work_dir")
        or osp.join("work_dirs", osp.splitext(osp.basename(args.config))[0])
    )
    cfg.load_from = args.checkpoint
    if args.launcher != "none":
        cfg.setdefault("model_wrapper_cfg", dict(type="CPUCompatibleDDP"))
    runner = Runner.from_cfg(cfg)
    try:
        metrics = runner.test()
    except BaseException:
        finalize_distributed(barrier=False)
        raise
    finalize_distributed()
    return metrics


if __name__ == "__main__":
    main()
