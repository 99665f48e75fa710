"""Generate the synthetic COCO / Human3.6M datasets (real file formats, deterministic by seed).

    python tools/make_synthetic.py coco --out data/synth_coco --train-images 2000 \\
        --val-images 500 --seed 0 [--person-height 0.35 0.95 --max-people 3 --clutter 1 \\
        --max-yaw 180 --roll 1]
    python tools/make_synthetic.py h36m --out data/synth_h36m --frames-per-subject 200 \\
        --seed 0 [--cameras ../shared/data/h36m_sample/cameras.pkl]

A previous synthetic generation in ``--out`` is replaced; with ``--if-needed`` nothing is done
when ``--out/.complete`` already records the same parameters (what configs do through
:func:`rle.datasets.synthetic.ensure_synth_coco` / ``ensure_synth_h36m``). See
:mod:`rle.datasets.synthetic.coco` and :mod:`rle.datasets.synthetic.h36m` for the written
layouts; the work is :func:`rle.datasets.synthetic.make`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rle.datasets import synthetic
from rle.datasets.h36m import H36M_SUBJECTS


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="dataset", required=True)

    def common(p: argparse.ArgumentParser, size) -> None:
        p.add_argument("--out", type=Path, required=True, help="output folder")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--image-size", type=int, nargs=2, default=size, metavar=("W", "H"))
        p.add_argument("--if-needed", action="store_true",
                       help="skip when --out/.complete records the same parameters")  # fmt: skip
        p.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    coco = sub.add_parser("coco", help="SynthCOCO: COCO person-keypoints json + images")
    common(coco, (256, 192))
    coco.add_argument("--train-images", type=int, default=2000)
    coco.add_argument("--val-images", type=int, default=500)
    d = synthetic.COCO_OPTION_DEFAULTS  # the difficulty options
    coco.add_argument("--person-height", type=float, nargs=2, default=d["person_height"],
                      metavar=("LOW", "HIGH"), help="standing height / image height")  # fmt: skip
    coco.add_argument("--max-people", type=int, default=d["max_people"])
    coco.add_argument("--clutter", type=float, default=d["clutter"],
                      help="background shapes and occluders (0 = none)")  # fmt: skip
    coco.add_argument("--max-yaw", type=float, default=d["max_yaw"],
                      help="largest angle (deg) between facing and camera direction")  # fmt: skip
    coco.add_argument("--roll", type=float, default=d["roll"],
                      help="scale of the in-plane rotation (0 = upright)")  # fmt: skip

    h36m = sub.add_parser("h36m", help="SynthH36M: MMPose npz + cameras.pkl and RLE json")
    common(h36m, (256, 256))
    h36m.add_argument("--frames-per-subject", type=int, default=200,
                      help="poses per subject, each rendered by 4 cameras")  # fmt: skip
    h36m.add_argument("--subjects", nargs="+", default=list(H36M_SUBJECTS))
    h36m.add_argument("--cameras", type=Path, default=None,
                      help="MMPose cameras.pkl (default: built-in cameras); read with the safe "
                      "loader (dicts, lists, str, numbers, numpy arrays only)")  # fmt: skip
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    common = dict(if_needed=args.if_needed, image_size=tuple(args.image_size), seed=args.seed,
                  progress=not args.no_progress)  # fmt: skip
    try:
        if args.dataset == "coco":
            done = synthetic.make(
                synthetic.SYNTH_COCO, args.out, num_train_images=args.train_images,
                num_val_images=args.val_images, person_height=tuple(args.person_height),
                max_people=args.max_people, clutter=args.clutter, max_yaw=args.max_yaw,
                roll=args.roll, **common,
            )  # fmt: skip
        else:
            done = synthetic.make(
                synthetic.SYNTH_H36M, args.out, subjects=tuple(args.subjects),
                frames_per_subject=args.frames_per_subject, cameras_pkl=args.cameras, **common,
            )  # fmt: skip
    except (TypeError, ValueError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(done)
    return 0


if __name__ == "__main__":
    sys.exit(main())
