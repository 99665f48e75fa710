"""The demo's optimizer step on the CPU: AdamW's fused kernel against its per-tensor and
foreach forms, next to the forward + backward of the step they belong to.

    python benchmarks/bench_optimizer.py [--threads 1] [--repeats 30]

Model: the demo's ResNet-10t trunk with an RLE head (its flow included), batch 16 at 64x48 as
in ``make demo``. Each timed call is ``clip_grad_norm_(max_norm=35)`` + ``optimizer.step()``
(what mmengine's ``OptimWrapper`` does after ``backward``) on fixed gradients; the three forms
run interleaved in one process (medians, ratios to the fused form). One thread by default:
``make demo`` trains two runs at once with one thread each.
"""

from __future__ import annotations

import argparse

import torch

from common import median_times, table


def _model():
    from rle.engine import setup_engine
    from rle.registry import MODELS

    setup_engine()
    model = MODELS.build(
        dict(
            type="TopdownPoseEstimator",
            backbone=dict(type="TimmBackbone", model_name="resnet10t", pretrained=None),
            head=dict(type="RLEHead", num_keypoints=17, loss_cfg=dict(variant="official")),
        )
    )
    model.train()
    return model


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = _model()
    params = [p for p in model.parameters() if p.requires_grad]
    x = torch.randn(16, 3, 64, 48)
    target = torch.rand(16, 17, 2)
    weight = torch.ones(16, 17, 2)

    def loss():
        losses = model.head.loss(model.backbone(x), target, weight)
        return sum(v for k, v in losses.items() if k.startswith("loss"))

    def forward_backward():
        model.zero_grad(set_to_none=False)
        loss().backward()

    forward_backward()
    grads = [p.grad.detach().clone() for p in params]

    def stepper(**kwargs):
        # each form owns a copy of the weights so that the steps do not interact
        own = [p.detach().clone().requires_grad_(True) for p in params]
        for p, g in zip(own, grads):
            p.grad = g.clone()
        opt = torch.optim.AdamW(own, lr=4e-3, weight_decay=1e-4, **kwargs)

        def step():
            torch.nn.utils.clip_grad_norm_(own, 35.0)
            opt.step()

        return step

    forms = {
        "AdamW fused=True (the demo)": stepper(fused=True),
        "AdamW foreach=True": stepper(foreach=True),
        "AdamW per-tensor loop (torch's CPU default)": stepper(foreach=False),
        "forward + backward of the same step": forward_backward,
    }
    times = median_times(forms, repeats=args.repeats)
    fused = times["AdamW fused=True (the demo)"]
    n = sum(p.numel() for p in params)
    rows = [[name, f"{t * 1e3:.1f}", f"{t / fused:.2f}x"] for name, t in times.items()]
    print(
        f"ResNet-10t + RLE head, {n / 1e6:.2f} M parameters in {len(params)} tensors, batch 16 at "
        f"64x48, {args.threads} thread(s), median of {args.repeats}\n"
    )
    print(table(rows, ["clip_grad_norm_ + step", "median ms", "vs fused"]))


if __name__ == "__main__":
    main()
