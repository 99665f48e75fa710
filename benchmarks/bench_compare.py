"""How long the comparison itself takes (evaluation, costs, tables and plots; no training).

    python benchmarks/bench_compare.py [--work-root work_dirs/demo] [--repeats 3]

Runs :func:`rle.compare.compare` on ``configs/demo`` without training, on finished runs of
the four demo heads, and reports the median wall time of the whole comparison and of its
phases, next to the peer: the bare ``runner.test()`` of the same four runs (what evaluating
them costs without the report).
With ``--work-root`` pointing at the output of ``make demo`` the real demo runs are used;
otherwise (the default) each demo config is first trained for one epoch into
``work_dirs/bench_compare`` (accuracy does not change the evaluation's cost). Target: under
60 s for the four heads.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import time
from pathlib import Path

from rle.compare import compare, expand_runs

from common import table

ROOT = Path(__file__).resolve().parents[1]


def _quiet(fn, *args, **kwargs):
    """Call ``fn`` with stdout captured (mmengine and the report print a lot)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def _bare_test(specs) -> float:
    """Seconds for plain ``runner.test()`` of every finished run (the peer)."""
    from mmengine.runner import Runner

    from rle.engine import load_config

    total = 0.0
    for spec in specs:
        work_dir = spec.work_dir
        cfg = load_config(spec.config, work_dir=str(work_dir))
        cfg.test_dataloader, cfg.test_evaluator = cfg.val_dataloader, cfg.val_evaluator
        cfg.load_from = spec.checkpoint  # done.json's, resolved against the work dir
        start = time.perf_counter()
        _quiet(lambda c=cfg: Runner.from_cfg(c).test())
        total += time.perf_counter() - start
    return total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-root", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    work_root = args.work_root or ROOT / "work_dirs" / "bench_compare"
    specs = expand_runs([ROOT / "configs" / "demo"], work_root)
    configs = [s.config for s in specs]
    if not all(s.finished for s in specs):
        if args.work_root is not None:
            raise SystemExit(f"{work_root} does not hold finished demo runs (run `make demo`)")
        print(f"training the four demo heads for one epoch each into {work_root} ...")
        one_epoch = {"train_cfg.max_epochs": 1, "train_cfg.val_interval": 1}
        _quiet(compare, configs, work_root=work_root, timing_repeats=1, cfg_options=one_epoch)

    totals, evals, plots = [], [], []
    for _ in range(args.repeats):
        out = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(out):
            report = compare(configs, work_root=work_root, train=False, out=work_root / "report")
        totals.append(time.perf_counter() - start)
        if any(not r["status"].startswith(("cached", "trained")) for r in report.rows):
            raise SystemExit("a run failed:\n" + str(report)[-2000:])
        evals.append(report.eval_seconds)
        plots.append(totals[-1] - evals[-1])
    bare = statistics.median(_bare_test(specs) for _ in range(args.repeats))
    med = statistics.median(totals)
    print(
        table(
            [
                ["compare(train=False) (whole comparison)", f"{med:.1f}", "60"],
                ["  of which evaluation + costs", f"{statistics.median(evals):.1f}", ""],
                ["  of which building, tables and plots", f"{statistics.median(plots):.1f}", ""],
                ["peer: bare runner.test() of the four runs", f"{bare:.1f}", ""],
            ],
            ["four demo heads, 200 val images", "median s", "target s"],
        )
    )
    print(f"\ncomparison / bare evaluation: {med / bare:.2f}x; median of {args.repeats} runs")
    return 0 if med < 60 else 1


if __name__ == "__main__":
    sys.exit(main())
