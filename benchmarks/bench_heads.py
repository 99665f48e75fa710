"""Per-head cost on one shared backbone: training step time, inference latency, parameters and
FLOPs (mmengine's complexity analysis), against the bare backbone.

A training step is forward + loss + backward + Adam step on a batch; the bare backbone runs
the same step with a trivial loss (the mean of its features). The RLE head's overhead must stay
under 5 % of a training step.

    python benchmarks/bench_heads.py [--device cpu|cuda] [--backbone resnet18]
        [--input-size 96 128] [--batch-size 16]
"""

from __future__ import annotations

import argparse

import torch

from rle.evaluation.costs import flops
from rle.registry import MODELS

from common import median_times, table

HEADS = {
    "RLEHead": dict(type="RLEHead"),
    "RegressionHead (L1)": dict(type="RegressionHead", loss="l1"),
    "SoftArgmaxHead (IPR)": dict(type="SoftArgmaxHead"),
    "DSNTHead (JS)": dict(type="DSNTHead"),
    "DebiasedIPRHead": dict(type="DebiasedIPRHead"),
    "SamplingArgmaxHead (tri, S=30)": dict(type="SamplingArgmaxHead", basis="triangular"),
    "HeatmapRLEHead": dict(type="HeatmapRLEHead"),
}


def _estimator(backbone: str, head: dict, device):
    cfg = dict(
        type="TopdownPoseEstimator",
        backbone=dict(type="TimmBackbone", model_name=backbone),
        head=dict(head, num_keypoints=17),
    )
    return MODELS.build(cfg).to(device)


def _count(module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


def _flops(model, inputs) -> float:
    model.eval()
    return flops(model, inputs) / 1e9


def bench(args):
    device = torch.device(args.device)
    w, h = args.input_size
    x = torch.randn(args.batch_size, 3, h, w, device=device)
    target = torch.rand(args.batch_size, 17, 2, device=device) - 0.5
    weight = torch.ones(args.batch_size, 17, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    steps, infer, rows_meta = {}, {}, {}
    bare = _estimator(args.backbone, HEADS["RegressionHead (L1)"], device).backbone
    bare_opt = torch.optim.Adam(bare.parameters(), 1e-3)

    def bare_step():
        bare_opt.zero_grad()
        sum(f.mean() for f in bare(x)).backward()
        bare_opt.step()
        sync()

    steps["bare backbone"] = bare_step
    infer["bare backbone"] = lambda: (bare.eval(), bare(x[:1]), sync())
    rows_meta["bare backbone"] = (_count(bare), _flops(bare, x[:1]))
    for name, head in HEADS.items():
        model = _estimator(args.backbone, head, device)
        opt = torch.optim.Adam(model.parameters(), 1e-3)

        def step(model=model, opt=opt):
            model.train()
            opt.zero_grad()
            losses = model.head.loss(model.extract_feat(x), target, weight)
            sum(v for k, v in losses.items() if "loss" in k).backward()
            opt.step()
            sync()

        def latency(model=model):
            model.eval()
            with torch.no_grad():
                model.head.predict(model.extract_feat(x[:1]))
            sync()

        steps[name], infer[name] = step, latency
        rows_meta[name] = (_count(model.head), _flops(model, x[:1]))
    t_step = median_times(steps, repeats=args.repeats, warmup=2)
    t_inf = median_times(infer, repeats=args.repeats * 3, warmup=3)
    base = t_step["bare backbone"]
    rows = []
    for name in steps:
        params, gflops = rows_meta[name]
        overhead = "" if name == "bare backbone" else f"{(t_step[name] - base) / t_step[name]:.1%}"
        rows.append(
            [
                name,
                f"{t_step[name] * 1e3:.0f}",
                f"{1 / t_step[name]:.2f}",
                overhead,
                f"{t_inf[name] * 1e3:.1f}",
                f"{params:.2f}",
                f"{gflops:.2f}",
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--input-size", type=int, nargs=2, default=(96, 128), metavar=("W", "H"))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(2)
    print(
        f"{args.backbone}, input {args.input_size[0]}x{args.input_size[1]} (w x h), batch "
        f"{args.batch_size}, {args.device}, torch {torch.__version__}\n"
    )
    print(
        table(
            bench(args),
            [
                "model",
                "train step ms",
                "iters/s",
                "head share of the step",
                "latency ms (1 image)",
                "params M (head; backbone row: backbone)",
                "GFLOPs (1 image, whole model)",
            ],
        )
    )


if __name__ == "__main__":
    main()
