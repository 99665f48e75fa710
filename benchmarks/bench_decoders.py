"""Decoder speed: soft-argmax against dsntnn, kornia and the full-grid expectation (MMPose/kornia
form); sampling-argmax time and peak memory against a straightforward implementation.

fp32, CPU, forward + backward, median of repeated interleaved runs, 2 threads.

    python benchmarks/bench_decoders.py            # prints the Markdown tables for the README
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from heads.functional import sampling_argmax, soft_argmax

from common import median_times, table

SHAPE_2D = (32, 17, 64, 48)
SHAPE_3D = (8, 17, 32, 32, 32)


def full_grid_soft_argmax(logits: torch.Tensor) -> torch.Tensor:
    """The MMPose IPR / kornia form: softmax, then a full-size coordinate grid per axis."""
    d = logits.dim() - 2
    spatial = logits.shape[2:]
    p = F.softmax(logits.flatten(2), -1).view_as(logits)
    grids = torch.meshgrid(
        *[(torch.arange(n, dtype=logits.dtype) + 0.5) / n - 0.5 for n in spatial], indexing="ij"
    )
    coords = [(p * g).flatten(2).sum(-1) for g in grids]  # (z,) y, x
    return torch.stack(coords[::-1], -1) if d > 1 else coords[0].unsqueeze(-1)


def _step(fn, x):
    def run():
        x.grad = None
        fn(x).sum().backward()

    return run


REGIMES = {
    "default glibc malloc": {},
    # a heap that is never trimmed: no page faults after warm-up, compute and bandwidth only
    "warm heap (MALLOC_MMAP/TRIM_THRESHOLD_ raised)": {
        "MALLOC_MMAP_THRESHOLD_": "4000000000",
        "MALLOC_TRIM_THRESHOLD_": "8000000000",
    },
}


def soft_argmax_child(shape, repeats: int) -> None:
    """One shape, every implementation, in this fresh process: prints JSON medians."""
    import dsntnn
    import kornia.geometry.subpix as ksub

    torch.set_num_threads(2)
    torch.manual_seed(0)
    x = torch.randn(shape, requires_grad=True)
    fns = {
        "rle-pose soft_argmax (marginal-first, fused backward)": _step(soft_argmax, x),
        "dsntnn flat_softmax + dsnt": _step(lambda t: dsntnn.dsnt(dsntnn.flat_softmax(t)), x),
        "full-grid expectation (MMPose IPR form)": _step(full_grid_soft_argmax, x),
    }
    if len(shape) == 4:
        fns["kornia spatial_soft_argmax2d"] = _step(
            lambda t: ksub.spatial_soft_argmax2d(t, normalized_coordinates=True), x
        )
    print(json.dumps(median_times(fns, repeats=repeats)))


def bench_soft_argmax(repeats: int):
    """Each shape in a fresh process per allocator regime (allocator state changes timings of
    large temporaries by several times on this machine)."""
    import os

    rows = []
    for regime, env in REGIMES.items():
        for shape in (SHAPE_2D, SHAPE_3D):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--soft-argmax-child",
                    json.dumps(shape),
                    "--repeats",
                    str(repeats),
                ],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, **env},
            ).stdout
            times = json.loads(out.strip().splitlines()[-1])
            ours = times["rle-pose soft_argmax (marginal-first, fused backward)"]
            for name, t in times.items():
                rows.append([regime, str(tuple(shape)), name, f"{t * 1e3:.2f}", f"{t / ours:.2f}x"])
    return rows


# -- sampling-argmax ---------------------------------------------------------------------------
def straightforward_sampling(logits: torch.Tensor, tau: float, num_samples: int) -> torch.Tensor:
    """Triangular sampling-argmax written the direct way (as the official code): noise, Gumbel
    softmax and the renormalisation all materialised at (B, K, S, H*W)."""
    b, k, h, w = logits.shape
    flat = logits.reshape(b, k, 1, h * w)
    u = torch.rand(b, k, num_samples, h * w)
    heat = F.softmax(flat - torch.log(-torch.log(u)) / tau, dim=-1)
    heat = heat / heat.sum(dim=-1, keepdim=True)
    heat = heat.reshape(b, k, num_samples, h, w)
    coords = []
    for marginal in (heat.sum(3), heat.sum(4)):
        n = marginal.shape[-1]
        uu = torch.rand_like(marginal)
        eps = torch.where(uu < 0.5, torch.sqrt(2 * uu) - 1, 1 - torch.sqrt(2 - 2 * uu))
        pos = torch.arange(n, dtype=marginal.dtype).expand_as(marginal) + eps
        left = pos.floor() + 1
        padded = F.pad(marginal, (1, 1))
        lv = padded.gather(-1, left.long())
        rv = padded.gather(-1, (pos + 1).floor().long() + 1)
        weights = lv + (rv - lv) * (pos + 1 - left)
        weights = weights / weights.sum(-1, keepdim=True)
        coords.append((weights * pos).sum(-1, keepdim=True) / n - 0.5)
    return torch.cat(coords, -1)


def _sampling_fns(x):
    return {
        "rle-pose sampling_argmax": _step(lambda t: sampling_argmax(t, 1.0, 30, "triangular"), x),
        "rle-pose sampling_argmax chunk_size=5": _step(
            lambda t: sampling_argmax(t, 1.0, 30, "triangular", chunk_size=5), x
        ),
        "straightforward (B,K,S,H*W)": _step(lambda t: straightforward_sampling(t, 1.0, 30), x),
    }


def _high_water_kib() -> int:
    # VmHWM belongs to this process's address space (ru_maxrss is inherited across fork/exec)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_memory_child(name: str) -> None:
    """Run one variant once in this (fresh) process and print the peak RSS increase in MiB."""
    torch.set_num_threads(2)
    torch.manual_seed(0)
    x = torch.randn(SHAPE_2D, requires_grad=True)
    fn = _sampling_fns(x)[name]
    base = _high_water_kib()
    fn()
    print(json.dumps({"peak_mib": (_high_water_kib() - base) / 1024}))


def bench_sampling(repeats: int):
    torch.manual_seed(0)
    x = torch.randn(SHAPE_2D, requires_grad=True)
    times = median_times(_sampling_fns(x), repeats=repeats, warmup=1)
    ours = times["rle-pose sampling_argmax"]
    rows = []
    for name, t in times.items():
        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        peak = json.loads(out.strip().splitlines()[-1])["peak_mib"]
        rows.append([name, f"{t * 1e3:.0f}", f"{t / ours:.2f}x", f"{peak:.0f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--soft-argmax-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        peak_memory_child(args.memory_child)
        return
    if args.soft_argmax_child:
        soft_argmax_child(tuple(json.loads(args.soft_argmax_child)), args.repeats)
        return
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, forward+backward\n")
    print(
        table(
            bench_soft_argmax(args.repeats),
            ["allocator", "input (B,K,[D,]H,W)", "implementation", "median ms", "vs ours"],
        )
    )
    print()
    print(f"sampling-argmax, triangular basis, S=30, input {SHAPE_2D}:\n")
    print(
        table(
            bench_sampling(max(5, args.repeats // 3)),
            ["implementation", "median ms", "vs ours", "peak extra memory MiB"],
        )
    )


if __name__ == "__main__":
    main()
