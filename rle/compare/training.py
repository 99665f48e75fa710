"""Training the runs a comparison is missing, in this process or in parallel processes.

A run whose work dir holds ``done.json`` is finished and never trained again; an interrupted
run (a ``last_checkpoint`` but no ``done.json``) resumes. With ``jobs > 1`` up to ``jobs`` runs
train at once, each in its own process (``python -m rle.compare.worker``) with
``cpu_count // jobs`` threads: small models use two 1-thread processes better than one 2-thread
process. Its log goes to ``WORK_DIR/train.log``, and a crash's tail to ``WORK_DIR/crash.log``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from rle.compare.runs import RunSpec

__all__ = ["load_run_config", "progress_line", "train_parallel"]


def load_run_config(spec: RunSpec, cfg_options: Optional[dict] = None):
    """The config of ``spec`` with the comparison's overrides, its seed and work dir."""
    from rle.engine import load_config

    return load_config(
        spec.config, cfg_options=cfg_options, work_dir=str(spec.work_dir), seed=spec.seed
    )


def progress_line(name: str, work_dir: Path, max_epochs) -> str:
    """``name epoch E/N (i/n)`` from the tail of a run's ``train.log``."""
    try:
        with open(Path(work_dir) / "train.log", "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4096))
            tail = f.read().decode(errors="replace")
    except OSError:
        tail = ""
    found = re.findall(r"Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/(\d+)\]", tail)
    if not found:
        return f"{name} starting"
    epoch, it, per_epoch = found[-1]
    return f"{name} epoch {epoch}/{max_epochs} ({it}/{per_epoch})"


def train_parallel(
    specs: List[RunSpec],
    jobs: int,
    cfg_options: Optional[dict] = None,
    log: Callable[[str], None] = print,
    report_every: float = 30.0,
    unsafe_load: bool = False,
) -> Dict[str, Tuple[Optional[str], float]]:
    """Train the unfinished runs of ``specs``, ``jobs`` at a time, in worker processes.

    Args:
        specs: the runs; finished ones are skipped.
        jobs: processes at once (>= 1), each with ``cpu_count // jobs`` threads.
        cfg_options: overrides for every run's config.
        log: where progress lines go.
        report_every: seconds between progress lines.
        unsafe_load: the workers resume with plain ``torch.load`` (trusted files only).

    Returns:
        ``{run name: (error or None, minutes)}`` for the runs trained here.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    threads = max(1, (os.cpu_count() or 1) // jobs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    pending = [r for r in specs if not r.finished]
    running, results, last_report = {}, {}, time.perf_counter()
    while pending or running:
        while pending and len(running) < jobs:
            spec = pending.pop(0)
            work_dir = spec.work_dir
            try:
                cfg = load_run_config(spec, cfg_options)
                work_dir.mkdir(parents=True, exist_ok=True)
                merged = work_dir / "compare_config.py"
                cfg.dump(str(merged))
            except Exception as err:  # noqa: BLE001 - reported in the table
                results[spec.name] = (f"{type(err).__name__}: {str(err)[:160]}", 0.0)
                continue
            cmd = [sys.executable, "-m", "rle.compare.worker", str(merged), str(work_dir)]
            if (work_dir / "last_checkpoint").is_file():
                cmd.append("--resume")
            if unsafe_load:
                cmd.append("--unsafe-load")
            out = open(work_dir / "train.log", "w")
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
            epochs = cfg.train_cfg.get("max_epochs", "?")
            running[spec.name] = (proc, out, time.perf_counter(), work_dir, epochs)
            log(f"  training {spec.name} ({threads} threads, log {work_dir / 'train.log'})")
        time.sleep(0.5)
        if time.perf_counter() - last_report > report_every and running:
            last_report = time.perf_counter()
            lines = [progress_line(name, r[3], r[4]) for name, r in running.items()]
            log("  progress: " + "; ".join(lines))
        for name, (proc, out, start, work_dir, _) in list(running.items()):
            if proc.poll() is None:
                continue
            out.close()
            del running[name]
            minutes = (time.perf_counter() - start) / 60
            if proc.returncode == 0 and (work_dir / "done.json").is_file():
                results[name] = (None, minutes)
            else:
                tail = (work_dir / "train.log").read_text(errors="replace").strip().splitlines()
                (work_dir / "crash.log").write_text("\n".join(tail[-200:]))
                last = tail[-1] if tail else f"exit code {proc.returncode}"
                results[name] = (f"training failed: {last[:160]}", minutes)
            state = "trained" if results[name][0] is None else "crashed"
            log(f"  {name}: {state} in {minutes:.1f} min")
    return results
