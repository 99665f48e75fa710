"""Convert MMPose and official-RLE checkpoints to rle-pose, and back.

    python tools/convert_checkpoint.py SRC DST --from {mmpose,official} [--input-size W H]
    python tools/convert_checkpoint.py SRC DST --to {mmpose,official}     # an rle-pose checkpoint

``--from`` writes a self-describing rle-pose checkpoint (``meta["rle_pose"]`` holds the model
config, the input size and the pixel convention) and prints which keys went where; anything it
cannot place is an error. ``--to`` writes the reference layout of a checkpoint converted here.
Logic: :mod:`rle.converters`.
"""

from __future__ import annotations

import argparse

from rle.converters import SOURCES, convert_checkpoint, export_checkpoint


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Convert pose checkpoints (rle-pose)")
    parser.add_argument("src")
    parser.add_argument("dst")
    direction = parser.add_mutually_exclusive_group(required=True)
    direction.add_argument("--from", dest="source", choices=SOURCES, help="SRC's layout")
    direction.add_argument("--to", dest="target", choices=SOURCES, help="DST's layout")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"))
    parser.add_argument(
        "--unsafe-load", action="store_true",
        help="load SRC with plain torch.load: runs code in the file; trusted files only",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.target:
            state = export_checkpoint(args.src, args.dst, target=args.target,
                                      unsafe_load=args.unsafe_load)  # fmt: skip
            print(f"wrote {len(state)} tensors in the {args.target} layout to {args.dst}")
            return state
        conv = convert_checkpoint(
            args.src, args.dst, source=args.source, input_size=args.input_size,
            unsafe_load=args.unsafe_load,
        )  # fmt: skip
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"convert_checkpoint: {err}") from None
    for src, dst in conv.mapping:
        print(f"{src} -> {dst}")
    head = conv.model["head"]
    print(f"\n{len(conv.mapping)} {args.source} keys -> {len(conv.state_dict)} rle-pose tensors: "
          f"{conv.model['backbone']['model_name']} + {head['type']} (K={head['num_keypoints']}), "
          f"input {conv.input_size[0]}x{conv.input_size[1]}, {conv.convention} convention; "
          f"wrote {args.dst}")  # fmt: skip
    return conv


if __name__ == "__main__":
    main()
