"""The per-chunk report and the :class:`Run` that carries it.

Every chunk ends with exactly one status: ``ok``, ``error`` (the function
raised), ``crashed`` (its worker died), ``timeout`` or ``cancelled`` (the run
stopped before it finished). Errors are data first: the report is a plain
DataFrame with one row per chunk; exceptions are built from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .backends.base import ErrorInfo, Status
from .planning import ChunkSpec

if TYPE_CHECKING:
    from matplotlib.axes import Axes

REPORT_COLUMNS = [
    "chunk", "start", "stop", "first_label", "last_label", "rows", "status", "attempts",
    "seconds", "started_at", "worker", "backend", "error_type", "error_message", "traceback",
]
FAILED = ("error", "crashed", "timeout")


@dataclass
class ChunkRecord:
    """What happened to one chunk (mutable while the run goes on)."""

    spec: ChunkSpec
    status: Status | None = None
    attempts: int = 0
    seconds: float = 0.0
    started_at: float | None = None
    worker: str = ""
    backend: str = ""
    error: ErrorInfo | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status in FAILED

    def describe(self) -> str:
        """``chunk 3 (rows 21:28, labels 'u'..'z')`` for messages."""
        s = self.spec
        text = f"chunk {s.index} (rows {s.start}:{s.stop}"
        if s.n_rows:
            text += f", labels {s.first_label!r}..{s.last_label!r}"
        if s.groups is not None:
            text += f", groups {_short(s.groups)}"
        return text + ")"


def _short(groups: tuple[Any, ...]) -> str:
    if len(groups) <= 3:
        return ", ".join(repr(g) for g in groups)
    return f"{groups[0]!r} .. {groups[-1]!r} ({len(groups)} groups)"


def build_report(records: list[ChunkRecord]) -> pd.DataFrame:
    columns: dict[str, list[Any]] = {name: [] for name in _columns(records)}
    for r in records:
        s = r.spec
        err = r.error if r.failed or r.status == "cancelled" else None
        values = {
            "chunk": s.index,
            "start": s.start,
            "stop": s.stop,
            "first_label": s.first_label,
            "last_label": s.last_label,
            "rows": s.n_rows,
            "status": r.status or "cancelled",
            "attempts": r.attempts,
            "seconds": r.seconds,
            "started_at": r.started_at,
            "worker": r.worker,
            "backend": r.backend,
            "error_type": err.type_name if err else None,
            "error_message": err.message if err else None,
            "traceback": err.traceback if err else None,
        }
        values.update(r.extra)
        for name, column in columns.items():
            column.append(values.get(name))
    data: dict[str, Any] = dict(columns)
    for name in ("first_label", "last_label"):
        # Labels of any type (tuples for a MultiIndex, Timestamps) stay as they are.
        labels = np.empty(len(records), dtype=object)
        for i, label in enumerate(columns[name]):
            labels[i] = label
        data[name] = labels
    data["started_at"] = np.array([np.nan if v is None else v for v in columns["started_at"]], dtype="float64")
    return pd.DataFrame(data)


def _columns(records: list[ChunkRecord]) -> list[str]:
    extra: list[str] = []
    for r in records:
        extra += [k for k in r.extra if k not in extra]
    return REPORT_COLUMNS + extra


class Run:
    """The outcome of :func:`framepar.run`: ``result``, ``report``, ``ok``.

    ``result`` holds what the chunks that succeeded produced (the whole result
    when ``ok``); ``errors`` the exceptions of the failed chunks, in chunk
    order; ``backend`` and ``reason`` say how the run was executed and why.
    """

    def __init__(
        self,
        result: Any,
        records: list[ChunkRecord],
        errors: list[Exception],
        *,
        mode: str,
        backend: str,
        reason: str,
        first_error: Exception | None = None,
    ) -> None:
        self.result = result
        self.records = records
        self.errors = errors
        self.mode = mode
        self.backend = backend
        self.reason = reason
        self._first_error = first_error
        # The plan, in chunk order (the rows of group-aware chunks included).
        self.chunks: list[ChunkSpec] = []

    @cached_property
    def report(self) -> pd.DataFrame:
        """One row per chunk (built on first access: most successful runs never look)."""
        report = build_report(self.records)
        report.attrs.update({"backend": self.backend, "reason": self.reason})
        return report

    @property
    def ok(self) -> bool:
        return not self.errors and all(r.status == "ok" for r in self.records)

    @property
    def failed(self) -> pd.DataFrame:
        """The report rows of the chunks that did not succeed."""
        return self.report[self.report["status"] != "ok"]

    def raise_for_errors(self) -> None:
        """Raise as ``map_chunks`` would have: with ``errors="raise"`` the first
        failure's own exception, otherwise :class:`framepar.ChunksFailed`."""
        from .core import raise_for_run

        raise_for_run(self)

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """Timeline of chunks per worker coloured by status (needs matplotlib)."""
        from .plot import plot_run

        return plot_run(self, ax=ax, **kwargs)

    def __repr__(self) -> str:
        counts = self.report["status"].value_counts().to_dict()
        summary = ", ".join(f"{n} {s}" for s, n in counts.items())
        return f"<framepar.Run {'ok' if self.ok else 'with failures'}: {summary}; backend={self.backend}>"
