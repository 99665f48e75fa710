"""Compare heads (or any runs) on one backbone: train what is missing, evaluate, report.

    >>> from rle.compare import compare
    >>> report = compare(["configs/demo"], work_root="work_dirs/demo", jobs=2)
    >>> print(report)  # the table, the written files, the time split

* :mod:`~rle.compare.runs`: what is compared (:class:`RunSpec`, :func:`expand_runs`).
* :mod:`~rle.compare.training`: training the missing runs, in parallel processes.
* :mod:`~rle.compare.evaluate`: one run's metrics, calibration, costs and predictions.
* :mod:`~rle.compare.api`: :func:`compare` and its :class:`Report`.

``tools/compare.py`` is the command line of :func:`compare`.
"""

from rle.compare.api import Report, compare
from rle.compare.evaluate import RunResult, evaluate_run
from rle.compare.runs import RunSpec, expand_runs, head_configs
from rle.compare.training import train_parallel

__all__ = [
    "Report",
    "RunResult",
    "RunSpec",
    "compare",
    "evaluate_run",
    "expand_runs",
    "head_configs",
    "train_parallel",
]
