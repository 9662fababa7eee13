"""Planning an input file into chunk *recipes* that workers read themselves.

A recipe is a small picklable object with ``load() -> DataFrame`` that runs
where the user's function runs: Parquet row groups (of one file or a
directory of files), Arrow IPC record batches, or a record-aligned byte range
of a CSV / JSON-lines file. The parent only reads metadata (and, for text, one
scan to find record boundaries and the column types), so memory does not
depend on the file's size. Only gzip-compressed text, which cannot be entered
in the middle, is read by the parent and shipped in pieces, lazily, while
the run goes on.

Every chunk's frame gets a ``RangeIndex`` of its global row positions, as the
rows would have in the whole file read by pandas.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from . import text
from .formats import detect, is_gzip
from .partition import (
    KeyScan,
    PartitionPlan,
    contiguous_bounds,
    cut_buckets,
    key_batches_arrow,
    key_batches_parquet,
    key_batches_text,
)

# Default chunk size: a few chunks per worker for load balance, but no chunk
# above this many bytes in memory, so that peak memory is set by the chunk
# size and the worker count, never by the file's size.
TARGET_CHUNK_BYTES = 64 << 20
MIN_CHUNK_ROWS = 1024
CHUNKS_PER_WORKER = 4


class InputError(ValueError):
    """The input cannot be planned: missing, unreadable, corrupt or unsupported."""


# -- recipes ------------------------------------------------------------------------


def _frame(table: Any, row_start: int) -> pd.DataFrame:
    df = table.to_pandas(split_blocks=True, self_destruct=True)
    index = df.index
    if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1 and index.name is None:
        df.index = pd.RangeIndex(row_start, row_start + len(df))
    return df


@dataclass(frozen=True)
class ParquetChunk:
    """Row groups of one or more Parquet files, optionally sliced to ``[offset, offset+length)``."""

    pieces: tuple[tuple[str, tuple[int, ...]], ...]
    row_start: int
    rows: int
    offset: int = 0
    length: int | None = None

    def describe(self) -> str:
        parts = []
        for path, groups in self.pieces:
            name = os.path.basename(path)
            span = f"{groups[0]}" if len(groups) == 1 else f"{groups[0]}-{groups[-1]}"
            parts.append(f"{name} row group {span}" if groups else f"{name} (empty)")
        where = "; ".join(parts)
        if self.length is not None:
            where += f" rows {self.offset}:{self.offset + self.length}"
        return where

    def load(self) -> pd.DataFrame:
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables = [pq.ParquetFile(path).read_row_groups(list(groups), use_threads=False)
                  for path, groups in self.pieces]
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        if self.length is not None:
            table = table.slice(self.offset, self.length)
        return _frame(table, self.row_start)


@dataclass(frozen=True)
class ArrowChunk:
    """Record batches of an Arrow IPC (Feather v2) file, memory-mapped by the reader."""

    path: str
    batches: tuple[int, ...]
    row_start: int
    rows: int
    offset: int = 0
    length: int | None = None

    def describe(self) -> str:
        b = self.batches
        span = "none" if not b else (f"{b[0]}" if len(b) == 1 else f"{b[0]}-{b[-1]}")
        where = f"record batch {span}"
        if self.length is not None:
            where += f" rows {self.offset}:{self.offset + self.length}"
        return where

    def load(self) -> pd.DataFrame:
        import pyarrow as pa

        reader = pa.ipc.open_file(pa.memory_map(self.path))
        table = pa.Table.from_batches([reader.get_batch(i) for i in self.batches], schema=reader.schema)
        if self.length is not None:
            table = table.slice(self.offset, self.length)
        return _frame(table, self.row_start)


# -- the plan -------------------------------------------------------------------------


@dataclass
class InputPlan:
    """How an input file will be read: its chunks (recipes) and what is known about it."""

    path: str
    format: str
    files: list[str]
    rows: int | None  # exact where the format says so; CSV/JSON: from the type scan
    columns: dict[str, str]  # name -> type, for ``inspect``
    chunks: Any  # list of recipes, or a lazy iterator (compressed text)
    n_chunks: int | None
    units: str  # what the format stores rows in ("row groups", ...)
    n_units: int | None
    schema: Any = None  # pyarrow schema of the input where it has one
    bytes_on_disk: int = 0
    partition: PartitionPlan | None = None  # --by with scattered groups: a pass first

    def fingerprint(self) -> list[list[Any]]:
        out = []
        for f in self.files:
            st = os.stat(f)
            out.append([os.path.abspath(f), st.st_size, st.st_mtime_ns])
        return out


def _natural_key(p: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def _parquet_files(path: Path) -> list[str]:
    if path.is_dir():
        files = sorted(
            (p for p in path.iterdir() if p.is_file() and p.suffix in (".parquet", ".pq")),
            key=_natural_key,
        )
        if not files:
            raise InputError(f"{path} is a directory with no .parquet files in it")
        return [str(p) for p in files]
    return [str(path)]


def default_chunk_rows(total_rows: int, bytes_per_row: float, workers: int) -> int:
    by_balance = math.ceil(total_rows / (workers * CHUNKS_PER_WORKER)) if total_rows else 1
    by_memory = max(1, int(TARGET_CHUNK_BYTES / max(bytes_per_row, 1.0)))
    return max(MIN_CHUNK_ROWS, min(by_balance, by_memory))


def _group_units(sizes: list[int], target: int, split: bool) -> list[tuple[int, int, int, int]]:
    """Cut consecutive units of ``sizes`` rows into chunks of about ``target`` rows.

    Returns ``(first_unit, last_unit_exclusive, offset, length)``; ``length``
    is -1 when the chunk is whole units. Units are merged while they fit;
    a unit larger than ``target`` is split only when ``split`` (an explicit
    ``--chunk-rows``), since splitting re-reads the unit for each part.
    """
    out: list[tuple[int, int, int, int]] = []
    i = 0
    n = len(sizes)
    while i < n:
        if split and sizes[i] > target:
            for off in range(0, sizes[i], target):
                out.append((i, i + 1, off, min(target, sizes[i] - off)))
            i += 1
            continue
        j = i
        rows = 0
        while j < n and (j == i or rows + sizes[j] <= target) and not (split and sizes[j] > target):
            rows += sizes[j]
            j += 1
        out.append((i, j, 0, -1))
        i = j
    return out


def _ranges_to_units(
    bounds: list[tuple[int, int]], sizes: list[int]
) -> list[tuple[int, int, int, int]]:
    """Row ranges ``[a, b)`` -> ``(first_unit, last_unit_exclusive, offset, length)``."""
    starts = [0]
    for s in sizes:
        starts.append(starts[-1] + s)
    out = []
    u = 0
    for a, b in bounds:
        while u + 1 < len(starts) and starts[u + 1] <= a:
            u += 1
        v = u
        while v < len(sizes) and starts[v] < b:
            v += 1
        out.append((u, max(v, u + 1) if b > a else u, a - starts[u], b - a))
    return out


def plan_input(
    path: str,
    *,
    fmt: str | None = None,
    workers: int = 1,
    chunk_rows: int | None = None,
    by: str | None = None,
    dtypes: dict[str, Any] | None = None,
) -> InputPlan:
    """Plan ``path`` into chunks; raises :class:`InputError` saying what to fix."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"input {path!r} does not exist; check the path")
    try:
        kind = detect(p, fmt, what="input")
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    if not os.access(p, os.R_OK):
        raise InputError(f"input {path!r} is not readable; check its permissions")
    try:
        if kind == "parquet":
            return _plan_parquet(p, workers, chunk_rows, by)
        if kind == "arrow":
            return _plan_arrow(p, workers, chunk_rows, by)
        return _plan_text(p, kind, workers, chunk_rows, by, dtypes or {})
    except InputError:
        raise
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise InputError(
            f"cannot read {path!r} as {kind}: {type(exc).__name__}: {_first_line(exc)}; "
            "check that the file is complete and of that format (or name it with --format)"
        ) from exc
    except Exception as exc:  # pyarrow.ArrowInvalid and friends
        raise InputError(
            f"cannot read {path!r} as {kind}: {type(exc).__name__}: {_first_line(exc)}; "
            "check that the file is complete and of that format (or name it with --format)"
        ) from exc


def _first_line(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return msg[0] if msg else type(exc).__name__


def _columns_of(schema: Any) -> dict[str, str]:
    return {name: str(t) for name, t in zip(schema.names, schema.types, strict=True)}


@dataclass(frozen=True)
class _UnitSlice:
    """Rows of consecutive storage units (row groups, record batches) forming one chunk:
    units ``[first, last)``, sliced to ``[offset, offset + length)`` unless whole
    (``length`` is None)."""

    first: int
    last: int
    row_start: int
    rows: int
    offset: int
    length: int | None


def _slice_units(
    sizes: list[int],
    nbytes: int,
    *,
    workers: int,
    chunk_rows: int | None,
    by: str | None,
    schema: Any,
    key_batches: Callable[[str], Iterator[pd.Series]],
) -> tuple[int, KeyScan | None, list[_UnitSlice]]:
    """Cut a file of units holding ``sizes`` rows into chunks: the target
    chunk size, the key scan (with ``by``) and the chunks' unit slices.

    With ``by``, groups found together in the file are cut between groups;
    scattered ones are left to :func:`_partitioned` (the scan says which).
    """
    total = sum(sizes)
    target = chunk_rows or default_chunk_rows(total, nbytes / max(total, 1), workers)
    scan = None
    if by is not None:
        _check_column(by, schema)
        scan = _scan(key_batches(by), True)
    if scan is not None and scan.runs is not None:
        grouped = _ranges_to_units(contiguous_bounds(scan.runs, total, target), sizes)
    else:
        grouped = _group_units(sizes, target, split=chunk_rows is not None)
    starts = list(itertools.accumulate(sizes, initial=0))
    slices = []
    for i, j, off, length in grouped:
        whole = length == -1 or (off == 0 and length == starts[j] - starts[i])
        slices.append(_UnitSlice(i, j, starts[i] + off, starts[j] - starts[i] if whole else length,
                                 0 if whole else off, None if whole else length))
    return target, scan, slices


def _plan_parquet(p: Path, workers: int, chunk_rows: int | None, by: str | None) -> InputPlan:
    import pyarrow.parquet as pq

    files = _parquet_files(p)
    units: list[tuple[str, int]] = []
    sizes: list[int] = []
    nbytes = 0
    schema = None
    for f in files:
        meta = pq.ParquetFile(f).metadata
        fschema = meta.schema.to_arrow_schema()
        if schema is None:
            schema = fschema
        elif not fschema.equals(schema, check_metadata=False):
            raise InputError(f"{f} has a different schema from {files[0]}; all files of a directory must match")
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            units.append((f, g))
            sizes.append(rg.num_rows)
            nbytes += rg.total_byte_size
    target, scan, slices = _slice_units(
        sizes, nbytes, workers=workers, chunk_rows=chunk_rows, by=by, schema=schema,
        key_batches=lambda key: key_batches_parquet(files, key),
    )
    chunks = []
    for sl in slices:
        picked: dict[str, list[int]] = {}
        for f, g in units[sl.first:sl.last]:
            picked.setdefault(f, []).append(g)
        pieces = tuple((f, tuple(gs)) for f, gs in picked.items()) or ((files[0], ()),)
        chunks.append(ParquetChunk(pieces, sl.row_start, sl.rows, sl.offset, sl.length))
    if not chunks:
        chunks.append(ParquetChunk(((files[0], ()),), 0, 0))
    plan = InputPlan(
        str(p), "parquet", files, sum(sizes), _columns_of(schema), chunks, len(chunks),
        "row groups", len(units), schema, sum(os.path.getsize(f) for f in files),
    )
    return _partitioned(plan, scan, by, target)


def _check_column(by: str, columns: Any) -> None:
    names = [str(c) for c in (columns.names if hasattr(columns, "field") else columns)]
    if by not in names:
        raise InputError(f"--by {by}: no such column; the columns are {', '.join(names)}")


def _scan(batches: Iterator[pd.Series], track_runs: bool) -> KeyScan:
    scan = KeyScan(track_runs)
    for keys in batches:
        scan.add(keys)
    return scan


def _partitioned(plan: InputPlan, scan: KeyScan | None, by: str | None, target: int) -> InputPlan:
    """The plan of buckets when the groups of ``by`` are scattered (see io.partition)."""
    if scan is None or by is None or scan.runs is not None or scan.rows == 0:
        return plan
    counts = scan.counts()
    partitioner, buckets = cut_buckets(counts, scan.nulls, target, by)
    plan.partition = PartitionPlan(partitioner, plan.chunks, plan.n_chunks,
                                   len(counts) + (1 if scan.nulls else 0))
    plan.chunks = buckets
    plan.n_chunks = len(buckets)
    return plan


def _plan_arrow(p: Path, workers: int, chunk_rows: int | None, by: str | None) -> InputPlan:
    import pyarrow as pa

    try:
        reader = pa.ipc.open_file(pa.memory_map(str(p)))
    except pa.ArrowInvalid as exc:
        raise InputError(
            f"{p} is not an Arrow IPC file (Feather v2): {_first_line(exc)}; an Arrow *stream* "
            "cannot be split without reading it all: convert it with pyarrow.ipc.new_file"
        ) from exc
    sizes = []
    nbytes = 0
    for i in range(reader.num_record_batches):
        b = reader.get_batch(i)
        sizes.append(b.num_rows)
        nbytes += b.nbytes
    target, scan, slices = _slice_units(
        sizes, nbytes, workers=workers, chunk_rows=chunk_rows, by=by, schema=reader.schema,
        key_batches=lambda key: key_batches_arrow(str(p), key),
    )
    chunks = [ArrowChunk(str(p), tuple(range(sl.first, sl.last)), sl.row_start, sl.rows, sl.offset, sl.length)
              for sl in slices]
    if not chunks:
        chunks.append(ArrowChunk(str(p), (), 0, 0))
    plan = InputPlan(
        str(p), "arrow", [str(p)], sum(sizes), _columns_of(reader.schema), chunks, len(chunks),
        "record batches", len(sizes), reader.schema, os.path.getsize(p),
    )
    return _partitioned(plan, scan, by, target)


def _plan_text(
    p: Path, kind: str, workers: int, chunk_rows: int | None, by: str | None, dtypes: dict[str, Any]
) -> InputPlan:
    path = str(p)
    if by is not None and kind == "csv":
        # Before the type scan: a wrong name fails at once.
        _check_column(by, pd.read_csv(path, nrows=0, **text.csv_read_kwargs(path)).columns)
    if kind == "csv":
        names, types, rows = text.infer_csv(path, dtypes)
    else:
        names, types, rows = text.infer_jsonl(path, dtypes)
    size = os.path.getsize(p)
    gz = is_gzip(p)
    header = 0
    if kind == "csv":
        with text.open_binary(path) as fh:
            header = text.header_end(fh)
    data_bytes = max(1, size * (4 if gz else 1) - header)  # compressed: a rough guess
    per_row = data_bytes / max(rows, 1)
    target_rows = chunk_rows or default_chunk_rows(rows, per_row * 3, workers)
    target_bytes = max(1, int(target_rows * per_row))
    quote = b'"' if kind == "csv" else None
    columns = {c: str(types[c]) for c in names}

    def recipes(keep: bool) -> Iterator[text.TextChunk]:
        row = 0
        with text.open_binary(path) as fh:
            fh.seek(header) if not gz else fh.read(header)
            for piece in text.iter_pieces(fh, header, target_bytes, quote=quote, keep_data=keep):
                yield text.TextChunk(path, kind, piece.start, piece.stop, row, piece.rows,
                                     tuple(names), types, piece.data)
                row += piece.rows

    if gz:
        # Cannot seek into a gzip stream: the parent decompresses and ships each
        # piece, lazily, so only the chunks in flight are ever in memory.
        chunks: Any = recipes(True)
        n_chunks = None
    else:
        chunks = list(recipes(False))
        n_chunks = len(chunks)
    if n_chunks == 0 or (gz and rows == 0):
        chunks = [text.TextChunk(path, kind, header, header, 0, 0, tuple(names), types,
                                 b"" if gz else None)]
        n_chunks = 1
    plan = InputPlan(path, kind, [path], rows, columns, chunks, n_chunks,
                     "bytes", size, None, size)
    if by is None:
        return plan
    _check_column(by, names)
    # Text has no cheap way to address a group's rows: always partitioned.
    return _partitioned(plan, _scan(key_batches_text(path, kind, by, types[by]), False), by, target_rows)
