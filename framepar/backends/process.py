"""Process backend: a pool of worker processes that survives its workers.

::

    parent (this module)                           worker (_worker.main)
    ──────────────────────────                     ─────────────────────
    submit(key, payload) ── pipe: ("task", ...) ─▶ job(payload)
    wait(): select on every busy worker's           │
      pipe  ◀────────────── ("ok"/"error", ...) ────┘
      sentinel (fires when the process dies)  ──▶ outcome "crashed", exit code / signal
      deadline (timeout per task)             ──▶ SIGKILL, outcome "timeout"

Each worker has its own pipe and runs one task at a time, so a crash, a hang
or a kill is blamed on exactly the chunk that worker was running; the other
workers carry on. A dead or killed worker's slot is refilled lazily, on the
next submit. Unlike ``multiprocessing.Pool`` nothing here waits on a queue
that a dead process was meant to feed, so nothing can hang.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import pickle
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from . import _worker
from .base import Backend, ErrorInfo, Job, Outcome

# How long a worker asked to stop may take before it is killed.
STOP_GRACE_SECONDS = 2.0

_job_ids = itertools.count(1)


def default_start_method() -> str:
    """``fork`` where it is safe and available (fast: no re-import, and the
    input is inherited rather than sent), else ``forkserver``/``spawn``.

    Forking a process that runs other Python threads can deadlock the child,
    so a multi-threaded parent (a notebook kernel, a web server) gets
    ``forkserver``.
    """
    methods = mp.get_all_start_methods()
    if sys.platform == "linux" and "fork" in methods and threading.active_count() == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


@dataclass
class _Worker:
    process: Any
    conn: Any
    key: int | None = None
    deadline: float | None = None
    started_at: float = 0.0
    tasks_done: int = 0
    jobs: set[int] = field(default_factory=set)
    pid: int = 0

    @property
    def label(self) -> str:
        return f"pid {self.pid}"


class ProcessBackend(Backend):
    name = "process"
    crosses_processes = True

    def __init__(
        self,
        workers: int,
        *,
        start_method: str | None = None,
        max_tasks_per_child: int | None = None,
    ) -> None:
        self._n = workers
        self.start_method = start_method or default_start_method()
        self.inherits_memory = self.start_method == "fork"
        self._ctx: Any = mp.get_context(self.start_method)
        if self.start_method == "forkserver":
            self._ctx.set_forkserver_preload(["framepar.backends._worker", "pandas", "cloudpickle"])
        self._max_tasks = max_tasks_per_child
        self._slots: list[_Worker | None] = [None] * workers
        self._job_id: int | None = None
        self._job_blob: bytes | None = None

    # -- pool ---------------------------------------------------------------
    @property
    def workers(self) -> int:
        return self._n

    def live_pids(self) -> list[int]:
        return [w.process.pid for w in self._slots if w is not None and w.process.is_alive()]

    def describe_worker_start(self) -> float:
        missing = sum(1 for w in self._slots if w is None)
        if not missing:
            return 0.0
        per_worker = {"fork": 0.01, "forkserver": 0.05}.get(self.start_method, 0.5)
        first = {"fork": 0.0, "forkserver": 0.6}.get(self.start_method, 0.0)
        return first + per_worker * missing

    def _start_worker(self, slot: int) -> _Worker:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=_worker.main,
            args=(child_conn, os.getpid()),
            name=f"framepar-worker-{slot}",
            daemon=True,
        )
        # Block SIGINT while the child starts so that it inherits the mask and
        # cannot die of a Ctrl-C before it installs its own handler.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        child_conn.close()
        worker = _Worker(process, parent_conn, pid=process.pid or 0)
        self._slots[slot] = worker
        return worker

    def _idle_slot(self) -> int | None:
        for i, w in enumerate(self._slots):
            if w is not None and w.key is None:
                return i
        for i, w in enumerate(self._slots):
            if w is None:
                return i
        return None

    # -- jobs and tasks -------------------------------------------------------
    def start_job(self, job: Job, job_blob: bytes | None) -> None:
        if job_blob is None:
            raise ValueError("the process backend needs the job pickled")
        self._job_id = next(_job_ids)
        self._job_blob = job_blob

    def end_job(self) -> None:
        self._job_id = None
        self._job_blob = None

    def in_flight(self) -> int:
        return sum(1 for w in self._slots if w is not None and w.key is not None)

    def submit(self, key: int, payload: Any, *, timeout: float | None = None) -> None:
        assert self._job_id is not None and self._job_blob is not None, "start_job() first"
        slot = self._idle_slot()
        if slot is None:
            raise RuntimeError("submit() called with no free worker; check capacity() first")
        worker = self._slots[slot] or self._start_worker(slot)
        if self._job_id not in worker.jobs:
            worker.conn.send_bytes(pickle.dumps(("job", self._job_id, self._job_blob), protocol=5))
            worker.jobs = {self._job_id}
        blob = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
        worker.conn.send_bytes(pickle.dumps(("task", key, self._job_id, blob), protocol=5))
        worker.key = key
        worker.started_at = time.monotonic()
        worker.deadline = None if timeout is None else worker.started_at + timeout

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        busy = [(i, w) for i, w in enumerate(self._slots) if w is not None and w.key is not None]
        if not busy:
            return []
        now = time.monotonic()
        deadlines = [w.deadline for _, w in busy if w.deadline is not None]
        if deadlines:
            until_deadline = max(0.0, min(deadlines) - now)
            timeout = until_deadline if timeout is None else min(timeout, until_deadline)
        waitables: list[Any] = [w.conn for _, w in busy] + [w.process.sentinel for _, w in busy]
        ready = set(mpc.wait(waitables, timeout=timeout))
        outcomes: list[Outcome] = []
        for slot, worker in busy:
            if worker.conn in ready or worker.process.sentinel in ready:
                outcome = self._collect(slot, worker)
                if outcome is not None:
                    outcomes.append(outcome)
        now = time.monotonic()
        for slot, worker in busy:
            if worker.key is not None and worker.deadline is not None and worker.deadline <= now:
                outcomes.append(self._time_out(slot, worker, now))
        return outcomes

    def _collect(self, slot: int, worker: _Worker) -> Outcome | None:
        key = worker.key
        assert key is not None
        try:
            has_message = worker.conn.poll()
            raw = worker.conn.recv_bytes() if has_message else None
        except (EOFError, OSError):
            raw = None
        if raw is None:
            if worker.process.is_alive():
                return None  # spurious wake-up
            return self._crashed(slot, worker)
        worker.key = None
        worker.deadline = None
        worker.tasks_done += 1
        try:
            message = pickle.loads(raw)
        except BaseException as exc:
            info = ErrorInfo.from_exception(exc)
            info.message = f"the chunk's result could not be unpickled in the parent: {info.message}"
            outcome = Outcome(key, "error", error=info, worker=worker.label)
        else:
            outcome = _outcome_from_message(message, worker.label)
        if self._max_tasks is not None and worker.tasks_done >= self._max_tasks:
            self._retire(slot, worker)
        return outcome

    def _crashed(self, slot: int, worker: _Worker) -> Outcome:
        assert worker.key is not None
        worker.process.join(STOP_GRACE_SECONDS)
        code = worker.process.exitcode
        seconds = time.monotonic() - worker.started_at
        self._discard(slot, worker)
        return Outcome(
            worker.key,
            "crashed",
            error=_crash_info(worker.label, code),
            seconds=seconds,
            worker=worker.label,
        )

    def _time_out(self, slot: int, worker: _Worker, now: float) -> Outcome:
        assert worker.key is not None
        seconds = now - worker.started_at
        key = worker.key
        self._kill(slot, worker)
        message = f"chunk ran past the timeout ({seconds:.1f} s); its worker ({worker.label}) was killed"
        info = ErrorInfo("framepar.ChunkTimeoutError", message, message)
        return Outcome(key, "timeout", error=info, seconds=seconds, worker=worker.label)

    def cancel(self) -> list[Outcome]:
        cancelled = []
        for slot, worker in enumerate(self._slots):
            if worker is not None and worker.key is not None:
                cancelled.append(Outcome(worker.key, "cancelled", worker=worker.label))
                self._kill(slot, worker)
        return cancelled

    # -- stopping workers -----------------------------------------------------
    def _kill(self, slot: int, worker: _Worker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(STOP_GRACE_SECONDS)
        self._discard(slot, worker)

    def _retire(self, slot: int, worker: _Worker) -> None:
        with contextlib.suppress(OSError):
            worker.conn.send_bytes(pickle.dumps(("stop",)))
        worker.process.join(STOP_GRACE_SECONDS)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(STOP_GRACE_SECONDS)
        self._discard(slot, worker)

    def _discard(self, slot: int, worker: _Worker) -> None:
        worker.conn.close()
        if worker.process.exitcode is not None:
            worker.process.close()
        if self._slots[slot] is worker:
            self._slots[slot] = None

    def shutdown(self) -> None:
        workers = [(i, w) for i, w in enumerate(self._slots) if w is not None]
        for _, worker in workers:
            if worker.key is not None:
                worker.process.kill()
            else:
                try:
                    worker.conn.send_bytes(pickle.dumps(("stop",)))
                except OSError:
                    worker.process.kill()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for slot, worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(STOP_GRACE_SECONDS)
            self._discard(slot, worker)
        self.end_job()


def _outcome_from_message(message: tuple[Any, ...], label: str) -> Outcome:
    kind, key = message[0], message[1]
    seconds, started = message[3], message[4]
    if kind == "ok":
        return Outcome(key, "ok", value=message[2], seconds=seconds, worker=label, started=started)
    type_name, text, tb, blob = message[2]
    exception: BaseException | None = None
    if blob is not None:
        try:
            exception = pickle.loads(blob)
        except BaseException:
            exception = None  # e.g. a class whose __init__ needs arguments
    info = ErrorInfo(type_name, text, tb, exception=exception, remote=True)
    return Outcome(key, "error", error=info, seconds=seconds, worker=label, started=started)


def _crash_info(label: str, code: int | None) -> ErrorInfo:
    if code is None:
        how = "stopped responding"
    elif code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        how = f"was killed by {name} (signal {-code})"
    else:
        how = f"exited with code {code}"
    message = f"the worker process ({label}) {how} while running this chunk"
    info = ErrorInfo("framepar.WorkerCrashedError", message, message)
    info.exit_code = code
    return info
