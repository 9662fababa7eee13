"""Writing results: each worker encodes its chunk as a *part file*; the parent
appends the parts to one output file in input order.

Encoding (Parquet pages, Arrow buffers, CSV or JSON text, gzip) happens in
the workers, in parallel; the parent only splices bytes (Parquet, CSV,
JSON lines) or copies Arrow batches, so it never becomes the bottleneck and
never holds more than one part. Every appender reports, after each part, what
an interrupted run needs to continue (:meth:`Appender.add` entries go into the
manifest).

Types across chunks: the output's schema is fixed by the first chunk, except
that a column that is all-null there (no type yet) takes its type from the
input file's column of the same name or from the next chunks that have one.
A later chunk whose types differ is cast to the output's schema when that
loses nothing (int64 -> float64, a column that became float only through
missing values back to int64); otherwise that chunk fails with a message
saying which column disagrees.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .parquet_concat import ParquetSplicer, copy_bytes

MAX_HELD = 16
EXTENSIONS = {"parquet": "parquet", "arrow": "arrow", "csv": "csv", "jsonl": "jsonl"}


@dataclass(frozen=True)
class PartInfo:
    """What a worker reports about the part it wrote (small: it crosses the pipe)."""

    path: str
    rows_in: int
    rows_out: int
    columns: tuple[str, ...]


def to_table_frame(result: Any) -> pd.DataFrame:
    """The function's result as the frame to write: named index levels become
    columns (a plain positional index is dropped), names become strings."""
    if isinstance(result, pd.Series):
        result = result.to_frame()
    df: pd.DataFrame = result
    index = df.index
    if isinstance(index, pd.MultiIndex) or index.name is not None:
        df = df.reset_index()
    else:
        df = df.reset_index(drop=True)
    if not all(isinstance(c, str) for c in df.columns):
        df.columns = pd.Index([str(c) for c in df.columns])
    if not df.columns.is_unique:
        dup = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
        raise ValueError(f"the function's result has duplicate column names {dup}; files need unique names")
    return df


def write_parquet(table: Any, path: str) -> None:
    """Parquet as pandas writes it (snappy, statistics), except that floating-point
    columns are not dictionary-encoded: measured values rarely repeat, so the
    attempt costs about 40% of the write and the writer falls back to plain
    encoding anyway. Every other column keeps dictionary encoding."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dictionary = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
    pq.write_table(table, path, compression="snappy", use_dictionary=dictionary)


@dataclass(frozen=True)
class PartEncoder:
    """Runs in the worker: writes one chunk's result as a part file of ``fmt``."""

    fmt: str
    parts_dir: str
    compress: bool = False

    def path_for(self, index: int) -> str:
        ext = EXTENSIONS[self.fmt] + (".gz" if self.compress else "")
        return os.path.join(self.parts_dir, f"part-{index:08d}.{ext}")

    def encode(self, result: Any, index: int, rows_in: int) -> PartInfo:
        df = to_table_frame(result)
        final = self.path_for(index)
        tmp = f"{final}.{os.getpid()}.tmp"
        if self.fmt in ("parquet", "arrow"):
            import pyarrow as pa

            table = pa.Table.from_pandas(df, preserve_index=False)
            if self.fmt == "parquet":
                write_parquet(table, tmp)
            else:
                with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
                    w.write_table(table)
        else:
            if self.fmt == "csv":
                body = df.to_csv(header=False, index=False).encode()
            else:
                body = df.to_json(orient="records", lines=True, date_format="iso").encode() if len(df) else b""
                if body and not body.endswith(b"\n"):
                    body += b"\n"
            if self.compress and body:
                body = gzip.compress(body, compresslevel=6)
            with open(tmp, "wb") as fh:
                fh.write(body)
        info = PartInfo(final, rows_in, len(df), tuple(str(c) for c in df.columns))
        with open(tmp + ".json", "w") as fh:
            json.dump({"rows_in": rows_in, "rows_out": len(df), "columns": list(info.columns)}, fh)
        os.replace(tmp + ".json", final + ".json")
        # Atomic, and last: a part file that exists is complete, with its
        # sidecar, so a resumed run can use it without recomputing.
        os.replace(tmp, final)
        return info


def existing_part(path: str) -> PartInfo | None:
    """A part left by an interrupted run, if it was completely written."""
    try:
        with open(path + ".json") as fh:
            meta = json.load(fh)
    except (OSError, ValueError):
        return None
    if not os.path.exists(path):
        return None
    return PartInfo(path, int(meta["rows_in"]), int(meta["rows_out"]), tuple(meta["columns"]))


def remove_part(path: str) -> None:
    for p in (path, path + ".json"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)


# -- the parent side --------------------------------------------------------------------


class Appender(ABC):
    """Appends parts, in order, to the temporary output file ``path``."""

    def __init__(self, path: str, hint: Any = None) -> None:
        self.path = path
        self.hint = hint  # the input's pyarrow schema, to type all-null columns

    @abstractmethod
    def add(self, chunk: int, info: PartInfo) -> list[tuple[int, dict[str, Any] | None, str | None]]:
        """Append a part (or hold it); returns ``(chunk, manifest entry, error)`` for
        every chunk whose fate is now settled."""

    @abstractmethod
    def finish(self) -> None:
        """Complete the file (footer, end marker); it is then ready to be renamed."""

    @abstractmethod
    def restore(self, entries: list[dict[str, Any]], old: str) -> None:
        """Continue the interrupted output ``old`` (moved aside) from the manifest's entries."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release the open file (after finish, or when giving up)."""


def _end_of(entries: list[dict[str, Any]], start: int) -> int:
    """Where the last appended part ended (what follows it was being written when killed)."""
    ends = [e["end"] for e in entries if "end" in e]
    return max(ends) if ends else start


class TextAppender(Appender):
    """CSV and JSON lines: parts are text (or gzip members) appended as they are."""

    def __init__(self, path: str, fmt: str, compress: bool) -> None:
        super().__init__(path)
        self.fmt = fmt
        self.compress = compress
        self.columns: tuple[str, ...] | None = None
        self.fh = open(path, "ab")  # noqa: SIM115 - closed in close()

    def _header(self, columns: tuple[str, ...]) -> bytes:
        if self.fmt != "csv":
            return b""
        line = pd.DataFrame(columns=list(columns)).to_csv(index=False).encode()
        return gzip.compress(line) if self.compress else line

    def add(self, chunk: int, info: PartInfo) -> list[tuple[int, dict[str, Any] | None, str | None]]:
        entry: dict[str, Any] = {}
        if self.columns is None:
            self.columns = info.columns
            self.fh.write(self._header(info.columns))
            entry["columns"] = list(info.columns)
        elif info.columns != self.columns:
            remove_part(info.path)
            return [(chunk, None, _column_mismatch(self.columns, info.columns))]
        self.fh.flush()
        copy_bytes(info.path, self.fh)
        self.fh.flush()
        remove_part(info.path)
        entry["end"] = self.fh.tell()
        return [(chunk, entry, None)]

    def restore(self, entries: list[dict[str, Any]], old: str) -> None:
        copy_bytes(old, self.fh, 0, _end_of(entries, 0))
        for e in entries:
            if "columns" in e:
                self.columns = tuple(e["columns"])

    def finish(self) -> None:
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def _column_mismatch(expected: tuple[str, ...], got: tuple[str, ...]) -> str:
    missing = [c for c in expected if c not in got]
    extra = [c for c in got if c not in expected]
    detail = []
    if missing:
        detail.append(f"missing {missing}")
    if extra:
        detail.append(f"extra {extra}")
    if not detail:
        detail.append("same names in another order")
    return (
        "this chunk's result has other columns than the chunks before it ("
        + ", ".join(detail) + "); a file needs the same columns in every chunk"
    )


class ColumnarAppender(Appender):
    """Parquet and Arrow: one schema for the whole file (see the module docstring)."""

    def __init__(self, path: str, hint: Any = None) -> None:
        super().__init__(path, hint)
        self.target: Any = None
        self.held: list[tuple[int, PartInfo, Any]] = []

    @abstractmethod
    def _schema_of(self, part: str) -> Any: ...

    @abstractmethod
    def _read(self, part: str) -> Any: ...

    @abstractmethod
    def _append_native(self, part: str) -> dict[str, Any]: ...

    @abstractmethod
    def _append_table(self, table: Any, part: str) -> dict[str, Any]: ...

    def _resolve(self, final: bool) -> Any:
        import pyarrow as pa

        first = self.held[0][2]
        fields = []
        unresolved = False
        changed = False
        for f in first:
            if pa.types.is_null(f.type):
                t = None
                if self.hint is not None and f.name in self.hint.names and not pa.types.is_null(
                    self.hint.field(f.name).type
                ):
                    t = self.hint.field(f.name).type
                for _, _, s in self.held[1:]:
                    if t is None and f.name in s.names and not pa.types.is_null(s.field(f.name).type):
                        t = s.field(f.name).type
                if t is None:
                    unresolved = True
                else:
                    f = f.with_type(t)
                    changed = True
            fields.append(f)
        if unresolved and not final:
            return None
        # pandas' metadata describes the first chunk's (null) column: drop it.
        return pa.schema(fields) if changed else first

    def add(self, chunk: int, info: PartInfo) -> list[tuple[int, dict[str, Any] | None, str | None]]:
        if self.target is not None:
            return [self._append(chunk, info)]
        self.held.append((chunk, info, self._schema_of(info.path)))
        # Held parts wait on disk, not in memory; still, a column that stays
        # all-null for this long is written as null-typed rather than waited on.
        target = self._resolve(final=len(self.held) >= MAX_HELD)
        return self._release(target) if target is not None else []

    def _release(self, target: Any) -> list[tuple[int, dict[str, Any] | None, str | None]]:
        self.target = target
        held, self.held = self.held, []
        return [self._append(chunk, info) for chunk, info, _ in held]

    def _append(self, chunk: int, info: PartInfo) -> tuple[int, dict[str, Any] | None, str | None]:
        schema = self._schema_of(info.path)
        try:
            if schema.equals(self.target, check_metadata=False) and self._native_ok(info.path):
                entry = self._append_native(info.path)
            else:
                table = self._read(info.path)
                try:
                    table = table.select(self.target.names).cast(self.target)
                except Exception as exc:
                    return (chunk, None, _type_mismatch(self.target, schema, exc))
                entry = self._append_table(table, info.path)
        finally:
            remove_part(info.path)
        return (chunk, entry, None)

    def _native_ok(self, part: str) -> bool:
        return True

    def finish_held(self) -> list[tuple[int, dict[str, Any] | None, str | None]]:
        """At the end of the input: settle parts held for an all-null column's type."""
        if self.target is None and self.held:
            return self._release(self._resolve(final=True))
        return []


def _type_mismatch(target: Any, got: Any, exc: Exception) -> str:
    if sorted(target.names) != sorted(got.names):
        return _column_mismatch(tuple(target.names), tuple(got.names))
    diffs = [
        f"{name!r} is {got.field(name).type} here but {target.field(name).type} in the chunks before"
        for name in target.names
        if name in got.names and got.field(name).type != target.field(name).type
    ]
    return (
        "this chunk's column types differ from the file's and cannot be converted without loss: "
        + "; ".join(diffs[:3]) + f" ({type(exc).__name__}); make the function return the same "
        "dtypes for every chunk, e.g. with .astype(...)"
    )


class ParquetAppender(ColumnarAppender):
    def __init__(self, path: str, hint: Any = None) -> None:
        super().__init__(path, hint)
        self.fh = open(path, "w+b")  # noqa: SIM115 - closed in close()
        self.splicer = ParquetSplicer(self.fh)

    def _schema_of(self, part: str) -> Any:
        import pyarrow.parquet as pq

        return pq.read_schema(part)

    def _read(self, part: str) -> Any:
        import pyarrow.parquet as pq

        return pq.read_table(part)

    def _native_ok(self, part: str) -> bool:
        return self.splicer.matches(part)

    def _append_native(self, part: str) -> dict[str, Any]:
        entry = self.splicer.append(part)
        self.fh.flush()
        entry["end"] = self.fh.tell()
        return entry

    def _append_table(self, table: Any, part: str) -> dict[str, Any]:
        recast = part + ".cast.parquet"
        write_parquet(table, recast)
        try:
            return self._append_native(recast)
        finally:
            os.unlink(recast)

    def restore(self, entries: list[dict[str, Any]], old: str) -> None:
        import pyarrow as pa

        end = _end_of(entries, 4)
        copy_bytes(old, self.fh, 4, end - 4)  # offsets stay valid: same position
        self.splicer.restore(entries)
        if self.splicer.template is not None:
            self.target = _schema_from_template(self.splicer.template) or pa.schema([])

    def finish(self) -> None:
        if not self.splicer.finish():
            import pyarrow as pa
            import pyarrow.parquet as pq

            self.fh.close()
            pq.write_table(pa.table({}), self.path)
            return
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def _schema_from_template(template: Any) -> Any:
    """The Arrow schema stored in a Parquet footer's key-value metadata."""
    import base64

    import pyarrow as pa

    for kv in template.get(5, (0, (0, [])))[1][1]:
        if kv.get(1, (0, b""))[1] == b"ARROW:schema":
            raw = base64.b64decode(kv[2][1])
            return pa.ipc.read_schema(pa.py_buffer(raw))
    return None


class ArrowAppender(ColumnarAppender):
    def __init__(self, path: str, hint: Any = None) -> None:
        super().__init__(path, hint)
        import pyarrow as pa

        self.sink = pa.OSFile(path, "wb")
        self.writer: Any = None

    def _schema_of(self, part: str) -> Any:
        import pyarrow as pa

        return pa.ipc.open_file(pa.memory_map(part)).schema

    def _read(self, part: str) -> Any:
        import pyarrow as pa

        return pa.ipc.open_file(pa.memory_map(part)).read_all()

    def _writer(self) -> Any:
        import pyarrow as pa

        if self.writer is None:
            self.writer = pa.ipc.new_file(self.sink, self.target)
        return self.writer

    def _append_native(self, part: str) -> dict[str, Any]:
        return self._append_table(self._read(part), part)

    def _append_table(self, table: Any, part: str) -> dict[str, Any]:
        self._writer().write_table(table.replace_schema_metadata(self.target.metadata))
        self.sink.flush()
        return {"end": self.sink.tell(), "schema": bool(self.writer)}

    def restore(self, entries: list[dict[str, Any]], old: str) -> None:
        import pyarrow as pa

        end = _end_of(entries, 0)
        if end > 8:
            with open(old, "rb") as fh:
                fh.seek(8)  # the file format's magic; what follows is a stream
                reader = pa.ipc.open_stream(io.BytesIO(fh.read(end - 8)))
                self.target = reader.schema
                for batch in reader:
                    self._writer().write_batch(batch)

    def finish(self) -> None:
        import pyarrow as pa

        if self.writer is None:
            self.target = self.target or pa.schema([])
            self._writer()
        self.writer.close()
        self.sink.close()

    def close(self) -> None:
        if not self.sink.closed:
            self.sink.close()


class ParquetDirAppender(ColumnarAppender):
    """A directory of Parquet files: each part is moved in as ``part-NNNNN.parquet``
    (NNNNN the chunk's index, so name order is input order), cast to the first
    part's schema like the single-file output so pandas reads the directory back
    as one frame."""

    def __init__(self, path: str, hint: Any = None) -> None:
        super().__init__(path, hint)
        os.makedirs(path, exist_ok=True)
        self._chunk = 0

    def _dest(self) -> str:
        return os.path.join(self.path, f"part-{self._chunk:05d}.parquet")

    def _schema_of(self, part: str) -> Any:
        import pyarrow.parquet as pq

        return pq.read_schema(part)

    def _read(self, part: str) -> Any:
        import pyarrow.parquet as pq

        return pq.read_table(part)

    def _append(self, chunk: int, info: PartInfo) -> tuple[int, dict[str, Any] | None, str | None]:
        self._chunk = chunk
        return super()._append(chunk, info)

    def _append_native(self, part: str) -> dict[str, Any]:
        os.replace(part, self._dest())
        return {"file": os.path.basename(self._dest())}

    def _append_table(self, table: Any, part: str) -> dict[str, Any]:
        tmp = self._dest() + ".tmp"
        write_parquet(table, tmp)
        os.replace(tmp, self._dest())
        return {"file": os.path.basename(self._dest())}

    def restore(self, entries: list[dict[str, Any]], old: str) -> None:
        import pyarrow.parquet as pq

        keep = {e["file"] for e in entries if "file" in e}
        for name in os.listdir(self.path):
            if name not in keep:  # moved in after the last logged entry, or a temp file
                os.unlink(os.path.join(self.path, name))
        if keep:
            self.target = pq.read_schema(os.path.join(self.path, min(keep)))

    def finish(self) -> None:
        if not os.listdir(self.path):
            import pyarrow as pa

            write_parquet(pa.table({}), os.path.join(self.path, "part-00000.parquet"))


def make_appender(fmt: str, path: str, *, compress: bool, hint: Any, directory: bool = False) -> Appender:
    if directory:
        return ParquetDirAppender(path, hint)
    if fmt == "parquet":
        return ParquetAppender(path, hint)
    if fmt == "arrow":
        return ArrowAppender(path, hint)
    return TextAppender(path, fmt, compress)
