"""What runs inside a Dask worker for the dask backend. Imports as little as possible.

A chunk runs through the process worker's own :func:`_worker._run_task`, so
both backends give the same reply: a pickled ``("ok" | "error", key, ...)``
tuple, where an error carries the type name, message, traceback text and the
cloudpickled exception. The job (the user's function) arrives as the
cloudpickled bytes that were scattered once per run; each worker process
unpickles it once and keeps it here for the chunks that follow.
"""

from __future__ import annotations

import threading
from typing import Any

from . import _worker

# A worker process may serve several runs (and several clients) one after the
# other; keep the few most recent jobs, oldest dropped first.
MAX_JOBS = 4

_JOBS: dict[int, Any] = {}
_LOCK = threading.Lock()


def run_chunk(job_id: int, job_blob: bytes, key: int, payload_blob: bytes) -> tuple[str, bytes]:
    """Run one chunk; return ``(this worker's address, reply bytes)``."""
    with _LOCK:
        if job_id not in _JOBS:
            while len(_JOBS) >= MAX_JOBS:
                _JOBS.pop(next(iter(_JOBS)))
        jobs = _JOBS
    reply = _worker._run_task(jobs, {job_id: job_blob}, job_id, key, payload_blob, None)
    return _address(), reply


def _address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except Exception:  # not inside a Dask worker (e.g. a test calling this directly)
        return ""
