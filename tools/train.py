"""Train a model from an mmengine config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp [{bfloat16,float16}]]
        [--cfg-options key=value ...] [--launcher {none,pytorch,slurm}] [--unsafe-load]

Multi-process: ``torchrun --nproc_per_node=N tools/train.py CONFIG --launcher pytorch``
(NCCL on GPUs, gloo on CPU); slurm: ``srun ... python tools/train.py CONFIG --launcher slurm``.
The work dir gets ``done.json`` when training completes. Logic: :func:`rle.engine.train`.
"""

from __future__ import annotations

import argparse

from rle.engine import add_engine_arguments, config_from_args, train


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Train a keypoint model (rle-pose)")
    parser.add_argument("config", help="config file")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        help="resume from CKPT, or from the latest checkpoint in the work dir",
    )
    parser.add_argument(
        "--amp",
        nargs="?",
        const=True,
        default=False,
        choices=(True, "bfloat16", "float16"),
        help="mixed precision: bfloat16 autocast on the CPU, float16 with loss scaling on CUDA "
        "(or the dtype given)",
    )
    add_engine_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = config_from_args(args, resume=args.resume, amp=args.amp)
    return train(cfg, unsafe_load=args.unsafe_load)


if __name__ == "__main__":
    main()
