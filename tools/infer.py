"""Predict poses in an image, a folder of images or a video, and draw them.

    python tools/infer.py INPUT --checkpoint CKPT [--config CFG] [--bboxes det.json]
        [--ann-file gt.json] [--out DIR] [--device cpu] [--level 0.9] [--score-thr 0.3]
        [--bbox-thr 0.0] [--batch-size 32] [--cfg-options ...] [--no-vis] [--unsafe-load]

INPUT: an image, a folder of images or a video (mp4, avi, ...). Boxes: COCO detections
(``--bboxes``; images matched by id: the ``--ann-file``'s id of the file name, else the numeric
file stem; a video's frame index), the ``--ann-file``'s annotations, or the whole frame. Writes
``DIR/results.json`` (COCO keypoint results), ``DIR/predictions.json`` (with sigma, intervals,
depth) and ``DIR/vis/*.png`` or ``DIR/NAME.mp4``. ``--config`` may be left out for a
self-describing checkpoint (every one trained or converted here).

Logic: :func:`rle.apis.infer_files`.
"""

from __future__ import annotations

import argparse


def _level(text: str):
    if text.lower() in ("none", "0", "off"):
        return None
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"--level must be in (0, 1) or 'none', got {text}")
    return value


def parse_args(argv=None):
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(description="Predict and draw poses (rle-pose)")
    parser.add_argument("input", help="an image, a folder of images or a video file")
    parser.add_argument("--checkpoint", required=True, help="the model's checkpoint")
    parser.add_argument("--config", help="the model's config (default: from the checkpoint)")
    boxes = parser.add_argument_group("boxes (default: the whole frame)")
    boxes.add_argument("--bboxes", help="COCO detections json [{image_id, bbox, score}]")
    boxes.add_argument("--ann-file", help="COCO keypoint json: image ids (and GT boxes)")
    boxes.add_argument("--bbox-thr", type=float, default=0.0, help="drop detections below")
    parser.add_argument("--out", default="work_dirs/infer", help="output folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--level", type=_level, default=0.9, help="interval level of the ellipses ('none': none)"
    )
    parser.add_argument("--score-thr", type=float, default=0.3, help="keypoints drawn above")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--cfg-options", nargs="+", action=DictAction, default={},
        help="override config entries, e.g. model.test_cfg.flip_test=False",
    )  # fmt: skip
    parser.add_argument("--no-vis", action="store_true", help="write results.json only")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--unsafe-load", action="store_true",
        help="load the checkpoint with plain torch.load (trusted files only)",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv=None):
    from rle.apis import infer_files

    args = parse_args(argv)
    try:
        summary = infer_files(
            args.input, config=args.config, checkpoint=args.checkpoint, device=args.device,
            unsafe_load=args.unsafe_load, cfg_options=args.cfg_options, bbox_file=args.bboxes,
            ann_file=args.ann_file, out_dir=args.out, level=args.level, score_thr=args.score_thr,
            bbox_thr=args.bbox_thr, batch_size=args.batch_size, draw=not args.no_vis,
            progress=not args.no_progress,
        )  # fmt: skip
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"infer: {err}") from None
    print(f"{summary.num_instances} instances in {summary.num_images} images/frames: "
          f"{summary.results_file}")  # fmt: skip
    for path in summary.visualizations[:3]:
        print(f"  {path}")
    return summary


if __name__ == "__main__":
    main()
