"""Recognising result columns that are the input's own columns, unchanged.

Functions like ``chunk.assign(new=...)`` return most of their chunk's
columns untouched; under pandas' copy-on-write those result columns are
views of the chunk's memory. A worker need not send them back: the parent
already holds the input, and takes the same rows from it (as views, so the
result shares memory with the input exactly as the serial call's result
does).

"Untouched" must be certain, so this is used only under copy-on-write
(pandas 3) and only on chunks whose memory has another owner (see
:func:`protect`): any write to such a chunk makes pandas copy first, so a
result column at the chunk's own address still holds the input's values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

COPY_ON_WRITE = int(pd.__version__.split(".")[0]) >= 3

Key = tuple[Any, ...]


def protect(frame: Any, owner: Any) -> Any:
    """A shallow copy of ``frame`` that pandas copies before any write.

    ``owner`` must keep the returned object's origin alive (an attribute on
    the task's source) for the protection to hold.
    """
    if not COPY_ON_WRITE or not isinstance(frame, (pd.DataFrame, pd.Series)):
        return frame
    object.__setattr__(owner, "_origin", frame)
    return frame.copy(deep=False)


def _key(col: pd.Series) -> Key | None:
    dtype = col.dtype
    if isinstance(dtype, np.dtype):
        if dtype.kind == "O":
            return None
        values = col.to_numpy()
        return ("np", values.__array_interface__["data"][0], values.strides, len(values), dtype.str)
    storage = getattr(col.array, "_pa_array", None)
    if isinstance(storage, pa.ChunkedArray) and len(storage):
        parts = tuple(
            (c.offset, len(c), tuple(b.address if b is not None else 0 for b in c.buffers()))
            for c in storage.chunks
        )
        return ("pa", str(dtype), parts)
    return None


def fingerprints(chunk: Any) -> list[Key | None] | None:
    """Identity of each column's memory, taken before the function runs."""
    if not COPY_ON_WRITE or not isinstance(chunk, pd.DataFrame) or len(chunk) == 0:
        return None
    return [_key(chunk.iloc[:, k]) for k in range(chunk.shape[1])]


def passed_columns(out: Any, before: list[Key | None] | None, chunk_index: pd.Index | None) -> dict[int, int]:
    """``{result position: input position}`` of the columns handed back untouched."""
    if before is None or chunk_index is None or not isinstance(out, pd.DataFrame):
        return {}
    if len(out) != len(chunk_index) or not out.index.equals(chunk_index):
        return {}
    where = {key: k for k, key in reversed(list(enumerate(before))) if key is not None}
    passed = {}
    for j in range(out.shape[1]):
        key = _key(out.iloc[:, j])
        if key is not None and key in where:
            passed[j] = where[key]
    return passed


def passed_from(data: pd.DataFrame, out: Any, start: int) -> dict[int, int]:
    """The same, for a result computed in this process on ``data.iloc[start:...]``."""
    if not isinstance(data, pd.DataFrame) or not isinstance(out, pd.DataFrame):
        return {}
    chunk = data.iloc[start : start + len(out)]
    return passed_columns(out, fingerprints(chunk), chunk.index)
