"""Thread backend: for functions that release the GIL (numpy, pyarrow, I/O).

Threads share the caller's memory, so nothing is pickled. A running thread
cannot be killed: ``timeout`` is refused for this backend, and a cancelled run
returns at once while threads already running finish in the background.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading
from typing import Any

from .base import Backend, Job, Outcome
from .serial import run_inline


class ThreadBackend(Backend):
    name = "thread"

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._pool: cf.ThreadPoolExecutor | None = None
        self._job: Job | None = None
        self._futures: dict[cf.Future[Outcome], int] = {}

    @property
    def workers(self) -> int:
        return self._workers

    def start_job(self, job: Job, job_blob: bytes | None = None) -> None:
        self._job = job

    def submit(self, key: int, payload: Any, *, timeout: float | None = None) -> None:
        assert self._job is not None, "start_job() must come before submit()"
        if self._pool is None:
            self._pool = cf.ThreadPoolExecutor(self._workers, thread_name_prefix="framepar")
        future = self._pool.submit(_run_in_thread, self._job, key, payload)
        self._futures[future] = key

    def in_flight(self) -> int:
        return len(self._futures)

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        if not self._futures:
            return []
        done, _ = cf.wait(self._futures, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        outcomes = []
        for future in done:
            del self._futures[future]
            outcomes.append(future.result())
        return outcomes

    def cancel(self) -> list[Outcome]:
        cancelled = [Outcome(key, "cancelled") for key in self._futures.values()]
        for future in self._futures:
            future.cancel()
        self._futures.clear()
        if self._pool is not None:
            # Running threads cannot be stopped; do not wait for them.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        return cancelled

    def end_job(self) -> None:
        self._job = None

    def shutdown(self) -> None:
        self.cancel()


def _run_in_thread(job: Job, key: int, payload: Any) -> Outcome:
    name = f"thread {threading.current_thread().name} (pid {os.getpid()})"
    return run_inline(job, key, payload, worker=name)
