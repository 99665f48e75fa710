"""Fit a trained model's interval calibration on its config's calibration split.

    python tools/calibrate.py CONFIG CHECKPOINT [--global] [--method scale|levels]
        [--out FILE] [--levels 0.5 0.68 ...] [--min-count 50] [--max-instances N]
        [--device cpu] [--cfg-options key=value ...] [--unsafe-load]

Predicts the config's ``calib_dataloader`` (a split of its own, never val), fits one sigma
factor per keypoint (``--global``: one for all) so that the head's intervals reach their
nominal coverage (``--method levels``: one factor per level, nominal at each fitted level
whatever the shape of the head's density), and writes ``CHECKPOINT.calibration.json`` (or
``--out``), which ``rle.apis.init_model`` (and so ``tools/infer.py``) then applies. Prints
the coverage on the split before and after. The logic is
:func:`rle.calibration_run.calibrate_checkpoint`.
"""

from __future__ import annotations

import argparse
import sys

from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Calibrate a model's intervals (rle-pose)")
    parser.add_argument("config", help="config file with a calib_dataloader")
    parser.add_argument("checkpoint", help="checkpoint file (not modified)")
    parser.add_argument(
        "--global", dest="per_keypoint", action="store_false",
        help="one factor for every keypoint (default: one per keypoint)",
    )  # fmt: skip
    parser.add_argument(
        "--method", choices=("scale", "levels"), default="scale",
        help="one factor for every level (default) or one per fitted level",
    )  # fmt: skip
    parser.add_argument("--out", help="calibration file (default: CHECKPOINT.calibration.json)")
    parser.add_argument("--levels", type=float, nargs="+", help="levels fitted, in (0, 1)")
    parser.add_argument(
        "--min-count", type=int, default=50,
        help="labelled samples a keypoint needs for its own factor",
    )  # fmt: skip
    parser.add_argument("--max-instances", type=int, help="use at most N instances")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={})
    parser.add_argument(
        "--unsafe-load", action="store_true",
        help="plain torch.load (runs code in the file): trusted files only",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.levels is not None and not all(0 < lv < 1 for lv in args.levels):
        parser.error(f"--levels must be in (0, 1), got {args.levels}")
    if args.min_count < 1:
        parser.error(f"--min-count must be >= 1, got {args.min_count}")
    if args.max_instances is not None and args.max_instances < 1:
        parser.error(f"--max-instances must be >= 1, got {args.max_instances}")
    return args


def main(argv=None):
    args = parse_args(argv)
    from rle.calibration import DEFAULT_LEVELS
    from rle.calibration_run import calibrate_checkpoint
    from rle.calibration_store import calibration_path

    try:
        calibration = calibrate_checkpoint(
            args.config, args.checkpoint, args.out, args.per_keypoint,
            args.levels or DEFAULT_LEVELS, min_count=args.min_count,
            max_instances=args.max_instances, device=args.device,
            cfg_options=args.cfg_options, unsafe_load=args.unsafe_load, method=args.method,
        )  # fmt: skip
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise SystemExit(f"calibrate: {err}") from None
    for level in calibration.levels:
        before, after = calibration.coverage_before[level], calibration.coverage_after[level]
        print(f"level {level:.2f}: coverage {before:.3f} -> {after:.3f}")
    print(f"global factor {calibration.global_scale:.3f}; written to "
          f"{args.out or calibration_path(args.checkpoint)}")  # fmt: skip
    return calibration


if __name__ == "__main__":
    main()
    sys.exit(0)
