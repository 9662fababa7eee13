"""Splicing Parquet files that workers wrote into one Parquet file, byte for byte.

Each worker encodes its chunk's result as a complete little Parquet file, so
the costly part (encoding and compressing) runs in parallel. The parent
then appends each part's row-group bytes to the output in input order and,
at the end, writes one footer listing every row group, with each column
chunk's byte offsets shifted to where its bytes now sit. No data is decoded
or re-encoded; parts must share one schema (:class:`ParquetSplicer` checks).

Layout of a Parquet file: ``PAR1`` | row groups (and page indexes) | footer
(Thrift ``FileMetaData``) | footer length (4 bytes, little-endian) | ``PAR1``.
"""

from __future__ import annotations

import base64
import os
import struct
from typing import IO, Any

from . import _thrift as th

MAGIC = b"PAR1"

# FileMetaData / RowGroup / ColumnChunk / ColumnMetaData field ids (parquet.thrift)
FMD_SCHEMA, FMD_NUM_ROWS, FMD_ROW_GROUPS = 2, 3, 4
RG_COLUMNS, RG_FILE_OFFSET, RG_ORDINAL = 1, 5, 7
CC_FILE_OFFSET, CC_META, CC_OFFSET_INDEX, CC_COLUMN_INDEX = 2, 3, 4, 6
CMD_OFFSETS = (9, 10, 11, 14)  # data page, index page, dictionary page, bloom filter


class SpliceError(ValueError):
    """A part file that cannot be spliced (not Parquet, or another schema)."""


def read_footer(path: str) -> tuple[th.Struct, int]:
    """The part's parsed ``FileMetaData`` and where its footer starts."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        if size < 12:
            raise SpliceError(f"{path} is too small to be a Parquet file")
        fh.seek(size - 8)
        tail = fh.read(8)
        if tail[4:] != MAGIC:
            raise SpliceError(f"{path} is not a Parquet file (no footer)")
        (length,) = struct.unpack("<I", tail[:4])
        start = size - 8 - length
        fh.seek(start)
        return th.loads(fh.read(length)), start


def _shift(rg: th.Struct, delta: int, ordinal: int) -> th.Struct:
    rg = dict(rg)
    if RG_FILE_OFFSET in rg:
        t, v = rg[RG_FILE_OFFSET]
        rg[RG_FILE_OFFSET] = (t, v + delta)
    if RG_ORDINAL in rg:
        rg[RG_ORDINAL] = (rg[RG_ORDINAL][0], ordinal)
    etype, columns = rg[RG_COLUMNS][1]
    shifted = []
    for cc in columns:
        cc = dict(cc)
        for fid in (CC_FILE_OFFSET, CC_OFFSET_INDEX, CC_COLUMN_INDEX):
            if fid in cc:
                t, v = cc[fid]
                cc[fid] = (t, v + delta)
        if CC_META in cc:
            meta = dict(cc[CC_META][1])
            for fid in CMD_OFFSETS:
                if fid in meta:
                    t, v = meta[fid]
                    meta[fid] = (t, v + delta)
            cc[CC_META] = (th.STRUCT, meta)
        shifted.append(cc)
    rg[RG_COLUMNS] = (th.LIST, (etype, shifted))
    return rg


class ParquetSplicer:
    """Appends Parquet part files to ``fh`` in order; :meth:`finish` writes the footer.

    ``state()`` / ``restore()`` let an interrupted run continue: the output
    is truncated to the end of the last appended part and the row groups
    recorded so far are kept.
    """

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.template: th.Struct | None = None
        self.row_groups: list[th.Struct] = []
        self.rows = 0
        fh.write(MAGIC)

    def schema_key(self, meta: th.Struct) -> bytes:
        return th.dumps({1: (th.LIST, meta[FMD_SCHEMA][1])})

    def matches(self, path: str) -> bool:
        """Whether ``path`` has the schema of the parts appended so far."""
        if self.template is None:
            return True
        meta, _ = read_footer(path)
        return self.schema_key(meta) == self.schema_key(self.template)

    def append(self, path: str) -> dict[str, Any]:
        """Append one part; returns what the manifest needs to resume after it."""
        meta, footer_start = read_footer(path)
        if self.template is None:
            self.template = {k: v for k, v in meta.items() if k not in (FMD_ROW_GROUPS, FMD_NUM_ROWS)}
        elif self.schema_key(meta) != self.schema_key(self.template):
            raise SpliceError(f"{path} has a different Parquet schema from the parts before it")
        position = self.fh.tell()
        delta = position - len(MAGIC)
        with open(path, "rb") as src:
            src.seek(len(MAGIC))
            _copy(src, self.fh, footer_start - len(MAGIC))
        added = []
        for rg in meta.get(FMD_ROW_GROUPS, (th.LIST, (th.STRUCT, [])))[1][1]:
            shifted = _shift(rg, delta, len(self.row_groups))
            self.row_groups.append(shifted)
            added.append(base64.b64encode(th.dumps(shifted)).decode())
            self.rows += rg[3][1]
        entry: dict[str, Any] = {"row_groups": added}
        if len(self.row_groups) == len(added):
            entry["template"] = base64.b64encode(th.dumps(self.template)).decode()
        return entry

    def restore(self, entries: list[dict[str, Any]]) -> None:
        for e in entries:
            if "template" in e and self.template is None:
                self.template = th.loads(base64.b64decode(e["template"]))
            for blob in e.get("row_groups", []):
                rg = th.loads(base64.b64decode(blob))
                self.row_groups.append(rg)
                self.rows += rg[3][1]

    def finish(self) -> bool:
        """Write the footer; False when nothing was appended (the caller writes an empty file)."""
        if self.template is None:
            return False
        meta = dict(self.template)
        meta[FMD_NUM_ROWS] = (th.I64, self.rows)
        meta[FMD_ROW_GROUPS] = (th.LIST, (th.STRUCT, self.row_groups))
        footer = th.dumps(meta)
        self.fh.write(footer)
        self.fh.write(struct.pack("<I", len(footer)))
        self.fh.write(MAGIC)
        return True


class _NoKernelCopy(Exception):
    pass


def _copy(src: IO[bytes], dst: IO[bytes], n: int) -> None:
    dst.flush()
    try:
        # In-kernel copy: the bytes never pass through this process.
        src_fd, dst_fd = src.fileno(), dst.fileno()
        offset_in = src.tell()
        offset_out = dst.tell()
        left = n
        while left:
            try:
                done = os.copy_file_range(src_fd, dst_fd, left, offset_in, offset_out)
            except OSError:
                if left != n:
                    raise  # some bytes went through: falling back would duplicate them
                raise _NoKernelCopy from None
            if done == 0:
                raise SpliceError("part file ended early")
            offset_in += done
            offset_out += done
            left -= done
        dst.seek(offset_out)
        return
    except (AttributeError, _NoKernelCopy):
        pass
    left = n
    while left:
        block = src.read(min(left, 8 << 20))
        if not block:
            raise SpliceError("part file ended early")
        dst.write(block)
        left -= len(block)


def copy_bytes(src_path: str, dst: IO[bytes], start: int = 0, n: int | None = None) -> None:
    """Append ``n`` bytes of ``src_path`` from ``start`` (default: to its end) to ``dst``."""
    with open(src_path, "rb") as src:
        size = os.fstat(src.fileno()).st_size
        src.seek(start)
        _copy(src, dst, (size - start) if n is None else n)
