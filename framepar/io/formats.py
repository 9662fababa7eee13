"""File formats framepar reads and writes, and how a path's suffix names one."""

from __future__ import annotations

from pathlib import Path

FORMATS = ("csv", "parquet", "arrow", "jsonl")

_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
_ALIASES = {"feather": "arrow", "ipc": "arrow", "json": "jsonl", "ndjson": "jsonl", "pq": "parquet"}


class FormatError(ValueError):
    """A format that cannot be recognised or is not supported."""


def is_gzip(path: str | Path) -> bool:
    return str(path).lower().endswith(".gz")


def normalize(name: str) -> str:
    name = name.lower().lstrip(".")
    name = _ALIASES.get(name, name)
    if name not in FORMATS:
        raise FormatError(f"unknown format {name!r}; use one of {', '.join(FORMATS)}")
    return name


def detect(path: str | Path, given: str | None, *, what: str) -> str:
    """The format of ``path``: ``given`` if set, else from the suffix (``.gz`` ignored)."""
    if given:
        return normalize(given)
    p = Path(path)
    if p.is_dir():
        return "parquet"
    name = p.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    suffix = Path(name).suffix
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    flag = "--format" if what == "input" else "--output-format"
    raise FormatError(
        f"cannot tell the {what} format from {str(path)!r}; name it with {flag} "
        f"({', '.join(FORMATS)}) or use a suffix such as .csv, .parquet, .arrow, .jsonl"
    )


def separator(path: str | Path) -> str:
    name = str(path).lower().removesuffix(".gz")
    return "\t" if name.endswith(".tsv") else ","
