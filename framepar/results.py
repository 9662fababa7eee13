"""How large chunk results come back from worker processes: the output side of transport.

Two ways, both through files in the run's :class:`~framepar.shm.Workspace`:

* **Shared result** (:class:`SharedResult`): the worker writes its result as
  an Arrow IPC file (columns Arrow cannot carry are pickled beside it, see
  :mod:`framepar.framecodec`); the parent maps it. Used for any result above
  the size threshold.
* **Result buffers** (:class:`ResultBuffers`): once one chunk's result is
  known, and if it looks like the common case (same rows and index as its
  chunk, fixed-width numpy columns plus pyarrow strings), the parent
  allocates one file holding every fixed-width column for all rows of the
  input. Workers write their result columns straight into it at their row
  offsets and the parent adopts those columns as the final frame's, zero
  copy: no pickling and no concatenation. String columns come back as small
  Arrow files and become chunked arrays. Any chunk whose result does not fit
  (other rows, columns or dtypes) simply comes back the other way and the
  run falls back to ordinary concatenation.
"""

from __future__ import annotations

import mmap
import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from . import framecodec, shm
from .exceptions import SharedMemoryFallbackWarning

# Results smaller than this are cheaper to pickle through the pipe.
RESULT_THRESHOLD_BYTES = 1 * 2**20
_ALIGN = 64


def _fixed(dtype: Any) -> bool:
    return isinstance(dtype, np.dtype) and dtype.kind in "biufcmM"


def _string(dtype: Any) -> bool:
    return isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"


def _storage(dtype: np.dtype) -> np.dtype:
    return np.dtype("i8") if dtype.kind in "mM" else dtype


def _place(shm_dir: str | None, disk: str, nbytes: int) -> tuple[str, bool]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SharedMemoryFallbackWarning)
        directory = shm.pick_dir(shm_dir, disk, nbytes)
    return directory, shm_dir is not None and directory == disk


# -- shared results -------------------------------------------------------------


@dataclass(frozen=True)
class SharedResult:
    """A worker's reply: its result is in ``path`` (plus the pickled ``rest``).

    Columns listed in ``passed`` (result position -> input position) are the
    input's own, unchanged, and were not written (see :mod:`framepar.passthrough`).
    """

    path: str
    layout: framecodec.Layout
    rest: pd.DataFrame | None
    nbytes: int
    on_disk: bool
    passed: dict[int, int]
    columns: pd.Index | None = None

    def load(self, data: Any, start: int) -> pd.DataFrame | pd.Series:
        mapped = framecodec.Mapped(self.path)
        os.unlink(self.path)  # the map keeps the pages until the result is freed
        out = framecodec.decode(self.layout, mapped.table, self.rest, mapped=mapped)
        if not self.passed:
            return out
        assert isinstance(out, pd.DataFrame) and self.columns is not None
        index = out.index
        own = iter(range(out.shape[1]))
        columns: dict[int, Any] = {}
        for j in range(len(self.columns)):
            if j in self.passed:
                columns[j] = _input_column(data, self.passed[j], start, start + len(index), index)
            else:
                col = out.iloc[:, next(own)].copy(deep=False)
                col.index = index
                columns[j] = col
        frame = pd.DataFrame(columns, index=index, copy=False)
        frame.columns = self.columns
        frame.attrs = out.attrs
        return frame


def _input_column(data: pd.DataFrame, k: int, start: int, stop: int, index: pd.Index) -> pd.Series:
    """Rows ``start:stop`` of the input's column ``k``: a view pandas knows is shared."""
    col = data.iloc[start:stop, k] if (start, stop) != (0, len(data)) else data.iloc[:, k]
    col = col.copy(deep=False)
    col.index = index  # equal already; the same object avoids any alignment
    return col


def share(out: Any, shm_dir: str | None, disk: str, threshold: int, passed: dict[int, int] | None = None) -> Any:
    """``out`` itself, or a :class:`SharedResult` when it is large enough to write."""
    if not isinstance(out, (pd.DataFrame, pd.Series)):
        return out
    passed = passed or {}
    shallow = out.memory_usage(index=False, deep=False)
    if int(shallow.sum() if isinstance(shallow, pd.Series) else shallow) < threshold:
        return out  # small (object columns counted by pointer): the pipe is cheaper
    own = out.iloc[:, [j for j in range(out.shape[1]) if j not in passed]] if passed else out  # type: ignore[call-overload]
    enc = framecodec.encode(own)
    if enc.table is None or enc.table.nbytes < threshold:
        return out
    nbytes = framecodec.file_bytes(enc.table)
    directory, on_disk = _place(shm_dir, disk, nbytes)
    try:
        path = framecodec.write(enc.table, directory, "result")
    except OSError:
        if directory == disk:
            return out  # no room anywhere: the pipe still works
        path, on_disk = framecodec.write(enc.table, disk, "result"), True
    columns = out.columns if passed else None
    return SharedResult(path, enc.layout, enc.rest, nbytes, on_disk, passed, columns)


# -- result buffers ---------------------------------------------------------------


@dataclass(frozen=True)
class Schema:
    """What every chunk's result must look like to be written into the buffers."""

    columns: pd.Index
    dtypes: tuple[Any, ...]
    offsets: tuple[int | None, ...]  # byte offset of each fixed column in the file
    sources: tuple[int | None, ...]  # the input column a passed-through column is
    n_rows: int
    size: int

    def fits(self, out: Any, chunk_index: pd.Index, passed: dict[int, int]) -> bool:
        return (
            isinstance(out, pd.DataFrame)
            and all(k is None or passed.get(j) == k for j, k in enumerate(self.sources))
            and len(out) == len(chunk_index)
            and out.shape[1] == len(self.dtypes)
            and out.columns.equals(self.columns)
            and out.columns.dtype == self.columns.dtype
            and tuple(out.dtypes) == self.dtypes
            and _same_index(out.index, chunk_index)
        )


def _same_index(a: pd.Index, b: pd.Index) -> bool:
    return a is b or (type(a) is type(b) and a.dtype == b.dtype and a.names == b.names and a.equals(b))


def make_schema(out: Any, chunk_index: pd.Index, n_rows: int, passed: dict[int, int]) -> Schema | None:
    """The buffer layout for results like ``out``, or None when they do not fit buffers."""
    if not isinstance(out, pd.DataFrame) or len(out) != len(chunk_index) or n_rows == 0:
        return None
    if not _same_index(out.index, chunk_index) or out.shape[1] == 0:
        return None
    dtypes = tuple(out.dtypes)
    if not all(_fixed(d) or _string(d) for d in dtypes) or not any(_fixed(d) for d in dtypes):
        return None
    offsets: list[int | None] = []
    size = 0
    for j, d in enumerate(dtypes):
        if j in passed:
            offsets.append(None)
        elif _fixed(d):
            offsets.append(size)
            size += -(-n_rows * d.itemsize // _ALIGN) * _ALIGN
        else:
            offsets.append(None)
    sources = tuple(passed.get(j) for j in range(len(dtypes)))
    return Schema(out.columns, dtypes, tuple(offsets), sources, n_rows, size)


@dataclass(frozen=True)
class Written:
    """A worker's reply: its fixed-width columns are in the buffer file."""

    strings: str | None  # Arrow file with the string columns, if any
    nbytes: int
    on_disk: bool


@dataclass
class Stored:
    """Parent side: a chunk whose result lives in the buffers (strings kept aside)."""

    strings: dict[int, Any]


def _pwrite_all(fd: int, values: np.ndarray, offset: int) -> None:
    view = memoryview(np.ascontiguousarray(values)).cast("B")  # type: ignore[arg-type]
    while len(view):
        done = os.pwrite(fd, view, offset)
        view = view[done:]
        offset += done


def write_fixed(fd: int, schema: Schema, out: pd.DataFrame, start: int) -> tuple[int, dict[int, Any]]:
    """Write ``out``'s fixed-width columns at row ``start``; return bytes and the others.

    ``pwrite`` rather than a map: a full tmpfs then fails with ENOSPC instead
    of killing the writer with SIGBUS.
    """
    moved = 0
    others: dict[int, Any] = {}
    for pos, (dtype, offset) in enumerate(zip(schema.dtypes, schema.offsets, strict=True)):
        if schema.sources[pos] is not None:
            continue
        col = out.iloc[:, pos]
        if offset is None:
            others[pos] = col.array
            continue
        storage = _storage(dtype)
        values = col.to_numpy()
        if storage != dtype:
            values = values.view(storage)
        _pwrite_all(fd, values, offset + start * storage.itemsize)
        moved += values.nbytes
    return moved, others


@dataclass(frozen=True)
class BufferTarget:
    """Where a worker writes one chunk's result (travels with the task)."""

    path: str
    schema: Schema
    start: int

    def write(
        self, out: Any, chunk_index: pd.Index, passed: dict[int, int], shm_dir: str | None, disk: str
    ) -> Written | None:
        if not self.schema.fits(out, chunk_index, passed):
            return None
        fd = os.open(self.path, os.O_WRONLY)
        try:
            moved, others = write_fixed(fd, self.schema, out, self.start)
        finally:
            os.close(fd)
        if not others:
            return Written(None, moved, False)
        arrays = [framecodec._to_arrow(a, a.dtype) for a in others.values()]
        table = pa.Table.from_arrays(arrays, names=[f"c{p}" for p in others])
        directory, on_disk = _place(shm_dir, disk, framecodec.file_bytes(table))
        path = framecodec.write(table, directory, "strings")
        return Written(path, moved + int(table.nbytes), on_disk)


class ResultBuffers:
    """Parent side of the result buffers of one run (see the module docstring)."""

    def __init__(self, data: pd.DataFrame, workspace: shm.Workspace) -> None:
        self.data = data
        self.workspace = workspace
        self.schema: Schema | None = None
        self.path: str | None = None
        self.map: mmap.mmap | None = None
        self.failed = False  # no room, or the first result did not fit: stop trying

    def consider(self, out: Any, start: int, stop: int, passed: dict[int, int]) -> None:
        """Learn the schema from a result, and allocate the buffers."""
        if self.schema is not None or self.failed:
            return
        schema = make_schema(out, self.data.index[start:stop], len(self.data), passed)
        if schema is None:
            self.failed = True
            return
        # Sparse: the workers' writes allocate the pages (in parallel), and a
        # full tmpfs fails their pwrite cleanly; only room is checked here.
        directory = self.workspace.pick_dir(schema.size)
        name = shm.unique_name("buffer", ".bin")
        fd = shm.create_file(directory, name)
        try:
            os.ftruncate(fd, schema.size)
            self.map = mmap.mmap(fd, schema.size, access=mmap.ACCESS_WRITE)
        except OSError:
            self.failed = True
            return
        finally:
            os.close(fd)
        self.path = os.path.join(directory, name)
        self.schema = schema

    def target(self, start: int) -> BufferTarget | None:
        if self.schema is None or self.path is None:
            return None
        return BufferTarget(self.path, self.schema, start)

    def store(self, value: Any, start: int, stop: int, passed: dict[int, int]) -> Any:
        """Move a result into the buffers now (a :class:`Stored`), or return it as is."""
        if isinstance(value, Written):
            strings: dict[int, Any] = {}
            if value.strings is not None:
                mapped = framecodec.Mapped(value.strings)
                os.unlink(value.strings)
                strings = {int(n[1:]): mapped.table.column(n) for n in mapped.table.column_names}
            return Stored(strings)
        if self.schema is None or self.path is None or not self.schema.fits(
            value, self.data.index[start:stop], passed
        ):
            return value
        fd = os.open(self.path, os.O_WRONLY)
        try:
            _, others = write_fixed(fd, self.schema, value, start)
        except OSError:
            return value
        finally:
            os.close(fd)
        return Stored({pos: arr._pa_array for pos, arr in others.items()})

    def _column(self, pos: int) -> np.ndarray:
        assert self.schema is not None and self.map is not None
        dtype = self.schema.dtypes[pos]
        storage = _storage(dtype)
        offset = self.schema.offsets[pos]
        assert offset is not None
        values = np.frombuffer(self.map, dtype=storage, count=self.schema.n_rows, offset=offset)
        return values.view(dtype) if storage != dtype else values

    def assemble(self, parts: list[tuple[int, int, Any]], complete: bool) -> tuple[Any, list[Any]]:
        """The final frame built on the buffers, or ``(None, frames)`` to concatenate.

        ``parts`` are ``(start, stop, value)`` of the successful chunks in
        order; ``complete`` says whether every chunk succeeded.
        """
        if self.schema is None:
            return None, [p[2] for p in parts]
        stored = all(isinstance(v, Stored) for _, _, v in parts)
        if complete and stored and parts and parts[0][0] == 0 and parts[-1][1] == self.schema.n_rows:
            return self._frame(0, self.schema.n_rows, [v for _, _, v in parts]), []
        return None, [self._frame(a, b, [v]) if isinstance(v, Stored) else v for a, b, v in parts]

    def _frame(self, start: int, stop: int, pieces: list[Stored]) -> pd.DataFrame:
        assert self.schema is not None
        index = self.data.index[start:stop] if (start, stop) != (0, len(self.data)) else self.data.index
        columns: dict[int, Any] = {}
        for pos, (dtype, offset) in enumerate(zip(self.schema.dtypes, self.schema.offsets, strict=True)):
            if offset is not None:
                columns[pos] = self._column(pos)[start:stop]
                continue
            source = self.schema.sources[pos]
            if source is not None:
                columns[pos] = _input_column(self.data, source, start, stop, index)
                continue
            chunks: list[pa.Array] = []
            for piece in pieces:
                value = piece.strings[pos]
                chunks += value.chunks if isinstance(value, pa.ChunkedArray) else [value]
            arrow_type = chunks[0].type if chunks else pa.large_string()
            chunked = pa.chunked_array([c.cast(arrow_type) for c in chunks], type=arrow_type)
            columns[pos] = framecodec._string_array(chunked, dtype)
        frame = pd.DataFrame(columns, index=index, copy=False)
        frame.columns = self.schema.columns
        return frame

    def close(self) -> None:
        # The map stays valid for the adopted result after the file is removed.
        self.map = None
