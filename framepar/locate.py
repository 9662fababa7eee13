"""Finding the rows that make a chunk fail (``locate=True``).

After the chunks of a run have ended, each one that ended ``error`` or
``crashed`` is bisected: its rows are cut in two halves, the halves run again
on the same backend (the same worker processes for the process backend), and
the search goes on in the first half that fails *the same way* (same status
and, for an error, the same exception type), down to a single row. When
neither half fails on its own, the failure needs rows from both halves, and
the search stops there with the smallest set of rows found. A half that
fails differently (another exception type, a timeout) counts as not failing.

The rows found are reported as index labels in the report's
``failing_labels`` column. Only failed chunks are re-run, each probe once,
without retries; probes never change the run's result, the chunk's status,
attempts or error. A timeout applies to each probe as to a chunk.
Timed-out chunks are not bisected: every probe could cost a full timeout.
With ``overlap=`` the rows searched include the neighbouring context rows the
function saw; with ``by=`` a probe may split a group.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .backends.base import Backend, Outcome
from .job import ChunkTask
from .planning import ChunkSpec
from .report import ChunkRecord
from .transport import Transport

#: statuses whose chunks are bisected
LOCATED = ("error", "crashed")
COLUMN = "failing_labels"


@dataclass
class _Search:
    """The bisection of one failed chunk."""

    rec: ChunkRecord
    rows: np.ndarray  # positions in the input known to fail together
    generation: int = 0
    # side ("left"/"right") -> whether that half reproduced the failure
    verdicts: dict[str, bool] = field(default_factory=dict)
    done: bool = False

    def reproduces(self, out: Outcome) -> bool:
        if out.status != self.rec.status:
            return False
        if out.status != "error":
            return True
        own = self.rec.error.type_name if self.rec.error else None
        return out.error is not None and out.error.type_name == own

    def halves(self) -> tuple[np.ndarray, np.ndarray]:
        mid = len(self.rows) // 2
        return self.rows[:mid], self.rows[mid:]


def _positions(spec: ChunkSpec) -> np.ndarray:
    if spec.rows is not None:
        return np.asarray(spec.rows, dtype=np.int64)
    return np.arange(spec.start, spec.stop, dtype=np.int64)


def _sub_spec(spec: ChunkSpec, rows: np.ndarray) -> ChunkSpec:
    start, stop = int(rows[0]), int(rows[-1]) + 1
    contiguous = stop - start == len(rows)
    return ChunkSpec(spec.index, start, stop, rows=None if contiguous else rows)


def locate_failures(
    backend: Backend,
    transport: Transport,
    data: pd.DataFrame | pd.Series,
    records: list[ChunkRecord],
    *,
    timeout: float | None = None,
) -> None:
    """Bisect each failed record; store its failing labels in ``rec.extra``.

    ``backend`` must still have the run's job started and ``transport`` must
    still be open. Records that did not fail get ``None``.
    """
    searches: list[_Search] = []
    for rec in records:
        rec.extra[COLUMN] = None
        if rec.status in LOCATED and rec.spec.n_rows:
            search = _Search(rec, _positions(rec.spec))
            searches.append(search)
            if len(search.rows) == 1:
                search.done = True
    keys = itertools.count(-1, -1)  # never collides with a chunk number
    todo: deque[tuple[_Search, int, str, np.ndarray]] = deque()
    by_key: dict[int, tuple[_Search, int, str]] = {}

    def plan(search: _Search) -> None:
        if len(search.rows) <= 1:
            search.done = True
            return
        search.generation += 1
        search.verdicts = {}
        left, right = search.halves()
        todo.append((search, search.generation, "left", left))
        todo.append((search, search.generation, "right", right))

    for search in searches:
        if not search.done:
            plan(search)
    try:
        while todo or backend.in_flight():
            while todo and backend.capacity() > 0:
                search, generation, side, rows = todo.popleft()
                if search.done or generation != search.generation:
                    continue  # the search moved on while this probe waited
                key = next(keys)
                spec = _sub_spec(search.rec.spec, rows)
                task = ChunkTask(spec.index, spec.start, spec.stop, transport.source(spec))
                backend.submit(key, task, timeout=timeout)
                by_key[key] = (search, generation, side)
            for out in backend.wait():
                search, generation, side = by_key.pop(out.key)
                if search.done or generation != search.generation:
                    continue
                search.verdicts[side] = search.reproduces(out)
                _advance(search, plan)
    finally:
        if backend.in_flight():
            backend.cancel()
    for search in searches:
        search.rec.extra[COLUMN] = data.index[search.rows].tolist()


def _advance(search: _Search, plan: Any) -> None:
    """Descend into the first half that fails; stop when neither does."""
    left, right = search.halves()
    if search.verdicts.get("left"):
        search.rows = left
        plan(search)
    elif "left" in search.verdicts and search.verdicts.get("right"):
        search.rows = right
        plan(search)
    elif "left" in search.verdicts and "right" in search.verdicts:
        search.done = True  # the failure needs rows of both halves
