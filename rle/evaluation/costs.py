"""What a model costs: parameters, FLOPs, inference latency and training rate.

The timing helpers are the ones the speed benchmarks (``benchmarks/``) use: medians of repeated
calls after a warm-up, candidates interleaved so that machine noise hits them alike.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import time
from typing import Callable, Dict

import torch
from torch import nn

__all__ = ["count_parameters", "estimator_costs", "flops", "median_time", "median_times"]


def median_times(
    fns: Dict[str, Callable[[], None]], repeats: int = 30, warmup: int = 3, inner: int = 1
) -> Dict[str, float]:
    """Median wall time (seconds per call) of each function, the candidates interleaved in
    every round.

    Args:
        fns: name -> function without arguments.
        repeats: timed rounds (>= 1).
        warmup: untimed calls of each function first.
        inner: calls per timed sample (the sample is divided by it).

    Returns:
        name -> median seconds per call.
    """
    if repeats < 1 or inner < 1 or warmup < 0:
        raise ValueError(
            f"repeats and inner must be >= 1 and warmup >= 0, got {repeats}, {inner}, {warmup}"
        )
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            samples[name].append((time.perf_counter() - start) / inner)
    return {name: statistics.median(values) for name, values in samples.items()}


def median_time(fn: Callable[[], None], repeats: int = 5, warmup: int = 1) -> float:
    """Median seconds per call of one function (:func:`median_times`)."""
    return median_times({"fn": fn}, repeats=repeats, warmup=warmup)["fn"]


def count_parameters(module: nn.Module, skip: str = ".loss_module.") -> int:
    """Parameters of ``module`` used at inference: names containing ``skip`` (the RLE flow,
    which only the loss uses) are left out."""
    return sum(p.numel() for n, p in module.named_parameters() if skip not in f".{n}")


def flops(model: nn.Module, inputs: torch.Tensor) -> float:
    """FLOPs of ``model(inputs)`` by mmengine's complexity analysis (its module list silenced)."""
    from mmengine.analysis import get_model_complexity_info

    with contextlib.redirect_stdout(io.StringIO()):
        info = get_model_complexity_info(model, inputs=(inputs,), show_table=False, show_arch=False)
    return float(info["flops"])


def estimator_costs(model: nn.Module, val_batch: dict, train_batch: dict, repeats: int = 5) -> dict:
    """Parameters, FLOPs and latency of one sample, training iterations/s on a batch.

    Args:
        model: a :class:`~rle.models.TopdownPoseEstimator` (mmengine ``BaseModel``: its
            ``data_preprocessor`` and ``forward(mode=...)``).
        val_batch: a collated batch of the test dataloader (its first sample is timed).
        train_batch: a collated batch of the training dataloader.
        repeats: timed calls (medians) of the prediction and of the training step.

    Returns:
        ``params_m`` (millions), ``gflops`` (one sample), ``train_iters_per_s`` (forward,
        loss, backward and an Adam step with a tiny learning rate) and ``latency_ms``. The
        model is left in eval mode; its weights change by the timed steps' tiny updates.
    """
    one = dict(inputs=val_batch["inputs"][:1], data_samples=val_batch["data_samples"][:1])
    model.eval()
    data = model.data_preprocessor(one, False)
    gflops = flops(model, data["inputs"]) / 1e9

    def predict():
        with torch.no_grad():
            model(**model.data_preprocessor(one, False), mode="predict")

    latency = median_time(predict, repeats)
    optim = torch.optim.Adam(model.parameters(), 1e-6)
    model.train()

    def step():
        optim.zero_grad()
        losses = model(**model.data_preprocessor(train_batch, True), mode="loss")
        sum(v for k, v in losses.items() if "loss" in k).backward()
        optim.step()

    step_time = median_time(step, repeats)
    model.eval()
    return dict(
        params_m=count_parameters(model) / 1e6,
        gflops=gflops,
        train_iters_per_s=1 / step_time,
        latency_ms=latency * 1e3,
    )
