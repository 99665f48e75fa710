"""Compare regression and detection heads on one backbone, in one command.

    python tools/compare.py CONFIG_OR_DIR [...] [--work-root work_dirs/compare] [--out DIR]
        [--cfg-options key=value ...] [--no-train] [--jobs 1] [--seeds S ...]
        [--timing-repeats 5] [--unsafe-load] [--calibrate [--calib-instances N]]
    python tools/compare.py BASE_CONFIG --heads HEADS.py [...]   # one base, several head blocks
    python tools/compare.py WORK_ROOT [...]                       # finished work dirs

Trains what is missing, evaluates every run on its validation split, writes the report
(``report.md`` also printed, ``report.csv``, ``report.json``, the plots) to ``--out``. The
logic, and what each option means, is :func:`rle.compare.compare`.
"""

from __future__ import annotations

import argparse
import sys

from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Compare heads on one backbone (rle-pose)")
    parser.add_argument(
        "configs", nargs="+", help="config files, folders of configs, or folders of work dirs"
    )
    parser.add_argument(
        "--heads",
        help="Python file with `heads = dict(name=head_block, ...)`: compare these heads on the "
        "single CONFIG given (its model.head is replaced)",
    )
    parser.add_argument("--work-root", default="work_dirs/compare")
    parser.add_argument("--out", help="report folder (default: WORK_ROOT/report)")
    parser.add_argument(
        "--cfg-options", nargs="+", action=DictAction, default={},
        help="overrides applied to every config",
    )  # fmt: skip
    parser.add_argument(
        "--no-train", action="store_true", help="only evaluate runs that are already trained"
    )
    parser.add_argument(
        "--jobs", type=int, default=1,
        help="train up to this many runs at once (separate processes, cpu_count // jobs threads)",
    )  # fmt: skip
    parser.add_argument(
        "--seeds", type=int, nargs="+",
        help="train every config once per seed (runs NAME-seedN) and summarise mean and std",
    )  # fmt: skip
    parser.add_argument("--timing-repeats", type=int, default=5)
    parser.add_argument(
        "--unsafe-load", action="store_true",
        help="load checkpoints with plain torch.load (runs code in the file): trusted files only",
    )  # fmt: skip
    parser.add_argument(
        "--calibrate", action="store_true",
        help="fit each run's interval calibration on its config's calib_dataloader (not val) "
        "and report coverage before and after (columns cover@NN cal)",
    )  # fmt: skip
    parser.add_argument(
        "--calib-instances", type=int,
        help="at most this many instances of each calibration split (default: all)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.calib_instances is not None and args.calib_instances < 1:
        parser.error(f"--calib-instances must be >= 1, got {args.calib_instances}")
    if args.seeds and (len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0):
        parser.error(f"--seeds must be distinct and >= 0, got {args.seeds}")
    if args.timing_repeats < 1:
        parser.error(f"--timing-repeats must be >= 1, got {args.timing_repeats}")
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    if args.heads and len(args.configs) != 1:
        parser.error("--heads takes exactly one base CONFIG")
    return args


def main(argv=None):
    args = parse_args(argv)
    from rle.compare import compare

    def log(line):
        print(line, flush=True)

    try:
        report = compare(
            args.configs, work_root=args.work_root, out=args.out, heads=args.heads,
            seeds=args.seeds, jobs=args.jobs, cfg_options=args.cfg_options,
            train=not args.no_train, timing_repeats=args.timing_repeats, log=log,
            unsafe_load=args.unsafe_load, calibrate=args.calibrate,
            calibration_instances=args.calib_instances,
        )  # fmt: skip
    except ValueError as err:  # what was named cannot be compared: say what
        raise SystemExit(f"compare: {err}") from None
    print()
    print(report)
    return report


if __name__ == "__main__":
    main()
    sys.exit(0)
