"""The ``framepar`` command line: ``framepar run`` and ``framepar inspect``.

Exit codes: 0 every chunk succeeded; 1 some chunks failed (the message says
which, ``--report`` has every detail); 2 the command could not start: a
usage mistake, a missing/unreadable/corrupt input, a SPEC that cannot be
loaded, an output that cannot be written. Every error is one line on
stderr saying what to fix; ``FRAMEPAR_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Run a Python function over a CSV, Parquet, Arrow or JSON-lines file on every core, "
    "in bounded memory.",
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    typer.echo(f"framepar: error: {message}", err=True)
    raise typer.Exit(code)


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _usage_errors() -> tuple[type[BaseException], ...]:
    from .exceptions import InvalidArgumentError, InvalidArgumentTypeError, NotPicklableError
    from .io.formats import FormatError
    from .io.readers import InputError
    from .io.state import ResumeError

    return (InvalidArgumentError, InvalidArgumentTypeError, NotPicklableError, FormatError,
            InputError, ResumeError)


@app.command()
def run(
    input: Annotated[Path, typer.Argument(help="CSV (.csv, .csv.gz), Parquet (file or directory), Arrow/Feather or JSON-lines file.")],
    func: Annotated[str, typer.Option("--func", "-f", help="module:function or path/to/file.py:function; called as function(chunk, **args).")],
    output: Annotated[str, typer.Option("--output", "-o", help="Output file; its suffix names the format (or --output-format). Ending in '/': a directory of Parquet files, one per chunk.")],
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: the CPUs available).")] = None,
    chunk_rows: Annotated[int | None, typer.Option(help="Rows per chunk (default: a few chunks per worker, at most ~64 MiB each).")] = None,
    by: Annotated[str | None, typer.Option(help="Give the function whole groups of this column: a group's rows are never split across chunks. Scattered groups (and CSV/JSON input) are sorted into chunks by a first pass; the output then comes in sorted group order.")] = None,
    errors: Annotated[str, typer.Option(help="raise: stop at the first failed chunk, write nothing; skip: write the chunks that succeeded.")] = "raise",
    retries: Annotated[int, typer.Option(help="Extra attempts for a failed chunk.")] = 0,
    timeout: Annotated[float | None, typer.Option(help="Seconds a chunk may run before its worker is stopped.")] = None,
    report: Annotated[Path | None, typer.Option(help="Write the per-chunk report here (.csv, .json or .parquet).")] = None,
    arg: Annotated[list[str] | None, typer.Option("--arg", help="NAME=VALUE keyword argument for the function (repeatable; VALUE parsed as JSON if it can be).")] = None,
    format: Annotated[str | None, typer.Option("--format", help="Input format when the suffix does not say: csv, parquet, arrow, jsonl.")] = None,
    output_format: Annotated[str | None, typer.Option(help="Output format when the suffix does not say; parquet-dir: a directory of Parquet files.")] = None,
    dtype: Annotated[list[str] | None, typer.Option("--dtype", help="NAME=TYPE for a CSV/JSON column (repeatable); other types are inferred once for the whole file.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run writing the same OUTPUT, computing only the chunks it had not finished.")] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Do not show the progress bar.")] = False,
    backend: Annotated[str, typer.Option(help="auto, process, thread, serial or dask.")] = "auto",
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address (tcp://host:8786) for --backend dask (implied); its workers must see INPUT and OUTPUT under the same paths.")] = None,
) -> None:
    """Stream INPUT through a function and write OUTPUT."""
    if errors not in ("raise", "skip"):
        _fail(f"--errors must be raise or skip, got {errors!r}")
    if report is not None:
        _check_report_path(report)
    if scheduler is not None:
        if backend not in ("auto", "dask"):
            _fail(f"--scheduler is the Dask scheduler to use; it needs --backend dask, not {backend}")
        backend = "dask"
    try:
        from .filerun import map_file
        from .funcspec import load_function, parse_pairs, parse_value

        kwargs = {k: parse_value(v) for k, v in parse_pairs(arg or [], "--arg").items()}
        dtypes = _parse_dtypes(dtype or [])
        function = load_function(func)
        if not input.exists():
            _fail(f"input {str(input)!r} does not exist; check the path")
        progress: bool | None = False if no_progress else (True if sys.stderr.isatty() else None)
        result = map_file(
            input, function, output, workers=workers, chunk_rows=chunk_rows, by=by,
            backend=backend, errors=errors, retries=retries, timeout=timeout, progress=progress,
            resume=resume, input_format=format, output_format=output_format, dtypes=dtypes,
            function_id=_function_id(func, function, kwargs), address=scheduler, **kwargs,
        )
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        _fail("interrupted; run the same command with --resume to continue", 130)
    except (*_usage_errors(), ImportError) as exc:  # type: ignore[misc]
        _fail(_one_line(exc))
    except ConnectionError as exc:  # e.g. the Dask scheduler cannot be reached
        _fail(_one_line(exc))
    except OSError as exc:
        _fail(f"{exc.strerror or exc} ({exc.filename or ''}); check the paths and free space")
    except Exception as exc:
        _unexpected(exc)
    if report is not None:
        _write_report(result.report, report)
    _summarise(result, Path(output), report)


def _function_id(spec: str, function: Any, kwargs: dict[str, Any]) -> str:
    from .filerun import function_fingerprint

    return f"{spec}|{function_fingerprint(function, (), kwargs)}"


def _parse_dtypes(items: list[str]) -> dict[str, Any]:
    from pandas.api.types import pandas_dtype

    from .funcspec import parse_pairs

    out: dict[str, Any] = {}
    for name, text in parse_pairs(items, "--dtype").items():
        try:
            out[name] = pandas_dtype(text)
        except TypeError:
            _fail(f"--dtype {name}={text}: {text!r} is not a pandas dtype (e.g. int64, float64, str, bool)")
    return out


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _unexpected(exc: BaseException) -> NoReturn:
    if os.environ.get("FRAMEPAR_DEBUG"):
        traceback.print_exception(exc)
    _fail(f"unexpected {type(exc).__name__}: {_one_line(exc)} (set FRAMEPAR_DEBUG=1 for the traceback)")


def _check_report_path(report: Path) -> None:
    if report.suffix.lower() not in (".csv", ".json", ".parquet"):
        _fail(f"--report {str(report)!r}: use a .csv, .json or .parquet file name")
    if not report.parent.is_dir():
        _fail(f"--report {str(report)!r}: directory {str(report.parent)!r} does not exist")
    if report.is_dir():
        _fail(f"--report {str(report)!r} is a directory; give a file name")


def _write_report(frame: Any, path: Path) -> None:
    out = frame.copy()
    for col in ("first_label", "last_label"):
        out[col] = out[col].map(lambda v: None if v is None else str(v))
    tmp = path.with_name(f".{path.name}.tmp")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        out.to_csv(tmp, index=False)
    elif suffix == ".json":
        out.to_json(tmp, orient="records", indent=1)
    else:
        out.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def _summarise(result: Any, output: Path, report: Path | None) -> None:
    rep = result.report
    failed = rep[rep["status"].isin(("error", "crashed", "timeout"))]
    reused = int(rep["reused"].sum()) if "reused" in rep else 0
    done = f"{int((rep['status'] == 'ok').sum())} of {len(rep)} chunks ok"
    if reused:
        done += f" ({reused} reused from the interrupted run)"
    if failed.empty:
        typer.echo(f"framepar: wrote {output} ({done})", err=True)
        raise typer.Exit(EXIT_OK)
    first = failed.iloc[0]
    what = (f"chunk {first['chunk']} (rows {first['start']}:{first['stop']}) {first['status']}: "
            f"{first['error_type']}: {' '.join(str(first['error_message']).split())[:200]}")
    where = f"; details in {report}" if report is not None else "; add --report report.csv for details"
    if result.output is None:
        typer.echo(f"framepar: error: {what}; no output written{where}", err=True)
    else:
        typer.echo(f"framepar: error: {len(failed)} chunk(s) failed, first {what}; wrote the "
                   f"{done} to {output}{where}", err=True)
    raise typer.Exit(EXIT_FAILED)


@app.command()
def inspect(
    input: Annotated[Path, typer.Argument(help="The file to describe.")],
    format: Annotated[str | None, typer.Option("--format", help="Input format when the suffix does not say.")] = None,
    workers: Annotated[int | None, typer.Option(help="Plan for this many workers.")] = None,
    chunk_rows: Annotated[int | None, typer.Option(help="Plan with this many rows per chunk.")] = None,
    by: Annotated[str | None, typer.Option(help="Plan group-aware chunks on this column.")] = None,
) -> None:
    """Rows, columns and types, storage layout, size on disk, and the chunk plan a run would use."""
    from .core import available_cpus
    from .io.readers import plan_input

    n = workers or available_cpus()
    try:
        plan = plan_input(str(input), fmt=format, workers=n, chunk_rows=chunk_rows, by=by)
    except _usage_errors() as exc:
        _fail(_one_line(exc))
    except Exception as exc:
        _unexpected(exc)
    rows = "unknown" if plan.rows is None else f"{plan.rows:,}"
    lines = [
        f"input:      {plan.path} ({plan.format}, {_human_bytes(plan.bytes_on_disk)} on disk"
        + (f", {len(plan.files)} files" if len(plan.files) > 1 else "") + ")",
        f"rows:       {rows}",
        f"layout:     {plan.n_units:,} {plan.units}" if plan.n_units is not None else "layout:     -",
        f"columns:    {len(plan.columns)}",
    ]
    width = max((len(c) for c in plan.columns), default=0)
    lines += [f"  {name:<{width}}  {kind}" for name, kind in plan.columns.items()]
    chunks = plan.chunks if isinstance(plan.chunks, list) else None
    if by is not None and plan.partition is not None:
        lines.append(
            f"by:         {by}: {plan.partition.groups:,} groups, scattered in the file; a first pass "
            "will sort the rows into the chunks below (spilled next to the output, removed at the end), "
            "each holding whole groups in sorted key order"
        )
    elif by is not None:
        lines.append(f"by:         {by}: each group's rows are together in the file; chunks are cut "
                     "between groups and follow the file")
    if chunks is None:
        lines.append(f"chunk plan: compressed text, cut while reading, for {n} workers")
    else:
        sizes = [c.rows for c in chunks]
        lines.append(
            f"chunk plan: {len(chunks)} chunks for {n} workers, {min(sizes):,} to {max(sizes):,} rows each"
        )
        shown = chunks if len(chunks) <= 12 else chunks[:10] + chunks[-1:]
        for i, c in enumerate(shown):
            if len(chunks) > 12 and i == 10:
                lines.append(f"  ... {len(chunks) - 11} more")
                index = len(chunks) - 1
            else:
                index = i
            lines.append(f"  chunk {index}: rows {c.row_start}:{c.row_start + c.rows}  {c.describe()}")
    typer.echo("\n".join(lines))


def main() -> None:
    """Console-script entry point."""
    from .funcspec import drop_implicit_cwd

    drop_implicit_cwd()
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("framepar: interrupted", err=True)
        sys.exit(130)
