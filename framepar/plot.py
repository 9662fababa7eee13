"""A picture of a run: a timeline of chunks per worker, coloured by status.

:func:`plot_run` draws one horizontal bar per chunk that started, on the row
of the worker that ran it, from ``started_at`` to ``started_at + seconds``.
Load imbalance (one worker busy while the other idles), slow chunks and
failures show at a glance. matplotlib is an optional extra and is imported
only here, when a plot is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from .report import Run

# One colour per chunk status; failures in warm colours so they stand out.
STATUS_COLORS: dict[str, str] = {
    "ok": "#4c9f70",
    "error": "#d1495b",
    "crashed": "#7b2d26",
    "timeout": "#edae49",
    "cancelled": "#9e9e9e",
}
# Bars narrower than this fraction of the run's span are widened to it: a chunk
# that took microseconds must still be visible (and clickable) on the timeline.
MIN_WIDTH_FRACTION = 0.004
# Above this many chunks the chunk numbers would overlap; leave them out.
MAX_ANNOTATED_CHUNKS = 40

INSTALL_HINT = 'Run.plot() needs matplotlib, an optional extra: pip install "framepar[plot]"'


def _import_pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return plt


def plot_run(
    run: Run | pd.DataFrame,
    ax: Axes | None = None,
    *,
    annotate: bool | None = None,
    title: str | None = None,
    colors: dict[str, str] | None = None,
) -> Axes:
    """Draw a Gantt-style timeline of a run's chunks and return the Axes.

    Parameters
    ----------
    run : a :class:`framepar.Run`, or its ``report`` DataFrame.
    ax : Axes to draw on; default: a new figure sized to the number of workers.
    annotate : write each chunk's number on its bar; default: when there are at
        most 40 bars.
    title : default: a summary (chunks, workers, statuses, wall time).
    colors : overrides of :data:`STATUS_COLORS` (status -> matplotlib colour).

    Chunks that never started (cancelled before a worker took them) have no
    place on the time axis; the legend counts them.
    """
    plt = _import_pyplot()
    from matplotlib.patches import Patch

    report = run if isinstance(run, pd.DataFrame) else run.report
    missing = {"chunk", "status", "started_at", "seconds", "worker"} - set(report.columns)
    if missing:
        raise ValueError(f"plot_run needs a framepar report; missing columns {sorted(missing)}")
    palette = {**STATUS_COLORS, **(colors or {})}

    started = report[report["started_at"].notna()].assign(worker=lambda r: r["worker"].astype(str))
    not_started = report[report["started_at"].isna()]
    workers = _worker_order(started)
    own_figure = None
    if ax is None:
        own_figure, ax = plt.subplots(figsize=(9, 1.2 + 0.45 * max(len(workers), 1)))
    assert ax is not None

    lefts = started["started_at"].to_numpy(dtype="float64")
    widths = started["seconds"].to_numpy(dtype="float64")
    span = float(np.max(lefts + widths)) if len(started) else 0.0
    widths = np.maximum(widths, span * MIN_WIDTH_FRACTION)
    rows = started["worker"].map({w: i for i, w in enumerate(workers)}).to_numpy()
    statuses = started["status"].astype(str).tolist()
    ax.barh(
        rows, widths, left=lefts, height=0.7,
        color=[palette.get(s, "black") for s in statuses],
        linewidth=0,
    )

    if annotate is None:
        annotate = len(started) <= MAX_ANNOTATED_CHUNKS
    if annotate:
        for row, left, width, chunk in zip(rows, lefts, widths, started["chunk"], strict=True):
            ax.text(float(left + width / 2), float(row), str(chunk), ha="center", va="center", fontsize=7,
                    clip_on=True)

    ax.set_yticks(range(len(workers)), labels=[str(w) for w in workers])
    ax.set_ylim(len(workers) - 0.5, -0.5)  # first worker on top, as in a Gantt chart
    ax.set_xlim(0, span * 1.02 if span > 0 else 1.0)
    ax.set_xlabel("seconds since the run started")
    ax.set_ylabel("worker")

    counts = report["status"].astype(str).value_counts()
    handles = []
    for status in [*STATUS_COLORS, *sorted(set(counts.index) - set(STATUS_COLORS))]:
        if status not in counts.index:
            continue
        label = f"{status} ({counts[status]})"
        if status == "cancelled" and len(not_started):
            label += f", {len(not_started)} not started"
        handles.append(Patch(facecolor=palette.get(status, "black"), label=label))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
              title="status")

    if title is None:
        summary = ", ".join(f"{n} {s}" for s, n in counts.items())
        plural = "" if len(workers) == 1 else "s"
        title = f"{len(report)} chunks on {len(workers)} worker{plural}: {summary}; {span:.2f} s"
    ax.set_title(title, fontsize=10)
    if own_figure is not None:  # a caller's figure keeps the caller's layout
        own_figure.tight_layout()
    return ax


def _worker_order(started: pd.DataFrame) -> list[str]:
    """Workers in the order they first started a chunk (the parent, if it ran the
    first chunk, on top)."""
    first = started.groupby("worker", sort=False)["started_at"].min().sort_values(kind="stable")
    return list(first.index)
