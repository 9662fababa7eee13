"""How a chunk's rows reach the function: the input side of transport.

A *source* is a small picklable object with a ``load()`` method that runs
where the function runs and returns the chunk. Which kind of source a run
uses is decided once per run by the orchestrator:

* :class:`InlineSource`: the rows themselves (pickled when they cross to a
  worker process). In-process backends use it without any pickling.
* :class:`InheritedSource`: a reference to the whole input, which forked
  workers already hold in their copy of the parent's memory; nothing is sent
  but ``(token, start, stop)``.

The caller's frame is never modified: in-process chunks are copies under
pandas 2 (pandas 3's copy-on-write makes slices safe), worker processes only
ever see their own copy.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .backends import _worker
from .planning import ChunkSpec

PANDAS_COPY_ON_WRITE = int(pd.__version__.split(".")[0]) >= 3


def take(data: pd.DataFrame | pd.Series, spec: ChunkSpec) -> pd.DataFrame | pd.Series:
    """The rows of ``spec`` (a slice, or the listed positions for group chunks)."""
    if spec.rows is not None:
        return data.take(spec.rows)
    return data.iloc[spec.start - spec.lead : spec.stop + spec.tail]


@dataclass(frozen=True)
class InlineSource:
    data: Any

    def load(self) -> Any:
        return self.data


@dataclass(frozen=True)
class InheritedSource:
    token: str
    start: int
    stop: int
    rows: np.ndarray | None = None

    def load(self) -> Any:
        whole = _worker.INHERITED[self.token]
        if self.rows is not None:
            return whole.take(self.rows)
        return whole.iloc[self.start : self.stop]


class Transport:
    """Makes the source for each chunk of one run; :meth:`close` frees what it holds."""

    name = "pickle"

    def __init__(self, data: pd.DataFrame | pd.Series, *, in_process: bool) -> None:
        self.data = data
        self.in_process = in_process

    def source(self, spec: ChunkSpec) -> Any:
        chunk = take(self.data, spec)
        if self.in_process and not PANDAS_COPY_ON_WRITE and spec.rows is None:
            # pandas 2 slices are views: a function that writes to its chunk
            # would write to the caller's frame.
            chunk = chunk.copy()
        return InlineSource(chunk)

    def close(self) -> None:
        self.data = None  # type: ignore[assignment]


class InProcessTransport(Transport):
    name = "none"

    def __init__(self, data: pd.DataFrame | pd.Series) -> None:
        super().__init__(data, in_process=True)


class InheritTransport(Transport):
    """Forked workers read their rows from their inherited copy of the input.

    The input must be registered before the workers are forked; replacement
    workers forked later during the same run inherit it too.
    """

    name = "inherit"

    def __init__(self, data: pd.DataFrame | pd.Series) -> None:
        super().__init__(data, in_process=False)
        self.token = secrets.token_hex(8)
        _worker.INHERITED[self.token] = data

    def source(self, spec: ChunkSpec) -> Any:
        return InheritedSource(self.token, spec.start - spec.lead, spec.stop + spec.tail, spec.rows)

    def close(self) -> None:
        _worker.INHERITED.pop(self.token, None)
        super().close()
