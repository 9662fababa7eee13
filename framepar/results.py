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
    """A worker's reply: its result is in ``path`` (plus the pickled ``rest``)."""

    path: str
    layout: framecodec.Layout
    rest: pd.DataFrame | None
    nbytes: int
    on_disk: bool

    def load(self) -> pd.DataFrame | pd.Series:
        mapped = framecodec.Mapped(self.path)
        os.unlink(self.path)  # the map keeps the pages until the result is freed
        return framecodec.decode(self.layout, mapped.table, self.rest, mapped=mapped)


def share(out: Any, shm_dir: str | None, disk: str, threshold: int) -> Any:
    """``out`` itself, or a :class:`SharedResult` when it is large enough to write."""
    if not isinstance(out, (pd.DataFrame, pd.Series)):
        return out
    enc = framecodec.encode(out)
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
    return SharedResult(path, enc.layout, enc.rest, nbytes, on_disk)


# -- result buffers ---------------------------------------------------------------


@dataclass(frozen=True)
class Schema:
    """What every chunk's result must look like to be written into the buffers."""

    columns: pd.Index
    dtypes: tuple[Any, ...]
    offsets: tuple[int | None, ...]  # byte offset of each fixed column in the file
    n_rows: int
    size: int

    def fits(self, out: Any, chunk_index: pd.Index) -> bool:
        return (
            isinstance(out, pd.DataFrame)
            and len(out) == len(chunk_index)
            and out.shape[1] == len(self.dtypes)
            and out.columns.equals(self.columns)
            and out.columns.dtype == self.columns.dtype
            and tuple(out.dtypes) == self.dtypes
            and _same_index(out.index, chunk_index)
        )


def _same_index(a: pd.Index, b: pd.Index) -> bool:
    return a is b or (type(a) is type(b) and a.dtype == b.dtype and a.names == b.names and a.equals(b))


def make_schema(out: Any, chunk_index: pd.Index, n_rows: int) -> Schema | None:
    """The buffer layout for results like ``out``, or None when they do not fit buffers."""
    if not isinstance(out, pd.DataFrame) or len(out) != len(chunk_index):
        return None
    if not _same_index(out.index, chunk_index) or out.shape[1] == 0:
        return None
    dtypes = tuple(out.dtypes)
    if not all(_fixed(d) or _string(d) for d in dtypes) or not any(_fixed(d) for d in dtypes):
        return None
    offsets: list[int | None] = []
    size = 0
    for d in dtypes:
        if _fixed(d):
            offsets.append(size)
            size += -(-n_rows * d.itemsize // _ALIGN) * _ALIGN
        else:
            offsets.append(None)
    return Schema(out.columns, dtypes, tuple(offsets), n_rows, size)


@dataclass(frozen=True)
class Written:
    """A worker's reply: its fixed-width columns are in the buffer file."""

    strings: str | None  # Arrow file with the string columns, if any
    nbytes: int
    on_disk: bool


@dataclass(frozen=True)
class BufferTarget:
    """Where a worker writes one chunk's result (travels with the task)."""

    path: str
    schema: Schema
    start: int

    def write(self, out: Any, chunk_index: pd.Index, shm_dir: str | None, disk: str) -> Written | None:
        if not self.schema.fits(out, chunk_index):
            return None
        n = len(out)
        moved = 0
        strings: list[tuple[int, pa.Array]] = []
        with open(self.path, "r+b") as f:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_WRITE)
        try:
            for pos, (dtype, offset) in enumerate(zip(self.schema.dtypes, self.schema.offsets, strict=True)):
                col = out.iloc[:, pos]
                if offset is None:
                    strings.append((pos, framecodec._to_arrow(col.array, dtype)))
                    continue
                storage = _storage(dtype)
                dst = np.frombuffer(mm, dtype=storage, count=n, offset=offset + self.start * storage.itemsize)
                dst[:] = col.to_numpy().view(storage) if storage != dtype else col.to_numpy()
                moved += dst.nbytes
                del dst
        finally:
            mm.close()
        if not strings:
            return Written(None, moved, False)
        table = pa.Table.from_arrays([a for _, a in strings], names=[f"c{p}" for p, _ in strings])
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

    def consider(self, out: Any, start: int, stop: int) -> None:
        """Learn the schema from a result, and allocate the buffers."""
        if self.schema is not None or self.failed:
            return
        schema = make_schema(out, self.data.index[start:stop], len(self.data))
        if schema is None:
            self.failed = True
            return
        for directory in (self.workspace.pick_dir(schema.size), self.workspace.disk):
            name = shm.unique_name("buffer", ".bin")
            fd = shm.create_file(directory, name)
            try:
                shm.reserve(fd, schema.size)
                self.map = mmap.mmap(fd, schema.size, access=mmap.ACCESS_WRITE)
            except OSError:
                os.close(fd)
                os.unlink(os.path.join(directory, name))
                if directory != self.workspace.disk:
                    warnings.warn(SharedMemoryFallbackWarning(
                        f"shared memory filled up while reserving {schema.size / 2**20:.0f} MiB for "
                        "results; using a private temp directory on disk instead"), stacklevel=2)
                continue
            os.close(fd)
            self.path = os.path.join(directory, name)
            self.schema = schema
            return
        self.failed = True

    def target(self, start: int) -> BufferTarget | None:
        if self.schema is None or self.path is None:
            return None
        return BufferTarget(self.path, self.schema, start)

    def _column(self, pos: int) -> np.ndarray:
        assert self.schema is not None and self.map is not None
        dtype = self.schema.dtypes[pos]
        storage = _storage(dtype)
        offset = self.schema.offsets[pos]
        assert offset is not None
        values = np.frombuffer(self.map, dtype=storage, count=self.schema.n_rows, offset=offset)
        return values.view(dtype) if storage != dtype else values

    def _strings(self, written: Written) -> dict[int, pa.ChunkedArray]:
        if written.strings is None:
            return {}
        mapped = framecodec.Mapped(written.strings)
        os.unlink(written.strings)
        return {int(name[1:]): mapped.table.column(name) for name in mapped.table.column_names}

    def assemble(self, parts: list[tuple[int, int, Any]], complete: bool) -> tuple[Any, list[Any]]:
        """The final frame built on the buffers, or ``(None, frames)`` to concatenate.

        ``parts`` are ``(start, stop, value)`` of the successful chunks in
        order; ``complete`` says whether every chunk succeeded.
        """
        schema = self.schema
        if schema is None:
            return None, [p[2] for p in parts]
        pieces: list[dict[int, Any]] = []
        fits = complete and bool(parts) and parts[0][0] == 0 and parts[-1][1] == schema.n_rows
        for start, stop, value in parts:
            if isinstance(value, Written):
                pieces.append(self._strings(value))
                continue
            if not schema.fits(value, self.data.index[start:stop]):
                fits = False
                pieces.append({})
                continue
            strings = {}
            for pos, offset in enumerate(schema.offsets):
                col = value.iloc[:, pos]
                if offset is None:
                    strings[pos] = col.array._pa_array
                else:
                    self._column(pos)[start:stop] = col.to_numpy()
            pieces.append(strings)
        if fits:
            return self._frame(0, schema.n_rows, pieces), []
        frames = []
        for (start, stop, value), strings in zip(parts, pieces, strict=True):
            frames.append(self._frame(start, stop, [strings]) if isinstance(value, Written) else value)
        return None, frames

    def _frame(self, start: int, stop: int, pieces: list[dict[int, Any]]) -> pd.DataFrame:
        assert self.schema is not None
        columns: dict[int, Any] = {}
        for pos, (dtype, offset) in enumerate(zip(self.schema.dtypes, self.schema.offsets, strict=True)):
            if offset is not None:
                columns[pos] = self._column(pos)[start:stop]
                continue
            chunks = []
            for piece in pieces:
                value = piece[pos]
                chunks += value.chunks if isinstance(value, pa.ChunkedArray) else [value]
            arrow_type = chunks[0].type if chunks else pa.large_string()
            chunked = pa.chunked_array([c.cast(arrow_type) for c in chunks], type=arrow_type)
            columns[pos] = framecodec._string_array(chunked, dtype)
        frame = pd.DataFrame(columns, index=self.data.index[start:stop], copy=False)
        frame.columns = self.schema.columns
        return frame

    def close(self) -> None:
        # The map stays valid for the adopted result after the file is removed.
        self.map = None
