"""In-process backend: runs each item in the calling thread when waited for.

The reference for every other backend, and the one to debug with: the user's
exception is the real object with its real traceback, so ``pdb.post_mortem``
and breakpoints work.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from .base import Backend, ErrorInfo, Job, Outcome


class SerialBackend(Backend):
    name = "serial"

    def __init__(self) -> None:
        self._job: Job | None = None
        self._queue: deque[tuple[int, Any]] = deque()

    @property
    def workers(self) -> int:
        return 1

    def start_job(self, job: Job, job_blob: bytes | None = None) -> None:
        self._job = job

    def submit(self, key: int, payload: Any, *, timeout: float | None = None) -> None:
        self._queue.append((key, payload))

    def in_flight(self) -> int:
        return len(self._queue)

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        if not self._queue:
            return []
        assert self._job is not None, "start_job() must come before submit()"
        key, payload = self._queue.popleft()
        return [run_inline(self._job, key, payload, worker="main")]

    def cancel(self) -> list[Outcome]:
        cancelled = [Outcome(key, "cancelled", worker="main") for key, _ in self._queue]
        self._queue.clear()
        return cancelled

    def end_job(self) -> None:
        self._job = None
        self._queue.clear()

    def shutdown(self) -> None:
        self.end_job()


def run_inline(job: Job, key: int, payload: Any, *, worker: str) -> Outcome:
    """Run one item here and now, turning any exception into an outcome.

    ``KeyboardInterrupt`` is not a chunk's failure: it stops the run.
    """
    started = time.time()
    t0 = time.perf_counter()
    try:
        value = job(payload)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit from user code fails the chunk only
        return Outcome(
            key, "error", error=ErrorInfo.from_exception(exc),
            seconds=time.perf_counter() - t0, worker=worker, started=started,
        )
    return Outcome(key, "ok", value=value, seconds=time.perf_counter() - t0, worker=worker, started=started)
