"""Export a model to ONNX, decoding (and, if asked, the flip test) inside the graph.

    python tools/export_onnx.py CONFIG CHECKPOINT --out model.onnx [--flip-test|--no-flip-test]
        [--opset 18] [--exporter {auto,dynamo,torchscript}] [--static-batch] [--unsafe-load]
    python tools/export_onnx.py CHECKPOINT --out model.onnx [...]

The graph takes the normalised crop batch ``inputs`` (B, 3, H, W) and gives ``coords``
(B, K, D) normalised, ``scores`` (B, K) and, for heads with sigma, ``sigma`` (B, K, D); its
metadata carries what a runner needs (input size, convention, preprocessing, dataset meta,
interval scales). Run it with :class:`rle.deploy.OnnxPoseModel`. ``--flip-test`` defaults to
the model's ``test_cfg``. The config may be left out for a self-describing checkpoint (every
one trained or converted here).

Logic: :func:`rle.deploy.export_checkpoint` (:func:`rle.deploy.export_onnx`).
"""

from __future__ import annotations

import argparse

from rle.deploy import EXPORTERS, export_checkpoint


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Export a keypoint model to ONNX (rle-pose)")
    parser.add_argument("config", help="the config, or the checkpoint when it is the only path")
    parser.add_argument("checkpoint", nargs="?", default=None)
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument(
        "--flip-test",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="put the flip test in the graph (default: the model's test_cfg)",
    )
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    parser.add_argument(
        "--exporter",
        choices=EXPORTERS,
        default="auto",
        help="auto: torch.export (dynamo), else TorchScript",
    )
    parser.add_argument("--static-batch", action="store_true", help="no dynamic batch axis")
    parser.add_argument(
        "--unsafe-load",
        action="store_true",
        help="load the checkpoint with plain torch.load (trusted files only)",
    )
    args = parser.parse_args(argv)
    if args.checkpoint is None:  # tools/export_onnx.py CHECKPOINT
        args.config, args.checkpoint = None, args.config
    return args


def main(argv=None) -> str:
    args = parse_args(argv)
    path = export_checkpoint(
        args.checkpoint,
        args.out,
        config=args.config,
        unsafe_load=args.unsafe_load,
        flip_test=args.flip_test,
        opset=args.opset,
        exporter=args.exporter,
        dynamic_batch=not args.static_batch,
    )
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
