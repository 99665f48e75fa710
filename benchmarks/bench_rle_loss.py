"""RLE loss speed: :class:`rle.losses.RLELoss` (nflows structure, validation, all variants)
against a plain torch loop over the six couplings computing the same official loss.

fp32, CPU, forward + backward (pred, sigma logits and every flow parameter), median of repeated
interleaved runs, 2 threads.

    python benchmarks/bench_rle_loss.py
"""

from __future__ import annotations

import argparse
import math

import torch
from torch import nn

from rle.flow import coupling_masks
from rle.losses import RLELoss

from common import median_times, table


class PlainRealNVP(nn.Module):
    """The baseline: the reference RealNVP written as a bare loop (no nflows)."""

    def __init__(self, features: int, layers: int = 6, hidden: int = 64):
        super().__init__()

        def mlp(tanh):
            mods = [
                nn.Linear(features, hidden),
                nn.LeakyReLU(),
                nn.Linear(hidden, hidden),
                nn.LeakyReLU(),
                nn.Linear(hidden, features),
            ]
            return nn.Sequential(*(mods + [nn.Tanh()] if tanh else mods))

        self.register_buffer("mask", coupling_masks(features, layers))
        self.s = nn.ModuleList(mlp(True) for _ in range(layers))
        self.t = nn.ModuleList(mlp(False) for _ in range(layers))

    def log_prob(self, x):
        logdet = x.new_zeros(x.shape[0])
        z = x
        for i in reversed(range(len(self.t))):
            m = self.mask[i]
            z_ = m * z
            s = self.s[i](z_) * (1 - m)
            t = self.t[i](z_) * (1 - m)
            z = (1 - m) * (z - t) * torch.exp(-s) + z_
            logdet = logdet - s.sum(1)
        d = x.shape[1]
        return -0.5 * (z**2).sum(1) - 0.5 * d * math.log(2 * math.pi) + logdet


def plain_official_loss(flow, pred, logits, target, weight):
    sigma = torch.sigmoid(logits)
    u = (pred - target) / sigma
    log_phi = flow.log_prob(u.reshape(-1, pred.shape[-1])).reshape(*pred.shape[:2], 1)
    nf = torch.log(sigma) - log_phi
    q = torch.log(sigma * math.sqrt(2 * math.pi)) + (pred - target).abs() / (
        math.sqrt(2) * sigma + 1e-9
    )
    return ((nf + q) * weight).sum() / pred.shape[0]


def bench_case(dims: int, k: int, repeats: int, b: int = 64):
    torch.manual_seed(0)
    pred = (torch.rand(b, k, dims) - 0.5).requires_grad_()
    logits = torch.randn(b, k, dims).requires_grad_()
    target = torch.rand(b, k, dims) - 0.5
    weight = (torch.rand(b, k, 1) > 0.2).float().expand(b, k, dims)
    plain = PlainRealNVP(dims)
    losses = {
        "plain torch loop (official loss)": lambda: plain_official_loss(
            plain, pred, logits, target, weight
        )
    }
    for variant in ("official", "mmpose", "paper"):
        module = RLELoss(dims, variant=variant, flow_cfg=dict(init="torch_default"))
        losses[f"RLELoss(variant={variant!r})"] = lambda m=module: (
            m(pred, logits, target, weight).loss
        )

    def step(fn):
        def run():
            pred.grad = logits.grad = None
            fn().backward()

        return run

    times = median_times(
        {n: step(f) for n, f in losses.items()}, repeats=repeats, warmup=5, inner=5
    )
    base = times["plain torch loop (official loss)"]
    return [
        [f"{dims}-D, B={b}, K={k}", name, f"{t * 1e3:.3f}", f"{t / base:.3f}x"]
        for name, t in times.items()
    ]


def bench(repeats: int):
    return bench_case(2, 17, repeats) + bench_case(3, 18, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, forward+backward\n")
    print(table(bench(args.repeats), ["case", "implementation", "median ms", "vs plain loop"]))


if __name__ == "__main__":
    main()
