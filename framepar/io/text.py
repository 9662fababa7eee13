"""CSV and JSON-lines input: record-aligned byte ranges and whole-file types.

A text chunk is a byte range that starts and ends on a record boundary. For
CSV a newline inside a quoted field is not a boundary, so the splitter keeps
track of quote parity (doubled quotes, the CSV escape, toggle it twice).
JSON lines never hold a raw newline inside a value.

Types are inferred once for the whole file: pandas reads it in bounded
pieces and the per-piece dtypes are widened the way a single whole-file read
would (int + float -> float64, anything + text -> text), so that every chunk
is parsed with the same types.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import pandas as pd
from pandas.api import types as pdt

from .formats import is_gzip, separator

READ_BLOCK = 4 << 20
INFER_ROWS = 250_000


@dataclass(frozen=True)
class TextPiece:
    """A record-aligned piece of a text file: ``[start, stop)`` bytes, ``rows`` records."""

    start: int
    stop: int
    rows: int
    data: bytes | None = None


def open_binary(path: str) -> IO[bytes]:
    if is_gzip(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _records(data: bytes, quote: bytes | None, in_quotes: bool) -> tuple[int, bool]:
    """Non-blank records that end in ``data``, and the quote state at its end."""
    if quote is None or (not in_quotes and quote not in data):
        lines = data.split(b"\n")
        blank = sum(1 for line in lines if not line.strip(b"\r"))
        return len(lines) - blank, in_quotes
    count = 0
    for line in data.split(b"\n"):
        starts_outside = not in_quotes
        if line.count(quote) & 1:
            in_quotes = not in_quotes
        if not in_quotes and (line.strip(b"\r") or not starts_outside):
            count += 1
    return count, in_quotes


def iter_pieces(
    fh: IO[bytes], offset: int, target_bytes: int, *, quote: bytes | None, keep_data: bool
) -> Iterator[TextPiece]:
    """Split the rest of ``fh`` (which is at byte ``offset``) into pieces of about
    ``target_bytes``, each ending on a record boundary."""
    buf = b""
    pos = offset
    in_quotes = False  # the quote state at the start of ``buf``
    eof = False
    while True:
        while not eof and len(buf) <= target_bytes:
            block = fh.read(max(READ_BLOCK, target_bytes))
            eof = not block
            buf += block
        cut = _cut(buf, target_bytes, quote, in_quotes)
        while cut is None and not eof:
            block = fh.read(READ_BLOCK)
            eof = not block
            buf += block
            cut = _cut(buf, target_bytes, quote, in_quotes)
        if cut is None:
            cut = len(buf)
        if cut == 0:
            return
        piece = buf[:cut]
        rows, in_quotes = _records(piece, quote, in_quotes)
        if rows:
            yield TextPiece(pos, pos + cut, rows, piece if keep_data else None)
        buf = buf[cut:]
        pos += cut


def _cut(buf: bytes, target: int, quote: bytes | None, in_quotes: bool) -> int | None:
    """First position after a record-ending newline at or past ``target``."""
    p = target
    if quote is None:
        q = buf.find(b"\n", p)
        return None if q < 0 else q + 1
    parity = (buf.count(quote, 0, p) + in_quotes) & 1
    while True:
        q = buf.find(b"\n", p)
        if q < 0:
            return None
        parity ^= buf.count(quote, p, q) & 1
        if not parity:
            return q + 1
        p = q + 1


def header_end(fh: IO[bytes]) -> int:
    """Bytes taken by the CSV header record (quote-aware)."""
    data = b""
    while True:
        block = fh.read(64 << 10)
        data += block
        cut = _cut(data, 0, b'"', False)
        if cut is not None:
            return cut
        if not block:
            return len(data)


# -- types, inferred once ---------------------------------------------------------


def csv_read_kwargs(path: str) -> dict[str, Any]:
    return {"sep": separator(path)}


def _widen(a: Any, b: Any) -> Any:
    if a == b:
        return a
    numeric = (pdt.is_integer_dtype, pdt.is_float_dtype)
    if all(any(f(d) for f in numeric) for d in (a, b)) and not any(pdt.is_bool_dtype(d) for d in (a, b)):
        return "float64"
    for d in (a, b):
        if pdt.is_string_dtype(d) and not pdt.is_object_dtype(d):
            return d  # pandas 3 str: text wins
    return "object"


def unify(dtypes: list[pd.Series]) -> dict[str, Any]:
    """Widen per-piece dtypes to the dtype of each column in the whole file."""
    out: dict[str, Any] = {}
    for piece in dtypes:
        for col, dt in piece.items():
            name = str(col)
            out[name] = dt if name not in out else _widen(out[name], dt)
    return out


def infer_csv(path: str, explicit: dict[str, Any]) -> tuple[list[str], dict[str, Any], int]:
    """Column names, whole-file dtypes and row count of a CSV file."""
    kwargs = csv_read_kwargs(path)
    names = list(pd.read_csv(path, nrows=0, **kwargs).columns)
    unknown = [c for c in explicit if c not in names]
    if unknown:
        raise ValueError(f"--dtype names columns that are not in the file: {', '.join(unknown)}")
    rows = 0
    pieces = []
    with pd.read_csv(path, chunksize=INFER_ROWS, dtype=explicit or None, **kwargs) as reader:
        for frame in reader:
            rows += len(frame)
            pieces.append(frame.dtypes)
    dtypes = unify(pieces) if pieces else {c: "object" for c in names}
    dtypes.update(explicit)
    return names, dtypes, rows


def infer_jsonl(path: str, explicit: dict[str, Any]) -> tuple[list[str], dict[str, Any], int]:
    rows = 0
    pieces = []
    with pd.read_json(path, lines=True, chunksize=INFER_ROWS) as reader:
        for frame in reader:
            rows += len(frame)
            pieces.append(frame.dtypes)
    dtypes = unify(pieces)
    dtypes.update(explicit)
    return list(dtypes), dtypes, rows


def read_dtype(dt: Any) -> Any:
    """The dtype to ask ``read_csv`` for: text stays text (``str``), never re-parsed."""
    if pdt.is_object_dtype(dt) or (pdt.is_string_dtype(dt) and not pdt.is_object_dtype(dt)):
        return str
    return dt


@dataclass(frozen=True)
class TextChunk:
    """A recipe: rows ``[row_start, ...)`` of a text file, read by the worker.

    Either a byte range of ``path`` (read where the function runs) or, for a
    compressed file that cannot be entered in the middle, the bytes themselves.
    """

    path: str
    kind: str  # "csv" | "jsonl"
    start: int
    stop: int
    row_start: int
    rows: int  # records found by the scan (pandas' count is authoritative)
    names: tuple[str, ...]
    dtypes: dict[str, Any]
    data: bytes | None = None

    def describe(self) -> str:
        return f"bytes {self.start}:{self.stop}" + (" (decompressed)" if self.data is not None else "")

    def _bytes(self) -> bytes:
        if self.data is not None:
            return self.data
        with open(self.path, "rb") as fh:
            fh.seek(self.start)
            return fh.read(self.stop - self.start)

    def load(self) -> pd.DataFrame:
        data = self._bytes()
        if not data.strip():
            empty = pd.DataFrame({c: pd.Series(dtype=self.dtypes.get(c, "object")) for c in self.names})
            empty.index = pd.RangeIndex(self.row_start, self.row_start)
            return empty
        raw = io.BytesIO(data)
        if self.kind == "csv":
            df = pd.read_csv(
                raw, header=None, names=list(self.names),
                dtype={c: read_dtype(d) for c, d in self.dtypes.items()}, **csv_read_kwargs(self.path),
            )
        else:
            df = pd.read_json(raw, lines=True)
            for col, dt in self.dtypes.items():
                if col in df.columns and df[col].dtype != dt:
                    df[col] = df[col].astype(dt)
        df.index = pd.RangeIndex(self.row_start, self.row_start + len(df))
        return df
