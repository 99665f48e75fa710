"""GPU training throughput: ResNet-50 256x192, batch 64, AMP, RLE and IPR heads, against the bare
backbone's forward + backward + step as the floor (issue 15; run it once when a GPU is lent).

For each head:

* **end to end**: the COCO training pipeline (``configs/_base_/datasets/coco-256x192.py``:
  box, flip, half-body, scale/rotation, affine crop, target encoding) on generated SynthCOCO
  images in worker processes, the data preprocessor on the GPU, ``--amp`` (float16 with loss
  scaling through :class:`rle.amp.MixedPrecisionOptimWrapper`), AdamW. Reported: images/s and
  the share of each iteration spent waiting for data (raise ``--workers`` until it is ~0).
* **on-device**: the same step on one batch kept on the GPU (no data loading), which splits
  the step into the bare backbone (the floor: ``feats.float().mean()`` as the loss) and the
  head (the rest: RLE's flow and loss, IPR's deconvolutions and decoding).
* peak GPU memory of each (``torch.cuda.max_memory_allocated``).

    python benchmarks/bench_gpu.py --device cuda [--batch 64] [--workers 12] [--iters 50]
    python benchmarks/bench_gpu.py --smoke      # a few tiny CPU iterations: the script runs
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper

from rle.registry import DATASETS, MODELS

from common import table

ROOT = Path(__file__).resolve().parents[1]
HEADS = {
    "RLE": dict(type="RLEHead", loss_cfg=dict(variant="official", q="laplace")),
    "IPR": dict(type="SoftArgmaxHead"),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _loader(args, data_root: str):
    cfg = Config.fromfile(str(ROOT / "configs/_base_/datasets/coco-256x192.py"))
    pipeline = cfg.train_pipeline
    if args.smoke:
        pipeline = [dict(t, input_size=(48, 64)) if t["type"] == "TopdownAffine" else t
                    for t in pipeline]  # fmt: skip
    synth = dict(num_train_images=args.images, num_val_images=1, seed=0,
                 image_size=(128, 96) if args.smoke else (512, 384))  # fmt: skip
    dataset = DATASETS.build(dict(type="SynthCocoDataset", data_root=data_root, split="train",
                                  synth_cfg=synth, pipeline=pipeline))  # fmt: skip
    return torch.utils.data.DataLoader(
        dataset, batch_size=args.batch, shuffle=True, num_workers=args.workers,
        collate_fn=pseudo_collate, drop_last=True, pin_memory=args.device == "cuda",
        persistent_workers=args.workers > 0,
    )  # fmt: skip


def _model(args, head: dict, device):
    torch.manual_seed(0)
    backbone = "test_resnet" if args.smoke else "resnet50"
    model = MODELS.build(dict(
        type="TopdownPoseEstimator",
        data_preprocessor=dict(type="ImgDataPreprocessor", mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
        backbone=dict(type="TimmBackbone", model_name=backbone),
        head=dict(head, num_keypoints=17),
    ))  # fmt: skip
    model.to(device).train()
    wrapper = build_optim_wrapper(model, dict(
        type="MixedPrecisionOptimWrapper" if args.amp else "OptimWrapper",
        optimizer=dict(type="AdamW", lr=1e-4), _scope_="rle"))  # fmt: skip
    return model, wrapper


def _step(model, wrapper, data, bare: bool = False) -> None:
    with wrapper.optim_context(model):
        data = model.data_preprocessor(data, True)
        if bare:
            loss = model.extract_feat(data["inputs"])[-1].float().mean()
        else:
            losses = model(data["inputs"], data["data_samples"], mode="loss")
            loss, _ = model.parse_losses(losses)
    wrapper.update_params(loss)


def _timed(fn, device, iters: int, warmup: int):
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _peak_reset(device):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device) -> str:
    if device.type != "cuda":
        return "-"
    return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f}"


def end_to_end(args, model, wrapper, loader, device):
    """(images/s, data-wait share) over ``args.iters`` iterations after ``args.warmup``."""
    it = iter(loader)
    waits, steps = [], []
    for i in range(args.warmup + args.iters):
        start = time.perf_counter()
        try:
            data = next(it)
        except StopIteration:
            it = iter(loader)
            data = next(it)
        got = time.perf_counter()
        _step(model, wrapper, data)
        _sync(device)
        end = time.perf_counter()
        if i >= args.warmup:
            waits.append(got - start)
            steps.append(end - start)
    return args.batch * len(steps) / sum(steps), sum(waits) / sum(steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--images", type=int, default=1024, help="generated training images")
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--no-amp", dest="amp", action="store_false")
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run of the script")
    parser.add_argument("--data-root", default=None, help="default: a temporary folder")
    args = parser.parse_args()
    if args.smoke:
        args.device, args.batch, args.workers, args.images = "cpu", 4, 0, 8
        args.iters, args.warmup = 2, 1
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    with tempfile.TemporaryDirectory() as tmp:
        loader = _loader(args, args.data_root or str(Path(tmp) / "synth_coco"))
        fixed = next(iter(loader))
        rows = []
        for name, head in HEADS.items():
            model, wrapper = _model(args, head, device)
            _peak_reset(device)
            ips, wait = end_to_end(args, model, wrapper, loader, device)
            peak = _peak(device)
            full = _timed(lambda m=model, w=wrapper: _step(m, w, fixed), device, args.iters,
                          args.warmup)  # fmt: skip
            bare = _timed(lambda m=model, w=wrapper: _step(m, w, fixed, bare=True), device,
                          args.iters, args.warmup)  # fmt: skip
            rows.append([
                name, f"{ips:.0f}", f"{100 * wait:.0f} %", f"{args.batch / full:.0f}",
                f"{args.batch / bare:.0f}", f"{100 * (full - bare) / full:.0f} %", peak,
            ])  # fmt: skip
            print(" | ".join(rows[-1]), flush=True)
            del model, wrapper
            if device.type == "cuda":
                torch.cuda.empty_cache()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"\n{name}, torch {torch.__version__}, batch {args.batch}, "
          f"{'AMP' if args.amp else 'fp32'}, {args.workers} workers, medians\n")  # fmt: skip
    print(table(rows, ["head", "end-to-end img/s", "data wait", "on-device img/s",
                       "bare backbone img/s (floor)", "head's share of the step",
                       "peak GPU GiB"]))  # fmt: skip


if __name__ == "__main__":
    main()
