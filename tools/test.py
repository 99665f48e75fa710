"""Evaluate a checkpoint with an mmengine config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options ...]
        [--launcher {none,pytorch,slurm}] [--unsafe-load]

Logic: :func:`rle.engine.test`.
"""

from __future__ import annotations

import argparse

from rle.engine import add_engine_arguments, config_from_args, test


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Evaluate a keypoint model (rle-pose)")
    parser.add_argument("config")
    parser.add_argument("checkpoint")
    add_engine_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return test(config_from_args(args), args.checkpoint, unsafe_load=args.unsafe_load)


if __name__ == "__main__":
    main()
