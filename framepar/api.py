"""The functions users call: :func:`map_chunks` and :func:`run`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from .core import RETRYABLE, Options, execute, map_chunks_result
from .report import Run


def run(
    data: pd.DataFrame | pd.Series,
    func: Callable[..., Any],
    *args: Any,
    workers: int | None = None,
    chunk_rows: int | None = None,
    n_chunks: int | None = None,
    backend: str = "auto",
    errors: str = "raise",
    progress: bool | None = None,
    combine: Callable[[list[Any]], Any] | None = None,
    retries: int = 0,
    retry_on: Sequence[Any] = RETRYABLE,
    timeout: float | None = None,
    start_method: str | None = None,
    by: Any = None,
    overlap: int | tuple[int, int] = 0,
    address: str | None = None,
    locate: bool = False,
    transport: str = "auto",
    **kwargs: Any,
) -> Run:
    """Like :func:`map_chunks`, but return a :class:`Run` (``result``,
    ``report``, ``ok``) instead of raising when chunks fail.

    ``errors="raise"`` still stops at the first failure (pending chunks end as
    ``cancelled``); ``"collect"`` and ``"skip"`` run every chunk.
    ``run.raise_for_errors()`` raises what ``map_chunks`` would have raised.
    The options are those of :func:`map_chunks`; with ``locate=True`` the
    report has a ``failing_labels`` column.
    """
    opts = Options(
        workers=workers, chunk_rows=chunk_rows, n_chunks=n_chunks, backend=backend,
        errors=errors, progress=progress, combine=combine, retries=retries,
        retry_on=tuple(retry_on), timeout=timeout, start_method=start_method, locate=locate,
        transport=transport, by=by, overlap=overlap, address=address,
    )
    return execute(data, func, args, kwargs, opts)


def map_chunks(
    data: pd.DataFrame | pd.Series,
    func: Callable[..., Any],
    *args: Any,
    workers: int | None = None,
    chunk_rows: int | None = None,
    n_chunks: int | None = None,
    backend: str = "auto",
    errors: str = "raise",
    progress: bool | None = None,
    combine: Callable[[list[Any]], Any] | None = None,
    retries: int = 0,
    retry_on: Sequence[Any] = RETRYABLE,
    timeout: float | None = None,
    start_method: str | None = None,
    by: Any = None,
    overlap: int | tuple[int, int] = 0,
    address: str | None = None,
    locate: bool = False,
    transport: str = "auto",
    **kwargs: Any,
) -> Any:
    """Call ``func(chunk, *args, **kwargs)`` on contiguous row chunks of
    ``data`` in parallel and return the results concatenated in input order.

    Works as ``df.pipe(framepar.map_chunks, func, ...)``.

    Parameters
    ----------
    data : DataFrame or Series
    func : callable taking a chunk (same type as ``data``) and returning a
        DataFrame or Series (or anything, with ``combine``).
    workers : processes or threads to use; default: the CPUs this process may use.
    chunk_rows, n_chunks : rows per chunk, or number of chunks (not both).
        Default: chunks that shrink towards the end of the input (about six per
        worker; small last chunks balance uneven workers), none smaller than
        about a thousand rows.
    backend : "auto" (default: in-process when parallelism cannot pay off,
        worker processes when it can; the report says which and why),
        "process", "thread", "serial" (in-process, for debugging) or "dask".
    errors : "raise" (stop at the first failure and raise the chunk's own
        exception), "collect" (run every chunk, then raise
        :class:`framepar.ChunksFailed`) or "skip" (return what succeeded and
        warn with :class:`framepar.ChunkFailureWarning`).
    progress : None shows a bar once the run lasts a couple of seconds;
        True/False force it.
    combine : callable receiving the list of per-chunk results in order
        (for results that are not frames, e.g. ``combine=sum``).
    retries : extra attempts for a failed chunk (default 0): a chunk that
        always fails runs ``retries + 1`` times; the report's ``attempts``
        says how many times each chunk ran. Retries run before
        ``errors="raise"`` gives up.
    retry_on : which failures are retried, any of "error" (the function
        raised), "crashed" (its worker died) and "timeout", and exception
        classes, which retry only errors of those types. Default: all three,
        because a chunk that raises is as often the victim of something
        transient (a network call, memory pressure) as a crash is; pass
        e.g. ``retry_on=("crashed", "timeout")`` to retry only failures of
        the worker, or ``(ConnectionError,)`` for one exception type.
    timeout : seconds a chunk may run before its worker is killed (process
        and dask backends); the chunk ends as "timeout", a new worker takes
        the slot, the other chunks carry on. The clock starts when the worker
        starts the chunk.
    start_method : multiprocessing start method for worker processes
        (default: fork where safe, else forkserver).
    address : with backend="dask", the scheduler to use ("tcp://host:8786");
        default: the current ``distributed.Client``, else ``FRAMEPAR_DASK_ADDRESS``,
        else a local cluster on 127.0.0.1.
    locate : after the run, narrow each chunk that ended "error" or
        "crashed" down to its first failing row(s) by re-running halves of
        its rows on the same backend, and list their index labels in the
        report's ``failing_labels`` column (``None`` for the other chunks)
        and in a note on the chunk's exception. Only failed chunks are
        re-run; the result is unchanged. Default False.
    transport : how chunks and results move between processes: "auto"
        (default: pickle for small data; for large data forked workers
        inherit the input and others map it from an Arrow file in /dev/shm,
        and large results come back through shared memory), "pickle",
        "arrow" (Arrow IPC files in /dev/shm, on disk when it has no room) or
        "memmap" (the same files in a private temp directory on disk). The
        report's ``transport`` and ``bytes_moved`` columns say what each chunk used.
    by : group-aware chunking: column name(s), index level name(s) or anything
        ``groupby`` accepts. No group is split across chunks, small groups
        share a chunk, chunks follow the sorted group order (rows keep their
        input order inside a chunk) and the report names each chunk's groups.
    overlap : rows of context from the neighbouring chunks, for window
        functions: an int (rows before each chunk) or ``(before, after)``. The
        function must return one row per input row; the context rows are cut
        from its result, so ``overlap=w - 1`` makes a trailing rolling window
        of ``w`` rows equal to the whole-frame one.
    """
    result = run(
        data, func, *args, workers=workers, chunk_rows=chunk_rows, n_chunks=n_chunks,
        backend=backend, errors=errors, progress=progress, combine=combine, retries=retries,
        retry_on=retry_on, timeout=timeout, start_method=start_method, locate=locate,
        transport=transport, by=by, overlap=overlap, address=address, **kwargs,
    )
    return map_chunks_result(result)
