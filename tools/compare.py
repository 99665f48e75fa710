"""Compare regression and detection heads on one backbone, in one command.

    python tools/compare.py CONFIG_OR_DIR [...] [--work-root work_dirs/compare] [--out DIR]
        [--cfg-options key=value ...] [--no-train] [--jobs 1] [--seeds S ...]
        [--timing-repeats 5]
    python tools/compare.py BASE_CONFIG --heads HEADS.py [...]   # one base, several head blocks
    python tools/compare.py WORK_ROOT [...]                       # finished work dirs

What is compared: config files; folders of configs; a base config with ``--heads HEADS.py``
(a file defining ``heads = dict(name=head_block, ...)``; each block replaces the base's
``model.head``, and the generated configs are written to ``WORK_ROOT/configs/``); or a folder
of work dirs finished by this tool or ``tools/train.py`` (each holds ``done.json``, written
when training completes, and its config), which are evaluated where they are.

For every run: train it unless its work dir
already holds a finished run (an interrupted run resumes from its last checkpoint), evaluate it
on the config's validation split, and measure parameters, FLOPs, training iterations/s and
inference latency. With ``--jobs N`` up to N runs train at once, each in its own
``tools/train.py`` process with ``cpu_count // N`` threads (small models use two 1-thread
processes better than one 2-thread process); evaluation and timing stay sequential so the
measured costs are not disturbed. Then write one report to ``--out``: ``report.md`` (also printed),
``report.csv``, ``report.json`` and the plots ``pck_curves.png``, ``reliability.png``,
``flow_density.png``, ``error_histograms.png``, ``examples.png``. A run that crashes is
reported in the table with its error, not hidden; its traceback is in ``WORK_DIR/crash.log``.

``--seeds 0 1 2`` trains every config once per seed (``randomness.seed``; runs and work dirs
named ``NAME-seedN``) and adds a summary with the mean and standard deviation over the seeds
(``summary.md/.csv/.json``, also printed): at small budgets the seed moves AP by as much as
the gaps between heads. Rows named ``NAME-seedN`` are summarised the same way when a folder of
finished work dirs is compared.
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import List, NamedTuple, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(description="Compare heads on one backbone (rle-pose)")
    parser.add_argument(
        "configs", nargs="+", help="config files, folders of configs, or folders of work dirs"
    )
    parser.add_argument(
        "--heads",
        help="Python file with `heads = dict(name=head_block, ...)`: compare these heads on the "
        "single CONFIG given (its model.head is replaced)",
    )
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
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="train up to this many runs at once (separate processes, cpu_count // jobs threads)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        help="train every config once per seed (runs NAME-seedN) and summarise mean and std",
    )
    parser.add_argument("--timing-repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.seeds and (len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0):
        parser.error(f"--seeds must be distinct and >= 0, got {args.seeds}")
    if args.timing_repeats < 1:
        parser.error(f"--timing-repeats must be >= 1, got {args.timing_repeats}")
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    if args.heads and len(args.configs) != 1:
        parser.error("--heads takes exactly one base CONFIG")
    return args


class RunSpec(NamedTuple):
    """One run of the comparison: its name (the table row), config file and work dir, and the
    seed that overrides the config's ``randomness.seed`` (None: the config's own)."""

    name: str
    config: Path
    work_dir: Path
    seed: Optional[int] = None


def _work_dir_config(work_dir: Path) -> Path:
    # tools/train.py dumps the config under its own name; --jobs runs train compare_config.py
    for cand in (work_dir / f"{work_dir.name}.py", work_dir / "compare_config.py"):
        if cand.is_file():
            return cand
    raise SystemExit(f"{work_dir} has done.json but no config file to evaluate it with")


def _head_configs(base: Path, heads_file: str, work_root: Path) -> List[Path]:
    """Write one config per head block of ``heads_file`` on top of ``base``."""
    from mmengine.config import Config

    try:
        blocks = Config.fromfile(heads_file).get("heads")
    except Exception as err:  # noqa: BLE001 - a missing or broken file: say which
        raise SystemExit(f"cannot read --heads {heads_file}: {type(err).__name__}: {err}") from None
    if not isinstance(blocks, dict) or not blocks:
        raise SystemExit(f"{heads_file} must define heads = dict(name=head_block, ...)")
    rest = base.stem.split("_", 1)[1] if "_" in base.stem else base.stem
    folder = work_root / "configs"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, block in blocks.items():
        if not isinstance(block, dict) or "type" not in block:
            raise SystemExit(f"{heads_file}: heads[{name!r}] must be a dict with a 'type'")
        block = block.to_dict() if hasattr(block, "to_dict") else dict(block)
        path = folder / f"{name}_{rest}.py"
        path.write_text(
            f"# generated by tools/compare.py: {base} with the head block {name!r}\n"
            f"_base_ = [{str(base.resolve())!r}]\n"
            f"model = dict(head=dict(_delete_=True, **{block!r}))\n"
        )
        out.append(path)
    return out


def expand(paths, work_root="work_dirs/compare", heads=None, seeds=None) -> List[RunSpec]:
    """The runs named by the command line (see the module docstring)."""
    work_root = Path(work_root)

    def from_config(c: Path) -> List[RunSpec]:
        if not seeds:
            return [RunSpec(c.stem, c, work_root / c.stem)]
        names = [f"{c.stem}-seed{s}" for s in seeds]
        return [RunSpec(n, c, work_root / n, s) for n, s in zip(names, seeds)]

    if heads:
        base = Path(paths[0])
        if not base.is_file():
            raise SystemExit(f"no such base config: {base}")
        return [r for c in _head_configs(base, heads, work_root) for r in from_config(c)]
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            configs = sorted(p.glob("*.py"))
            finished = sorted(d for d in p.iterdir() if (d / "done.json").is_file())
            if not configs and not finished:
                raise SystemExit(f"{p} holds neither configs nor finished work dirs")
            if finished and seeds:
                raise SystemExit(
                    f"--seeds trains configs; {p} holds finished work dirs (their seeds are "
                    "fixed: rows named NAME-seedN are summarised without --seeds)"
                )
            out += [r for c in configs for r in from_config(c)]
            out += [RunSpec(d.name, _work_dir_config(d), d) for d in finished]
        elif p.is_file():
            out += from_config(p)
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


def _residual_quantiles(model, levels=(0.5, 0.68, 0.95)):
    """``{level: q}`` with ``P(|u_d| <= q) = level`` for one coordinate of the normalised
    residual ``u = (mu - gt) / sigma`` under the density the 2-D RLE loss implies, or ``None``
    for heads without a flow.

    Why not a Laplace quantile: the RLE loss constrains only the product of sigma and the
    flow's scale (``D log sigma`` cancels against the flow's Jacobian when the flow shrinks), so
    training may inflate sigma while the flow sharpens; a fixed Laplace interval then covers
    everything. The implied density is ``phi(u)^m * prod_d q(u_d)`` (``m = D`` for the
    official and MMPose variants, whose ``log phi`` is counted once per coordinate; 1 for the
    paper's), normalised on a grid sized from samples of the flow.
    """
    import numpy as np
    import torch

    loss = getattr(getattr(model, "head", None), "loss_module", None)
    flow = getattr(loss, "flow", None)
    if flow is None or getattr(flow, "features", 0) != 2:
        return None
    device = next(flow.parameters()).device
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        samples, _ = flow.inverse(torch.randn(20000, 2, generator=gen).to(device))
        half = 4 * float(samples.abs().quantile(0.999).cpu()) + 1e-6
        axis = np.linspace(-half, half, 801)
        grid = torch.tensor(
            np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2),
            dtype=torch.float32,
            device=device,
        )
        logp = flow.log_prob(grid).double().cpu().numpy()
    u = grid.double().cpu().numpy()
    logp = logp * (1 if loss.variant == "paper" else 2)
    if loss.residual:
        if loss.q == "gaussian":
            logp -= 0.5 * (u**2).sum(1)
        else:
            scale = np.sqrt(2) if loss.variant == "official" else 1.0
            logp -= np.abs(u).sum(1) / scale
    p = np.exp(logp - logp.max()).reshape(len(axis), len(axis))
    p /= p.sum()
    # one coordinate's |u|: the x and y marginals pooled
    marg = (p.sum(1) + p.sum(0)) / 2
    absu = np.abs(axis)
    order = np.argsort(absu, kind="stable")
    cdf = np.cumsum(marg[order])
    return {lv: float(absu[order][min(np.searchsorted(cdf, lv), len(cdf) - 1)]) for lv in levels}


def _learned_coverage(records, quantiles) -> dict:
    """Sigma-interval coverage of dumped 2-D predictions with the learned quantiles."""
    import numpy as np

    from rle.evaluation.functional import interval_coverage

    scale = np.stack([np.asarray(r["input_scale"], float) for r in records])[:, None, :]
    pred = np.stack([np.asarray(r["pred_keypoints"], float) for r in records]) / scale
    gt = np.stack([np.asarray(r["keypoints"], float)[:, :2] for r in records]) / scale
    sigma = np.stack([np.asarray(r["pred_sigma"], float)[:, :2] for r in records])
    mask = np.stack([np.asarray(r["keypoints_visible"]) > 0 for r in records])
    cover = interval_coverage(pred, gt, sigma, mask, levels=list(quantiles), quantiles=quantiles)
    out = {f"coverage@{int(round(lv * 100))}": v for lv, v in cover.items()}
    # medians in normalised crop units: how far sigma sits from the error it describes
    out["sigma_median"] = float(np.median(sigma[mask]))
    out["abs_residual_median"] = float(np.median(np.abs(pred - gt)[mask]))
    return out


def _load_cfg(spec: RunSpec, args):
    from mmengine.config import Config

    cfg = Config.fromfile(str(spec.config))
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if spec.seed is not None:
        cfg.merge_from_dict({"randomness.seed": spec.seed})
    cfg.work_dir = str(spec.work_dir)
    cfg.launcher = "none"
    cfg.default_scope = cfg.get("default_scope", "rle")
    return cfg


def _progress(name: str, work_dir: Path, cfg) -> str:
    """``name epoch E/N`` from the tail of a run's ``train.log``."""
    import re

    try:
        with open(work_dir / "train.log", "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4096))
            tail = f.read().decode(errors="replace")
    except OSError:
        tail = ""
    found = re.findall(r"Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/(\d+)\]", tail)
    if not found:
        return f"{name} starting"
    epoch, it, per_epoch = found[-1]
    return f"{name} epoch {epoch}/{cfg.train_cfg.get('max_epochs', '?')} ({it}/{per_epoch})"


def train_parallel(specs: List[RunSpec], args) -> dict:
    """Train the unfinished runs, ``args.jobs`` at a time, each in a ``tools/train.py``
    subprocess with ``cpu_count // jobs`` threads; its log goes to ``WORK_DIR/train.log``.

    Returns:
        ``{run name: (error or None, minutes)}`` for the runs trained here.
    """
    import subprocess

    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    tool = Path(__file__).resolve().parent / "train.py"
    pending = [r for r in specs if not (r.work_dir / "done.json").is_file()]
    running, results, last_report = {}, {}, time.perf_counter()
    while pending or running:
        while pending and len(running) < args.jobs:
            spec = pending.pop(0)
            work_dir = spec.work_dir
            try:
                cfg = _load_cfg(spec, args)
                work_dir.mkdir(parents=True, exist_ok=True)
                merged = work_dir / "compare_config.py"
                cfg.dump(str(merged))
            except Exception as err:  # noqa: BLE001 - reported in the table
                results[spec.name] = (f"{type(err).__name__}: {str(err)[:160]}", 0.0)
                continue
            cmd = [sys.executable, str(tool), str(merged), "--work-dir", str(work_dir)]
            if (work_dir / "last_checkpoint").is_file():
                cmd.append("--resume")
            log = open(work_dir / "train.log", "w")
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            running[spec.name] = (proc, log, time.perf_counter(), work_dir, cfg)
            print(f"  training {spec.name} ({threads} threads, log {work_dir / 'train.log'})")
        time.sleep(0.5)
        if time.perf_counter() - last_report > 30 and running:
            last_report = time.perf_counter()
            print("  progress: " + "; ".join(_progress(n, r[3], r[4]) for n, r in running.items()))
        for name, (proc, log, start, work_dir, _) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            del running[name]
            minutes = (time.perf_counter() - start) / 60
            if proc.returncode == 0 and (work_dir / "done.json").is_file():  # train.py's mark
                results[name] = (None, minutes)
            else:
                tail = (work_dir / "train.log").read_text(errors="replace").strip().splitlines()
                (work_dir / "crash.log").write_text("\n".join(tail[-200:]))
                last = tail[-1] if tail else f"exit code {proc.returncode}"
                results[name] = (f"training failed: {last[:160]}", minutes)
            print(f"  {name}: {'trained' if results[name][0] is None else 'crashed'} "
                  f"in {minutes:.1f} min")  # fmt: skip
    return results


def run_one(spec: RunSpec, args) -> tuple:
    """Train (if needed) and evaluate one run: ``(row, records, density, meta)``."""
    import numpy as np
    from mmengine.runner import Runner

    from rle.engine import mark_finished
    from rle.evaluation.dump import load_predictions

    work_dir = spec.work_dir
    row = dict(name=spec.name, head=None, status="ok", config=str(spec.config))
    try:
        cfg = _load_cfg(spec, args)
        row["head"] = cfg.model.head.type
        dump = work_dir / "predictions.pkl"
        evaluators = (
            cfg.val_evaluator if isinstance(cfg.val_evaluator, list) else [cfg.val_evaluator]
        )
        if any(e.get("type") == "CocoKeypointMetric" for e in evaluators) and not any(
            e.get("type") == "PCKMetric" for e in evaluators
        ):
            evaluators = list(evaluators) + [dict(type="PCKMetric")]  # PCK/EPE for every 2-D run
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
            mark_finished(work_dir, runner.epoch)
            row["status"] = "trained"
        start = time.perf_counter()
        metrics = runner.test()
        for key, value in metrics.items():
            row[key.split("/", 1)[-1]] = float(value)
        row.update(_costs(runner, args.timing_repeats))
        meta = runner.test_dataloader.dataset.metainfo
        records = load_predictions(str(dump))
        if records:
            row["score_mean"] = float(np.mean([np.mean(r["pred_scores"]) for r in records]))
        quantiles = _residual_quantiles(runner.model)
        if quantiles is not None and records and records[0].get("pred_sigma") is not None:
            row.update(_learned_coverage(records, quantiles))
            row["coverage_quantiles"] = "learned density"
            row["sigma_q68"] = quantiles[0.68]
        result = row, records, _flow_density(runner.model), meta
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
    specs = expand(
        args.configs, args.work_root, getattr(args, "heads", None), getattr(args, "seeds", None)
    )
    out = Path(args.out or Path(args.work_root) / "report")
    rows, runs, densities, sigmas, skeleton = [], {}, {}, None, None
    trained, parallel_seconds = {}, 0.0
    if args.jobs > 1 and not args.no_train:
        print(f"training the unfinished runs, {args.jobs} at a time", flush=True)
        trained = train_parallel(specs, args)
        parallel_seconds = time.perf_counter() - started
    for i, spec in enumerate(specs, 1):
        print(f"[{i}/{len(specs)}] {spec.name}: training (if needed) and evaluating", flush=True)
        error, minutes = trained.get(spec.name, (None, None))
        if error is not None:
            row = dict(name=spec.name, head=None, status=f"crashed: {error}")
            row["config"], records, density, meta = str(spec.config), None, None, None
        else:
            row, records, density, meta = run_one(spec, args)
            if minutes is not None and row["status"] == "cached":
                row["status"], row["train_minutes"] = "trained", minutes
        rows.append(row)
        print(f"[{i}/{len(specs)}] {spec.name}: {row['status']}", flush=True)
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
    summary = report.summarize_seeds(rows)
    if len(summary) < len(rows):  # some run has several seeds
        paths.update(report.write_summary(summary, out))
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
        # ellipses: the 68 % interval where the learned density gives it, else 1 sigma
        scale = {r["name"]: r["sigma_q68"] for r in rows if r.get("sigma_q68")}
        plots["examples"] = report.plot_examples(
            runs, out / "examples.png", skeleton=skeleton, sigma_scale=scale
        )
    plot_seconds = time.perf_counter() - plot_start
    train_seconds = parallel_seconds + sum(
        60 * r.get("train_minutes", 0.0) for r in rows if r["name"] not in trained
    )
    print()
    print(report.markdown_table(rows))
    print()
    if len(summary) < len(rows):
        print("over the seeds (mean ± sample std):\n")
        print(report.summary_markdown(summary))
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
