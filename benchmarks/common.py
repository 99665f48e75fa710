"""Helpers shared by the benchmark scripts: the library's timing helper and Markdown tables."""

from __future__ import annotations

from rle.evaluation.costs import median_times

__all__ = ["median_times", "table"]


def table(rows, headers) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)
