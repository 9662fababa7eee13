"""Execution backends, by name. Optional ones are imported only when asked for."""

from __future__ import annotations

from typing import Any

from .base import Backend


def make_backend(
    name: str,
    workers: int,
    *,
    start_method: str | None = None,
    max_tasks_per_child: int | None = None,
    **options: Any,
) -> Backend:
    """A new backend instance; ``name`` is one of serial, thread, process, dask."""
    if name == "serial":
        from .serial import SerialBackend

        return SerialBackend()
    if name == "thread":
        from .thread import ThreadBackend

        return ThreadBackend(workers)
    if name == "process":
        from .process import ProcessBackend

        return ProcessBackend(workers, start_method=start_method, max_tasks_per_child=max_tasks_per_child)
    if name == "dask":
        try:
            from .dask import DaskBackend
        except ImportError as exc:
            raise ImportError(
                'backend="dask" needs the dask extra: pip install "framepar[dask]"'
            ) from exc
        return DaskBackend(workers, **options)
    raise ValueError(f"unknown backend {name!r}")


__all__ = ["Backend", "make_backend"]
