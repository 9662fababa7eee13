"""A reusable pool that keeps workers warm across calls (notebooks, loops)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from .backends import make_backend
from .backends.base import Backend
from .core import RETRYABLE, Options, available_cpus, execute, map_chunks_result
from .exceptions import InvalidArgumentError
from .report import Run


class Executor:
    """Workers that outlive one call.

    ::

        with framepar.Executor(workers=4) as ex:
            a = ex.map_chunks(df1, f)
            b = ex.map_chunks(df2, g)      # same workers, no start-up cost

    ``backend`` is "process" (default), "thread", "serial", "auto" (decide per
    call, as :func:`framepar.map_chunks` does, using this pool when processes
    pay off) or "dask". ``max_tasks_per_child`` replaces a worker after that many
    chunks (for functions that leak memory). With "dask", ``address="tcp://host:8786"``
    (or ``client=`` a ``distributed.Client``) picks the cluster, as for
    :func:`framepar.map_chunks`; ``workers`` then defaults to the cluster's threads. Workers are stopped on
    ``shutdown()`` or on leaving the ``with`` block; a failed, timed-out or
    interrupted call leaves the executor usable.
    """

    def __init__(
        self,
        workers: int | None = None,
        backend: str = "process",
        *,
        max_tasks_per_child: int | None = None,
        start_method: str | None = None,
        **backend_options: Any,
    ) -> None:
        if backend not in ("process", "thread", "serial", "auto", "dask"):
            raise InvalidArgumentError(
                f"Executor backend must be process, thread, serial, auto or dask; got {backend!r}"
            )
        Options(workers=workers)  # type checks happen in validate(); keep ints honest here
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise InvalidArgumentError(f"workers must be an int >= 1, got {workers!r}")
        if max_tasks_per_child is not None and (not isinstance(max_tasks_per_child, int) or max_tasks_per_child < 1):
            raise InvalidArgumentError(f"max_tasks_per_child must be an int >= 1, got {max_tasks_per_child!r}")
        self.backend = backend
        self.workers = workers or available_cpus()
        self._pool: Backend | None = make_backend(
            "process" if backend == "auto" else backend,
            # dask: 0 means as many chunks at once as the cluster has threads
            (workers or 0) if backend == "dask" else self.workers,
            start_method=start_method,
            max_tasks_per_child=max_tasks_per_child,
            **backend_options,
        )
        if backend == "dask":
            self.workers = self._pool.workers
        self.start_method = start_method

    @property
    def pool(self) -> Backend:
        if self._pool is None:
            raise RuntimeError("this Executor has been shut down")
        return self._pool

    def run(
        self,
        data: pd.DataFrame | pd.Series,
        func: Callable[..., Any],
        *args: Any,
        chunk_rows: int | None = None,
        n_chunks: int | None = None,
        errors: str = "raise",
        progress: bool | None = None,
        combine: Callable[[list[Any]], Any] | None = None,
        retries: int = 0,
        retry_on: Sequence[Any] = RETRYABLE,
        timeout: float | None = None,
        locate: bool = False,
        transport: str = "auto",
        by: Any = None,
        overlap: int | tuple[int, int] = 0,
        **kwargs: Any,
    ) -> Run:
        """:func:`framepar.run` on this executor's workers.

        The options mean what they mean for :func:`framepar.map_chunks`:
        ``retries``/``retry_on`` retry failed chunks, ``timeout`` kills a
        worker stuck on a chunk (a new one takes its place), ``locate=True``
        bisects failed chunks down to their failing rows (report column
        ``failing_labels``), ``by=`` keeps groups whole, ``overlap=`` hands
        chunks rows of their neighbours. Crashes, timeouts and Ctrl-C leave the executor
        usable: lost workers are replaced on the next chunk.

        ``transport`` is as for :func:`framepar.map_chunks`; warm workers do
        not inherit the input, so "auto" maps large inputs from an Arrow file.
        """
        opts = Options(
            workers=self.workers, chunk_rows=chunk_rows, n_chunks=n_chunks, backend=self.backend,
            errors=errors, progress=progress, combine=combine, retries=retries,
            retry_on=tuple(retry_on), timeout=timeout, start_method=self.start_method, locate=locate,
            transport=transport,
            by=by, overlap=overlap,
        )
        return execute(data, func, args, kwargs, opts, pool=self.pool)

    def map_chunks(self, data: pd.DataFrame | pd.Series, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """:func:`framepar.map_chunks` on this executor's workers."""
        return map_chunks_result(self.run(data, func, *args, **kwargs))

    def shutdown(self) -> None:
        """Stop the workers. Idempotent."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        state = "shut down" if self._pool is None else "running"
        return f"<framepar.Executor backend={self.backend!r} workers={self.workers} ({state})>"
