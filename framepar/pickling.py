"""Pickling the job for worker processes, with errors that say what failed.

cloudpickle sends lambdas, closures and functions defined in ``__main__`` or
a notebook by value, so they work under spawn and forkserver too.
"""

from __future__ import annotations

from typing import Any

import cloudpickle

from .exceptions import NotPicklableError
from .job import ChunkJob


def pickle_job(job: ChunkJob) -> bytes:
    """The job as bytes, or a :class:`NotPicklableError` naming the culprit."""
    try:
        return cloudpickle.dumps(job)
    except Exception as exc:
        raise NotPicklableError(_diagnose(job, exc)) from exc


def _diagnose(job: ChunkJob, exc: Exception) -> str:
    parts: list[tuple[str, Any]] = [("the function", job.func)]
    parts += [(f"positional argument {i} of the function", a) for i, a in enumerate(job.args)]
    parts += [(f"keyword argument {k!r} of the function", v) for k, v in job.kwargs.items()]
    for what, obj in parts:
        try:
            cloudpickle.dumps(obj)
        except Exception as inner:
            return (
                f"{what} ({_short_repr(obj)}) cannot be pickled to send it to worker processes: "
                f"{type(inner).__name__}: {inner}. Use backend='thread' or 'serial', or pass "
                "something picklable (for example a module-level function or a path instead "
                "of an open file or connection)"
            )
    return f"the job cannot be pickled: {type(exc).__name__}: {exc}"


def _short_repr(obj: Any) -> str:
    qualname = getattr(obj, "__qualname__", None)
    if callable(obj) and isinstance(qualname, str):
        return f"{getattr(obj, '__module__', '?')}.{qualname}"
    try:
        text = repr(obj)
    except Exception:
        text = f"<{type(obj).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."
