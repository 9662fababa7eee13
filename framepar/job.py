"""The work item the backends run: the user's function applied to one chunk.

:class:`ChunkJob` is pickled once per run and worker (with cloudpickle, so
lambdas, closures and notebook functions travel by value); each
:class:`ChunkTask` is the small per-chunk payload.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .exceptions import FrameparError


class ChunkResultTypeError(FrameparError, TypeError):
    """The function returned something other than a DataFrame or Series without ``combine``."""


@dataclass(frozen=True)
class ChunkTask:
    index: int
    start: int
    stop: int
    source: Any  # has .load() -> the chunk
    sink: Any = None  # has .before(chunk) and .deliver(result, before) -> what to send back
    # (lead, tail): rows of neighbour context in the chunk, cut from the result.
    trim: tuple[int, int] | None = None


@dataclass
class ChunkJob:
    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    require_frame: bool

    def __call__(self, task: ChunkTask) -> Any:
        chunk = task.source.load()
        # Looked at before the call: the function may change its chunk.
        before = task.sink.before(chunk) if task.sink is not None else None
        out = self.func(chunk, *self.args, **self.kwargs)
        if task.trim is not None:
            out = _trim(out, len(chunk), task)
        if self.require_frame and not isinstance(out, (pd.DataFrame, pd.Series)):
            raise ChunkResultTypeError(
                f"chunk {task.index} (rows {task.start}:{task.stop}) returned "
                f"{type(out).__module__}.{type(out).__qualname__}; the function must return a "
                "DataFrame or Series, or pass combine=... to reduce other results"
            )
        if task.sink is not None:
            return task.sink.deliver(out, before)
        return out


def _trim(out: Any, n_in: int, task: ChunkTask) -> Any:
    """Cut the neighbours' rows (``overlap=``) from a row-aligned result."""
    assert task.trim is not None
    lead, tail = task.trim
    if not isinstance(out, (pd.DataFrame, pd.Series)) or len(out) != n_in:
        raise ChunkResultTypeError(
            f"chunk {task.index} (rows {task.start}:{task.stop}): with overlap= the function "
            f"must return a DataFrame or Series with one row per input row ({n_in}), got "
            + (f"{len(out)} rows" if isinstance(out, (pd.DataFrame, pd.Series)) else type(out).__name__)
        )
    return out.iloc[lead : n_in - tail]
