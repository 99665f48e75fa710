"""The training process that :func:`rle.compare.train_parallel` starts for one run.

    python -m rle.compare.worker CONFIG WORK_DIR [--resume] [--unsafe-load]

``CONFIG`` is the run's fully merged config (its seed and overrides already applied); the
process trains it with :func:`rle.engine.train`, which writes ``WORK_DIR/done.json`` at the end.
"""

from __future__ import annotations

import argparse


def main(argv=None):
    parser = argparse.ArgumentParser(description="train one run of a comparison")
    parser.add_argument("config")
    parser.add_argument("work_dir")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--unsafe-load", action="store_true", help="trusted checkpoints only")
    args = parser.parse_args(argv)
    from rle.engine import load_config, train

    cfg = load_config(args.config, work_dir=args.work_dir, resume=args.resume or None)
    train(cfg, unsafe_load=args.unsafe_load)


if __name__ == "__main__":
    main()
