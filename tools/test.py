"""Evaluate a checkpoint, with its config or, for a self-describing checkpoint (every one trained
here or converted by tools/convert_checkpoint.py), without one.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options ...]
        [--launcher {none,pytorch,slurm}] [--unsafe-load]
    python tools/test.py CHECKPOINT [--data-root DIR] [--dataset-config FILE] [...]

Without a config the model, its input size and pixel convention come from the checkpoint and
the data from ``--dataset-config`` (default ``configs/_base_/datasets/coco-256x192.py``: COCO
val2017 with the published protocol) under ``--data-root``.

Logic: :func:`rle.engine.test` (:func:`rle.engine.config_from_checkpoint`).
"""

from __future__ import annotations

import argparse

from rle.engine import add_engine_arguments, config_from_args, test


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Evaluate a keypoint model (rle-pose)")
    parser.add_argument("config", help="the config, or the checkpoint when it is the only path")
    parser.add_argument("checkpoint", nargs="?", default=None)
    parser.add_argument("--data-root", help="dataset root (without a config)")
    parser.add_argument("--dataset-config", help="test data and evaluator (without a config)")
    add_engine_arguments(parser)
    args = parser.parse_args(argv)
    if args.checkpoint is None:  # tools/test.py CHECKPOINT
        args.config, args.checkpoint = None, args.config
    return args


def main(argv=None):
    args = parse_args(argv)
    return test(config_from_args(args), args.checkpoint, unsafe_load=args.unsafe_load)


if __name__ == "__main__":
    main()
