"""Training speed: float32 against bfloat16 autocast (``--amp`` on the CPU) and channels_last.

One training iteration = the data preprocessor, the forward with the loss, backward and the
optimizer step (AdamW, as the configs'), through the optimizer wrappers the trainer uses:
mmengine's ``OptimWrapper`` (float32) and :class:`rle.amp.MixedPrecisionOptimWrapper`
(bfloat16). ``channels_last`` converts the backbone's weights and the input batch to the
channels-last memory format. The variants of one model are interleaved in every round and
timed in one process (medians); each variant trains its own copy of the same initial weights.

Settings: the demo's (ResNet-10t, 64x48, batch 16, one thread: ``make demo`` trains two runs
on the two cores, one thread each) and ResNet-50 at 256x192 (batch 8 by default: a batch of
64 takes tens of seconds per step on two cores; iterations/s scale with the batch there).

    python benchmarks/bench_training.py [--repeats 15] [--large-repeats 3] [--threads 1]
        [--large-threads 2] [--large-batch 8] [--skip-demo | --skip-large]
"""

from __future__ import annotations

import argparse
import copy

import torch
from mmengine.optim import build_optim_wrapper
from mmengine.structures import BaseDataElement

from rle.registry import MODELS

from common import median_times, table

DEMO_HEADS = {
    "RLE": dict(type="RLEHead", loss_cfg=dict(variant="official", q="laplace")),
    "L1 regression": dict(type="RegressionHead"),
    "IPR": dict(type="SoftArgmaxHead"),
    "sampling-argmax (triangular)": dict(type="SamplingArgmaxHead", basis="triangular"),
}
LARGE_HEADS = {k: DEMO_HEADS[k] for k in ("RLE", "IPR")}
VARIANTS = {
    "fp32": dict(amp=False, channels_last=False),
    "bf16": dict(amp=True, channels_last=False),
    "fp32 + channels_last": dict(amp=False, channels_last=True),
    "bf16 + channels_last": dict(amp=True, channels_last=True),
}


def _batch(batch: int, w: int, h: int, k: int = 17):
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8)
              for _ in range(batch)]  # fmt: skip
    samples = []
    for _ in range(batch):
        s = BaseDataElement()
        s.keypoint_labels = torch.rand(k, 2, generator=gen) - 0.5
        s.keypoint_weights = torch.ones(k)
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def _step_fn(model, batch, *, amp: bool, channels_last: bool):
    """One training iteration of ``model`` on ``batch`` (a closure without arguments)."""
    wrapper_cfg = dict(
        type="MixedPrecisionOptimWrapper" if amp else "OptimWrapper",
        optimizer=dict(type="AdamW", lr=1e-4),
        _scope_="rle",
    )
    wrapper = build_optim_wrapper(model, wrapper_cfg)
    if channels_last:
        model.backbone.to(memory_format=torch.channels_last)
    model.train()

    def step():
        with wrapper.optim_context(model):
            data = model.data_preprocessor(batch, True)
            inputs = data["inputs"]
            if channels_last:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            losses = model(inputs, data["data_samples"], mode="loss")
        loss, _ = model.parse_losses(losses)
        wrapper.update_params(loss)

    return step


def bench(setting: str, backbone: str, size, batch: int, heads: dict, repeats: int, threads: int):
    torch.set_num_threads(threads)
    w, h = size
    data = _batch(batch, w, h)
    rows = []
    for head_name, head in heads.items():
        torch.manual_seed(0)
        base = MODELS.build(
            dict(
                type="TopdownPoseEstimator",
                backbone=dict(type="TimmBackbone", model_name=backbone),
                head=dict(head, num_keypoints=17),
            )
        )
        fns = {
            name: _step_fn(copy.deepcopy(base), data, **kw) for name, kw in VARIANTS.items()
        }
        times = median_times(fns, repeats=repeats, warmup=2)
        ref = times["fp32"]
        row = [setting, head_name]
        for name in VARIANTS:
            row.append(f"{1 / times[name]:.2f} ({ref / times[name]:.2f}x)")
        rows.append(row)
        print(" | ".join(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--large-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="threads of the demo setting")
    parser.add_argument("--large-threads", type=int, default=2)
    parser.add_argument("--large-batch", type=int, default=8)
    parser.add_argument("--skip-large", action="store_true", help="the demo setting only")
    parser.add_argument("--skip-demo", action="store_true", help="ResNet-50 only")
    args = parser.parse_args()
    rows = []
    if not args.skip_demo:
        rows += bench("ResNet-10t 64x48, batch 16", "resnet10t", (48, 64), 16, DEMO_HEADS,
                      args.repeats, args.threads)  # fmt: skip
    if not args.skip_large:
        rows += bench(f"ResNet-50 256x192, batch {args.large_batch}", "resnet50", (192, 256),
                      args.large_batch, LARGE_HEADS, args.large_repeats,
                      args.large_threads)  # fmt: skip
    print(
        f"\ntorch {torch.__version__}; training iterations/s (speed-up over fp32), medians of "
        f"interleaved rounds; demo setting {args.threads} thread(s), ResNet-50 "
        f"{args.large_threads}\n"
    )
    print(table(rows, ["setting", "head", *VARIANTS]))


if __name__ == "__main__":
    main()
