"""Compare regression and detection heads on one backbone, in one command.

    python tools/compare.py CONFIG_OR_DIR [...] [--work-root work_dirs/compare] [--out DIR]
        [--cfg-options key=value ...] [--no-train] [--timing-repeats 5]

For every config (a directory stands for the configs in it): train it unless its work dir
already holds a finished run (an interrupted run resumes from its last checkpoint), evaluate it
on the config's validation split, and measure parameters, FLOPs, training iterations/s and
inference latency. Then write one report to ``--out``: ``report.md`` (also printed),
``report.csv``, ``report.json`` and the plots ``pck_curves.png``, ``reliability.png``,
``flow_density.png``, ``error_histograms.png``, ``examples.png``. A run that crashes is
reported in the table with its error, not hidden; its traceback is in ``WORK_DIR/crash.log``.
"""

from __future__ import annotations

import argparse
import json
import os.path as osp
import statistics
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(description="Compare heads on one backbone (rle-pose)")
    parser.add_argument("configs", nargs="+", help="config files or directories of configs")
    parser.add_argument("--work-root", default="work_dirs/compare")
    parser.add_argument("--out", help="report folder (default: WORK_ROOT/report)")
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        default={},
        help="overrides applied to every config",
    )
    parser.add_argument(
        "--no-train", action="store_true", help="only evaluate runs that are already trained"
    )
    parser.add_argument("--timing-repeats", type=int, default=5)
    return parser.parse_args(argv)


def expand(paths):
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.glob("*.py"))
        elif p.is_file():
            out.append(p)
        else:
            raise SystemExit(f"no such config or folder: {p}")
    return out


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _costs(runner, repeats: int) -> dict:
    """Parameters (inference model), FLOPs (one sample), train iterations/s, latency."""
    import contextlib
    import io

    import torch
    from mmengine.analysis import get_model_complexity_info

    model = runner.model
    params = sum(p.numel() for n, p in model.named_parameters() if ".loss_module." not in n)
    val_batch = next(iter(runner.test_dataloader))
    one = dict(inputs=val_batch["inputs"][:1], data_samples=val_batch["data_samples"][:1])
    model.eval()
    data = model.data_preprocessor(one, False)
    with contextlib.redirect_stdout(io.StringIO()):
        flops = get_model_complexity_info(
            model, inputs=(data["inputs"],), show_table=False, show_arch=False
        )["flops"]

    def predict():
        with torch.no_grad():
            model(**model.data_preprocessor(one, False), mode="predict")

    latency = _median_time(predict, repeats)
    train_batch = next(iter(runner.train_dataloader))
    optim = torch.optim.Adam(model.parameters(), 1e-6)
    model.train()

    def step():
        optim.zero_grad()
        losses = model(**model.data_preprocessor(train_batch, True), mode="loss")
        sum(v for k, v in losses.items() if "loss" in k).backward()
        optim.step()

    step_time = _median_time(step, repeats)
    model.eval()
    return dict(
        params_m=params / 1e6,
        gflops=flops / 1e9,
        train_iters_per_s=1 / step_time,
        latency_ms=latency * 1e3,
    )


def _flow_density(model):
    """Marginal density along x of the learned 2-D residual flow, on a grid."""
    import numpy as np
    import torch

    flow = getattr(getattr(getattr(model, "head", None), "loss_module", None), "flow", None)
    if flow is None or getattr(flow, "features", 0) != 2:
        return None
    grid = np.linspace(-4, 4, 161)
    ys = np.linspace(-10, 10, 401)
    pts = torch.tensor(
        np.stack(np.meshgrid(grid, ys, indexing="ij"), -1).reshape(-1, 2),
        dtype=torch.float32,
        device=next(flow.parameters()).device,
    )
    with torch.no_grad():
        dens = flow.log_prob(pts).exp().cpu().numpy().reshape(len(grid), len(ys))
    return dens.sum(1) * (ys[1] - ys[0])


def run_one(cfg_path: Path, args) -> tuple:
    """Train (if needed) and evaluate one config: ``(row, records, density, meta)``."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from rle.evaluation.dump import load_predictions

    name = cfg_path.stem
    work_dir = Path(args.work_root) / name
    row = dict(name=name, head=None, status="ok", config=str(cfg_path))
    try:
        cfg = Config.fromfile(str(cfg_path))
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        row["head"] = cfg.model.head.type
        cfg.work_dir = str(work_dir)
        cfg.launcher = "none"
        cfg.default_scope = cfg.get("default_scope", "rle")
        dump = work_dir / "predictions.pkl"
        evaluators = (
            cfg.val_evaluator if isinstance(cfg.val_evaluator, list) else [cfg.val_evaluator]
        )
        cfg.test_dataloader = cfg.val_dataloader
        cfg.test_evaluator = list(evaluators) + [dict(type="DumpPredictions", out_file=str(dump))]
        done = work_dir / "done.json"
        if done.is_file():
            row["status"] = "cached"
            cfg.load_from = json.loads(done.read_text())["checkpoint"]
            runner = Runner.from_cfg(cfg)
        else:
            if args.no_train:
                raise RuntimeError("not trained yet (--no-train)")
            cfg.resume = (work_dir / "last_checkpoint").is_file()
            runner = Runner.from_cfg(cfg)
            start = time.perf_counter()
            runner.train()
            row["train_minutes"] = (time.perf_counter() - start) / 60
            ckpt = (work_dir / "last_checkpoint").read_text().strip()
            done.write_text(json.dumps(dict(checkpoint=ckpt, epochs=runner.epoch)))
            row["status"] = "trained"
        start = time.perf_counter()
        metrics = runner.test()
        for key, value in metrics.items():
            row[key.split("/", 1)[-1]] = float(value)
        row.update(_costs(runner, args.timing_repeats))
        meta = runner.test_dataloader.dataset.metainfo
        result = row, load_predictions(str(dump)), _flow_density(runner.model), meta
        row["eval_seconds"] = time.perf_counter() - start
        return result
    except Exception as err:  # noqa: BLE001 - a crashed run goes into the report
        work_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / "crash.log").write_text(traceback.format_exc())
        row["status"] = f"crashed: {type(err).__name__}: {str(err)[:160]}"
        return row, None, None, None


def main(argv=None):
    return run(parse_args(argv))


def run(args):
    """Run the comparison for parsed ``args``; returns the table rows."""
    import numpy as np

    from rle.engine import setup_engine
    from rle.evaluation import report

    setup_engine()
    started = time.perf_counter()
    configs = expand(args.configs)
    out = Path(args.out or Path(args.work_root) / "report")
    rows, runs, densities, sigmas, skeleton = [], {}, {}, None, None
    for i, cfg_path in enumerate(configs, 1):
        print(
            f"[{i}/{len(configs)}] {cfg_path.stem}: training (if needed) and evaluating", flush=True
        )
        row, records, density, meta = run_one(cfg_path, args)
        rows.append(row)
        print(f"[{i}/{len(configs)}] {cfg_path.stem}: {row['status']}", flush=True)
        if records is not None:
            runs[row["name"]] = records
            if density is not None:
                densities[row["name"]] = density
            if meta is not None and meta.get("sigmas") is not None:
                sigmas = np.asarray(meta["sigmas"])
            if meta is not None:
                skeleton = meta.get("skeleton_links", skeleton)
    plot_start = time.perf_counter()
    paths = report.write_tables(rows, out)
    plots = {}
    if runs:  # no plot when every run crashed: the table says why
        if sigmas is None:
            k = len(next(iter(runs.values()))[0]["pred_scores"])
            sigmas = np.full(k, 0.05)  # no OKS sigmas (3-D data): a uniform stand-in
        plots["pck_curves"] = report.plot_pck_curves(runs, out / "pck_curves.png")
        plots["reliability"] = report.plot_reliability(runs, sigmas, out / "reliability.png")
        plots["flow_density"] = report.plot_flow_density(
            densities, np.linspace(-4, 4, 161), out / "flow_density.png"
        )
        plots["error_histograms"] = report.plot_error_histograms(runs, out / "error_histograms.png")
        plots["examples"] = report.plot_examples(runs, out / "examples.png", skeleton=skeleton)
    plot_seconds = time.perf_counter() - plot_start
    train_seconds = sum(60 * r.get("train_minutes", 0.0) for r in rows)
    print()
    print(report.markdown_table(rows))
    print()
    for key, path in {**paths, **plots}.items():
        print(f"{key:>17}: {path}")
    total = time.perf_counter() - started
    print(
        f"\n{total:.1f} s in all: training {train_seconds:.1f} s, the comparison itself "
        f"{total - train_seconds:.1f} s (evaluation and costs "
        f"{sum(r.get('eval_seconds', 0.0) for r in rows):.1f} s, tables and plots "
        f"{plot_seconds:.1f} s)"
    )
    return rows


if __name__ == "__main__":
    main()
    sys.exit(0)
