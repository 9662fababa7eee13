"""A pandas frame as an Arrow IPC file plus a pickled remainder, and back.

:func:`encode` splits a DataFrame or Series into the columns Arrow carries
faithfully (numpy numbers and booleans, naive datetimes and timedeltas, and
pyarrow-backed strings such as pandas 3's ``str``), written to a file, and
everything else (object, categorical, nullable, timezone-aware columns and
indexes Arrow cannot carry, MultiIndex) left in a small frame that is
pickled. :func:`decode` puts them back together in the original column
order with the original dtypes, index, column labels and ``attrs``, so the
function sees exactly the chunk the serial call would.

Reading maps the file privately (``MAP_PRIVATE``): numeric columns are
zero-copy *and* writable, and a function that modifies its chunk in place
only changes its own private pages, never the file or the caller's frame.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from . import shm

INDEX_FIELD = "__index__"


@dataclass(frozen=True)
class Layout:
    """How to rebuild the pandas object from the file and the remainder."""

    series: bool
    name: Any  # the Series' name
    columns: pd.Index
    carried: tuple[tuple[int, Any], ...]  # (column position, pandas dtype)
    index: tuple[Any, ...]  # ("range", start, step, name) | ("carried", dtype, name) | ("rest",)
    attrs: dict[Any, Any]


@dataclass
class Encoded:
    layout: Layout
    table: pa.Table | None  # None when Arrow carries nothing
    rest: pd.DataFrame | None  # the columns (and index) left to pickle


def carries(dtype: Any) -> bool:
    """Whether a column of ``dtype`` goes through Arrow unchanged."""
    if isinstance(dtype, np.dtype):
        return dtype.kind in "biufmM"
    return isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"


def _to_arrow(values: Any, dtype: Any) -> pa.Array:
    if isinstance(dtype, np.dtype):
        arr = np.asarray(values)
        if dtype.kind in "mM":
            arr = arr.view("i8")  # NaT stays a value, not a null: exact round trip
        return pa.array(np.ascontiguousarray(arr))
    chunked = values._pa_array  # ArrowStringArray's storage
    return chunked.combine_chunks() if isinstance(chunked, pa.ChunkedArray) else chunked


def encode(obj: pd.DataFrame | pd.Series) -> Encoded:
    """Split ``obj`` into an Arrow table and a remainder (see the module docstring)."""
    series = isinstance(obj, pd.Series)
    frame: pd.DataFrame = obj.to_frame(name=0) if isinstance(obj, pd.Series) else obj
    arrays: list[pa.Array] = []
    names: list[str] = []
    carried: list[tuple[int, Any]] = []
    rest_pos: list[int] = []
    for pos in range(frame.shape[1]):
        col = frame.iloc[:, pos]
        if carries(col.dtype):
            arrays.append(_to_arrow(col.array, col.dtype))
            names.append(f"c{pos}")
            carried.append((pos, col.dtype))
        else:
            rest_pos.append(pos)
    idx = frame.index
    index: tuple[Any, ...]
    if isinstance(idx, pd.RangeIndex):
        index = ("range", idx.start, idx.step, idx.name)
    elif not isinstance(idx, pd.MultiIndex) and carries(idx.dtype):
        arrays.append(_to_arrow(idx.array, idx.dtype))
        names.append(INDEX_FIELD)
        index = ("carried", idx.dtype, idx.name)
    else:
        index = ("rest",)
    rest: pd.DataFrame | None = None
    if rest_pos or index[0] == "rest":
        rest = frame.iloc[:, rest_pos]
        if index[0] != "rest":
            rest = rest.reset_index(drop=True)
    table = pa.Table.from_arrays(arrays, names=names) if carried else None
    layout = Layout(series, obj.name if series else None, frame.columns, tuple(carried), index,
                    dict(obj.attrs))
    return Encoded(layout, table, rest)


def slice_rest(enc: Encoded, start: int, stop: int) -> pd.DataFrame | None:
    return None if enc.rest is None else enc.rest.iloc[start:stop]


def write(table: pa.Table, directory: str, stem: str) -> str:
    """Write ``table`` as one Arrow IPC record batch to a new owner-only file."""
    name = shm.unique_name(stem, ".arrow")
    os.close(shm.create_file(directory, name))
    path = os.path.join(directory, name)
    try:
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=max(1, table.num_rows))
    except BaseException:
        os.unlink(path)
        raise
    return path


def file_bytes(table: pa.Table) -> int:
    return int(table.nbytes) + 4096


class Mapped:
    """A private, writable map of an Arrow IPC file and the table read from it."""

    def __init__(self, path: str) -> None:
        with open(path, "rb") as f:
            self.map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        buf = pa.py_buffer(self.map)
        self.base = buf.address
        self.table = pa.ipc.open_file(pa.BufferReader(buf)).read_all()
        self.nbytes = len(self.map)


def _numpy_column(mapped: Mapped, arr: pa.Array, dtype: np.dtype) -> np.ndarray:
    if len(arr) == 0:
        return np.empty(0, dtype=dtype)
    if dtype.kind == "b" or arr.null_count:
        return np.asarray(arr.to_numpy(zero_copy_only=False)).astype(dtype)  # bit-packed: copy
    storage = np.dtype("i8") if dtype.kind in "mM" else dtype
    data = arr.buffers()[1]
    offset = data.address - mapped.base + arr.offset * storage.itemsize
    values = np.frombuffer(mapped.map, dtype=storage, count=len(arr), offset=offset)
    return values.view(dtype) if storage != dtype else values


def _string_array(chunked: pa.ChunkedArray | pa.Array, dtype: Any) -> Any:
    cls = dtype.construct_array_type()
    if isinstance(chunked, pa.Array):
        chunked = pa.chunked_array([chunked])
    try:
        return cls(chunked, dtype=dtype)
    except TypeError:  # pandas 2: the class fixes the dtype
        return cls(chunked)


def decode(
    layout: Layout,
    table: pa.Table | None,
    rest: pd.DataFrame | None,
    *,
    mapped: Mapped | None = None,
    start: int = 0,
    strings: dict[int, Any] | None = None,
) -> pd.DataFrame | pd.Series:
    """Rebuild the pandas object; ``table`` holds the rows to use (a slice is fine).

    ``start`` is the position of the first row in the original frame (for a
    RangeIndex); ``strings`` may supply ready string arrays by position.
    """
    n = table.num_rows if table is not None else (len(rest) if rest is not None else 0)
    columns: dict[int, Any] = {}
    for pos, dtype in layout.carried:
        if strings is not None and pos in strings:
            columns[pos] = strings[pos]
            continue
        assert table is not None
        col = table.column(f"c{pos}")
        if isinstance(dtype, np.dtype):
            arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
            if mapped is not None:
                columns[pos] = _numpy_column(mapped, arr, dtype)
            else:
                columns[pos] = np.array(arr.to_numpy(zero_copy_only=False)).view(dtype) \
                    if dtype.kind in "mM" else np.array(arr.to_numpy(zero_copy_only=False), dtype=dtype)
        else:
            columns[pos] = _string_array(col, dtype)
    index: pd.Index
    kind = layout.index[0]
    if kind == "range":
        _, first, step, name = layout.index
        index = pd.RangeIndex(first + start * step, first + (start + n) * step, step, name=name)
    elif kind == "carried":
        _, dtype, name = layout.index
        assert table is not None
        col = table.column(INDEX_FIELD)
        if isinstance(dtype, np.dtype):
            arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
            values = (_numpy_column(mapped, arr, dtype) if mapped is not None
                      else np.array(arr.to_numpy(zero_copy_only=False)).view(dtype))
            index = pd.Index(values, dtype=dtype, name=name, copy=False)
        else:
            index = pd.Index(_string_array(col, dtype), name=name)
    else:
        assert rest is not None
        index = rest.index
    if rest is not None:
        for j, pos in enumerate(p for p in range(len(layout.columns)) if p not in columns):
            col = rest.iloc[:, j]
            if col.dtype == object:
                # A Series keeps object as object (an array would be inferred as str).
                col = col.copy(deep=False)
                col.index = index
                columns[pos] = col
            else:
                columns[pos] = col.array
    ordered = {pos: columns[pos] for pos in range(len(layout.columns))}
    out: pd.DataFrame | pd.Series
    if layout.series:
        out = pd.Series(ordered[0], index=index, name=layout.name, copy=False)
    else:
        out = pd.DataFrame(ordered, index=index, copy=False) if ordered else pd.DataFrame(index=index)
        out.columns = layout.columns
    out.attrs = dict(layout.attrs)
    return out
