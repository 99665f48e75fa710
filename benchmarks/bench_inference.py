"""Inference speed: eager PyTorch against onnxruntime on the exported graph, both with the
decoding (per-crop latency at batch 1, throughput at batch 32).

The same computation on both sides: the normalised crop batch in, the normalised coordinates,
scores (and sigma) out: the eager side is ``model._predict_tensors`` under ``torch.no_grad``
in eval mode, the onnxruntime side the graph :func:`rle.deploy.export_onnx` writes of it (no
flip test). fp32, CPU, random weights, the same threads for both (``torch.set_num_threads``
and ``intra_op_num_threads``), medians of repeated interleaved runs in one process (fewer for
the ResNet-50 batches of 32, seconds each). onnxruntime's idle worker threads do not spin:
interleaved with PyTorch on few cores, their spinning would be charged to the eager runs.

    python benchmarks/bench_inference.py [--repeats 20] [--large-repeats 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch

from rle.deploy import OnnxPoseModel, export_onnx
from rle.registry import MODELS

from common import median_times, table

#: name -> (timm backbone, input size (w, h))
BACKBONES = {
    "ResNet-50 256x192": ("resnet50", (192, 256)),
    "ResNet-10t 64x48": ("resnet10t", (48, 64)),
}
HEADS = {
    "RLE": dict(type="RLEHead"),
    "IPR (SoftArgmaxHead)": dict(type="SoftArgmaxHead"),
}
BATCHES = (1, 32)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _estimator(backbone: str, head: dict):
    torch.manual_seed(0)
    cfg = dict(
        type="TopdownPoseEstimator",
        backbone=dict(type="TimmBackbone", model_name=backbone),
        head=dict(head, num_keypoints=17),
    )
    return MODELS.build(cfg).eval()


def _runner(path: str, threads: int) -> OnnxPoseModel:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return OnnxPoseModel(path, session_options=options)


def bench(args, folder: Path):
    rows = []
    for model_name, (backbone, (w, h)) in BACKBONES.items():
        for head_name, head in HEADS.items():
            model = _estimator(backbone, head)
            path = export_onnx(model, folder / f"{backbone}-{head['type']}.onnx", input_size=(w, h))
            runner = _runner(path, args.threads)
            exporter = runner.metadata["exporter"]
            for batch in BATCHES:
                x = torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(batch))
                x_np = x.numpy()

                def eager(x=x, model=model):
                    with torch.no_grad():
                        model._predict_tensors(x, None)

                def onnx(x_np=x_np, runner=runner):
                    runner.run(x_np)

                large = backbone == "resnet50" and batch > 1
                repeats = args.large_repeats if large else args.repeats
                times = median_times(
                    {"eager": eager, "onnxruntime": onnx}, repeats=repeats, warmup=1 if large else 3
                )
                te, to = times["eager"], times["onnxruntime"]
                rows.append([
                    model_name, head_name, batch, f"{te * 1e3:.1f}", f"{to * 1e3:.1f}",
                    f"{te / to:.2f}x", f"{batch / te:.0f}", f"{batch / to:.0f}", exporter,
                ])  # fmt: skip
                print(" | ".join(str(c) for c in rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds per case")
    parser.add_argument("--large-repeats", type=int, default=4,
                        help="timed rounds of the ResNet-50 batch-32 cases")  # fmt: skip
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import onnxruntime as ort

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        rows = bench(args, Path(tmp))
    print(
        f"\ntorch {torch.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}, "
        f"{args.threads} threads each, fp32, {_cpu()}; batch 1: per-crop latency, batch 32: "
        "ms per batch; eager / onnxruntime > 1: onnxruntime is faster\n"
    )
    print(
        table(
            rows,
            [
                "model",
                "head",
                "batch",
                "eager ms",
                "onnxruntime ms",
                "eager / onnxruntime",
                "eager crops/s",
                "onnxruntime crops/s",
                "exporter",
            ],
        )  # fmt: skip
    )


if __name__ == "__main__":
    main()
