"""Group-aware chunks for inputs whose groups are scattered: an external partition.

``--by COLUMN`` must hand the function every row of a group in one chunk.
When the file already holds each group's rows together (Parquet/Arrow), the
chunks are cut between groups and the output follows the file. Otherwise:

1. the parent streams the key column once and counts rows per key (memory
   grows with the number of distinct keys, not with the rows);
2. the distinct keys, in pandas' ``groupby`` order (sorted, missing keys last
   as one group), are cut into *buckets* of about the target chunk size; a
   group is never split, so a group bigger than the target is a bucket alone;
3. the workers read the input chunk by chunk, as for a plain run, and
   append the rows of every bucket, tagged with the input chunk's index, to
   that bucket's spill file of their own (``b<bucket>/w<worker>.pkl`` under a
   private temp directory): files per bucket grow with the workers, not with
   the input's chunks, so a huge input does not make millions of small files;
4. a bucket is then a chunk recipe (:class:`BucketChunk`): it reads its spill
   files, puts the pieces in input-chunk order and stable-sorts them by key,
   so groups come whole, in sorted key order, with their rows in input order.

The buckets depend only on the input and the target size, so a resumed run
gets the same chunks. Spill files are pickles of the frames the input
recipes load: exact dtypes (whole-file CSV types, NaN versus None), read
back by the same program in a 0700 directory of its own.
"""

from __future__ import annotations

import os
import pickle
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

KEY_BATCH_ROWS = 1 << 20
# Per-batch key counts waiting to be merged; merging every batch would cost
# O(distinct keys) per batch, never merging O(rows) memory for scattered keys.
MERGE_PENDING = 1 << 20
EMPTY = "empty.pkl"


class _Missing:
    """One sentinel for every missing key (NaN, None, NaT, NA): they form one group."""

    def __repr__(self) -> str:
        return "missing"


MISSING = _Missing()


class KeyScan:
    """Row counts per key of a column seen in batches, and whether groups are contiguous."""

    def __init__(self, track_runs: bool) -> None:
        self.rows = 0
        self.nulls = 0
        self._pending: list[pd.Series] = []
        self._pending_len = 0
        self._counts: pd.Series | None = None
        # Start positions of the groups while they are contiguous; None once not.
        self.runs: list[int] | None = [] if track_runs else None
        self._seen: set[Any] = set()
        self._last: Any = None

    def add(self, keys: pd.Series) -> None:
        n = len(keys)
        if n == 0:
            return
        keys = keys.reset_index(drop=True)
        na = keys.isna().to_numpy(dtype=bool)
        self.nulls += int(na.sum())
        counts = keys[~na].value_counts(sort=False)
        counts = counts[counts > 0]  # categoricals list unused categories
        self._pending.append(counts)
        self._pending_len += len(counts)
        if self._pending_len > MERGE_PENDING:
            self._merge()
        if self.runs is not None:
            self._track(keys, na, len(counts) + bool(na.any()))
        self.rows += n

    def _track(self, keys: pd.Series, na: np.ndarray, distinct_here: int) -> None:
        change = (keys != keys.shift()).to_numpy(dtype=bool, na_value=True, copy=True)
        prev_na = np.concatenate(([False], na[:-1]))
        change &= ~(na & prev_na)
        change[0] = True
        pos = change.nonzero()[0]
        if len(pos) > distinct_here:  # more runs than keys: some key comes back
            self.runs = None
            self._seen = set()
            return
        values = [MISSING if m else v for v, m in zip(keys.iloc[pos].tolist(), na[pos], strict=True)]
        if self.rows and _same(values[0], self._last):
            pos, values = pos[1:], values[1:]  # the previous batch's last group goes on
        if not values:
            return
        distinct = set(values)
        if len(distinct) != len(values) or not distinct.isdisjoint(self._seen):
            self.runs = None  # a key comes back after another one: scattered
            self._seen = set()
            return
        self._seen |= distinct
        self.runs.extend((pos + self.rows).tolist())  # type: ignore[union-attr]
        self._last = values[-1]

    def _merge(self) -> None:
        parts = ([self._counts] if self._counts is not None else []) + self._pending
        merged = pd.concat(parts) if len(parts) > 1 else parts[0]
        self._counts = merged.groupby(level=0, sort=False).sum() if len(parts) > 1 else merged
        self._pending = []
        self._pending_len = 0

    def counts(self) -> pd.Series:
        """Rows per non-missing key, in ``groupby(sort=True)`` order."""
        if self._pending:
            self._merge()
        if self._counts is None:
            return pd.Series([], dtype="int64")
        return self._counts.sort_index()


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a is b or a == b)
    except (TypeError, ValueError):
        return False


def contiguous_bounds(starts: list[int], rows: int, target: int) -> list[tuple[int, int]]:
    """Row ranges ``[a, b)`` of about ``target`` rows cut only at group ``starts``."""
    if rows == 0:
        return [(0, 0)]
    bounds = []
    a = 0
    for s in starts[1:]:
        if s - a >= target:
            bounds.append((a, s))
            a = s
    bounds.append((a, rows))
    return bounds


# -- buckets -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Partitioner:
    """Which bucket a row goes to, from its key: runs in the workers."""

    by: str
    starts: pd.Index  # first key of every bucket but the first (non-missing keys only)
    null_bucket: int  # missing keys form the last group, so they go to the last bucket

    def bucket_of(self, keys: pd.Series) -> np.ndarray:
        na = keys.isna().to_numpy(dtype=bool)
        out = np.full(len(keys), self.null_bucket, dtype=np.int64)
        present = keys[~na]
        if len(self.starts) and len(present):
            out[~na] = self.starts.searchsorted(present.to_numpy(), side="right")
        elif len(present):
            out[~na] = 0
        return out


def _show(key: Any) -> str:
    text = repr(key.item() if isinstance(key, np.generic) else key)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class BucketChunk:
    """A recipe: every row of the groups ``first`` to ``last`` of the key column ``by``.

    Reads the spill files the partition pass wrote for this bucket (``spill``
    is set when the run has its spill directory) in input order, and
    stable-sorts by key: each group whole, groups in sorted order, rows of a
    group in input order, each row keeping its index label (its position in
    the file).
    """

    by: str
    bucket: int
    row_start: int  # position of the bucket's first row in group order
    rows: int
    groups: int
    first: str
    last: str
    spill: str = ""

    def describe(self) -> str:
        if self.groups == 1:
            return f"{self.by} = {self.first} (1 group, partitioned)"
        return f"{self.by} {self.first} to {self.last} ({self.groups:,} groups, partitioned)"

    def load(self) -> pd.DataFrame:
        folder = bucket_dir(self.spill, self.bucket)
        pieces: dict[int, pd.DataFrame] = {}
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            # A retried input chunk may appear twice (in two workers' files): once is enough.
            pieces.update(read_pieces(os.path.join(folder, name)))
        if not pieces:
            return read_spill(os.path.join(self.spill, EMPTY))
        frames = [pieces[k] for k in sorted(pieces)]
        df = frames[0] if len(frames) == 1 else pd.concat(frames)
        return df.sort_values(self.by, kind="stable", na_position="last")


def bucket_dir(spill: str, bucket: int) -> str:
    return os.path.join(spill, f"b{bucket:06d}")


def read_pieces(path: str) -> Iterator[tuple[int, pd.DataFrame]]:
    """The ``(input chunk, rows)`` records appended to one worker's spill file."""
    with open(path, "rb") as fh:
        while True:
            try:
                index, frame = pickle.load(fh)
            except (EOFError, pickle.UnpicklingError, ValueError):
                return  # the end, or a record cut short by a worker that died writing it
            yield index, frame


def read_spill(path: str) -> pd.DataFrame:
    with open(path, "rb") as fh:
        frame: pd.DataFrame = pickle.load(fh)
    return frame


def _write_spill(frame: pd.DataFrame, path: str) -> None:
    # Unique per process and thread: workers of a thread backend share a pid.
    tmp = f"{path}.{os.getpid()}-{threading.get_ident()}.tmp"
    with open(tmp, "wb") as fh:
        pickle.dump(frame, fh, protocol=5)
    os.replace(tmp, path)


def cut_buckets(counts: pd.Series, nulls: int, target: int, by: str) -> tuple[Partitioner, list[BucketChunk]]:
    """Cut the sorted groups (then the missing-key group) into buckets of about ``target`` rows."""
    sizes = counts.to_numpy(dtype=np.int64)
    if nulls:
        sizes = np.append(sizes, nulls)
    n_keys = len(counts)
    cum = np.cumsum(sizes)
    bounds = []  # (first group, last group exclusive)
    start = 0
    while start < len(sizes):
        before = int(cum[start - 1]) if start else 0
        end = int(np.searchsorted(cum, before + target, side="right"))
        end = max(end, start + 1)  # a group larger than the target stays whole
        bounds.append((start, end))
        start = end
    keys = counts.index
    chunks = []
    row = 0
    for b, (i, j) in enumerate(bounds):
        rows = int(cum[j - 1] - (cum[i - 1] if i else 0))
        first = _show(keys[i]) if i < n_keys else "missing"
        last = _show(keys[j - 1]) if j - 1 < n_keys else "missing"
        chunks.append(BucketChunk(by, b, row, rows, j - i, first, last))
        row += rows
    starts = keys[[i for i, _ in bounds[1:] if i < n_keys]]
    return Partitioner(by, starts, len(bounds) - 1), chunks


# -- the partition pass (worker side) ----------------------------------------------------


@dataclass(frozen=True)
class PartitionJob:
    """Runs in the worker: read one input chunk, write its rows bucket by bucket."""

    partitioner: Partitioner
    spill: str
    skip: frozenset[int] = field(default_factory=frozenset)  # buckets a resumed run has

    def __call__(self, task: Any) -> dict[int, int]:
        frame = task.source.load()
        empty = os.path.join(self.spill, EMPTY)
        if not os.path.exists(empty):
            _write_spill(frame.iloc[:0], empty)
        buckets = self.partitioner.bucket_of(frame[self.partitioner.by])
        order = np.argsort(buckets, kind="stable")
        present, first, counts = np.unique(buckets[order], return_index=True, return_counts=True)
        # One file per bucket and worker (process and thread: threads must not
        # interleave their appends; host: Dask workers may share the directory).
        me = f"w-{socket.gethostname()}-{os.getpid()}-{threading.get_ident()}.pkl"
        written: dict[int, int] = {}
        for b, a, n in zip(present.tolist(), first.tolist(), counts.tolist(), strict=True):
            if b in self.skip:
                continue
            folder = bucket_dir(self.spill, b)
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, me), "ab") as fh:
                end = fh.tell()
                try:
                    pickle.dump((task.index, frame.take(order[a : a + n])), fh, protocol=5)
                    fh.flush()
                except BaseException:
                    fh.truncate(end)  # this worker's later records must stay readable
                    raise
            written[b] = n
        return written


@dataclass
class PartitionPlan:
    """What the partition pass reads: the input's own chunk recipes, and how to bucket rows."""

    partitioner: Partitioner
    inputs: Iterable[Any]  # recipes of the input (a list, or lazy for compressed text)
    n_inputs: int | None
    groups: int


def key_batches_parquet(files: list[str], by: str) -> Iterator[pd.Series]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for f in files:
        pf = pq.ParquetFile(f)
        for batch in pf.iter_batches(batch_size=KEY_BATCH_ROWS, columns=[by], use_threads=False):
            yield pa.Table.from_batches([batch]).to_pandas()[by]


def key_batches_arrow(path: str, by: str) -> Iterator[pd.Series]:
    import pyarrow as pa

    reader = pa.ipc.open_file(pa.memory_map(path))
    for i in range(reader.num_record_batches):
        batch = reader.get_batch(i)
        yield pa.Table.from_batches([batch]).select([by]).to_pandas()[by]


def key_batches_text(path: str, kind: str, by: str, dtype: Any) -> Iterator[pd.Series]:
    """The key column parsed as the chunks parse it (see ``text.TextChunk.load``)."""
    from . import text

    if kind == "csv":
        with pd.read_csv(path, usecols=[by], dtype={by: text.read_dtype(dtype)},
                         chunksize=KEY_BATCH_ROWS, **text.csv_read_kwargs(path)) as reader:
            for frame in reader:
                yield frame[by]
    else:
        with pd.read_json(path, lines=True, chunksize=KEY_BATCH_ROWS) as reader:
            for frame in reader:
                keys = frame[by] if by in frame.columns else pd.Series([None] * len(frame), dtype=dtype)
                yield keys if keys.dtype == dtype else keys.astype(dtype)
