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

How each failure is handled:

* the worker dies while running a task (exit code, signal, or in the middle
  of writing its reply): the read ends with EOF, the sentinel fires, the task
  is ``crashed`` with the exit code or signal name;
* a reply is read piece by piece as it arrives (:class:`_Inbox`), so a worker
  that stops half-way through writing one blocks nothing: the other workers'
  replies and every deadline are still served, and with a timeout the stalled
  worker is killed once no byte has come for that long;
* the worker dies while idle (for example killed by the OOM killer between
  chunks): the next send fails, the worker is replaced and the task re-sent
  to the new one; the task is not blamed;
* a task runs past its timeout: the worker is killed with SIGKILL (nothing in
  the worker can ignore that) and replaced on the next submit. With a timeout
  the worker acknowledges each task once its job is loaded, and the clock
  starts then, so a slow worker start (spawn imports pandas) is not counted;
* Ctrl-C in the parent: workers ignore SIGINT from the moment they exist, the
  parent's ``KeyboardInterrupt`` unwinds through :meth:`cancel` and
  :meth:`shutdown`, which kill every worker first and only then reap them.
"""

from __future__ import annotations

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
# With a timeout, how long a task may wait for its worker to start and load
# the job before the timeout clock starts anyway (a worker stuck importing).
START_GRACE_SECONDS = 60.0

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


class _Inbox:
    """One worker's replies, read as the bytes arrive (see ``_worker.send``).

    :meth:`pump` is called when the pipe is readable and reads only what is
    there, so it never waits for the rest of a reply that may never come.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.head = b""
        self.body: bytearray | None = None
        self.got = 0

    @property
    def mid_reply(self) -> bool:
        return bool(self.head) or self.body is not None

    def pump(self) -> bytearray | None:
        """Read what has arrived; a whole reply once it is complete.

        Raises ``EOFError`` when the worker's end is closed.
        """
        if self.body is None:
            data = os.read(self.fd, _worker.HEADER.size - len(self.head))
            if not data:
                raise EOFError
            self.head += data
            if len(self.head) < _worker.HEADER.size:
                return None
            (size,) = _worker.HEADER.unpack(self.head)
            self.head, self.body, self.got = b"", bytearray(size), 0
        elif (n := os.readv(self.fd, [memoryview(self.body)[self.got:]])) == 0:
            raise EOFError
        else:
            self.got += n
        if self.got < len(self.body):
            return None
        body, self.body = self.body, None
        return body


@dataclass
class _Worker:
    process: Any
    conn: Any
    inbox: _Inbox
    key: int | None = None
    deadline: float | None = None
    timeout: float | None = None
    acknowledged: bool = False
    ready: bool = False  # its loop has started (see _worker.main)
    started_at: float = 0.0
    tasks_done: int = 0
    jobs: set[int] = field(default_factory=set)
    pid: int = 0
    exitcode: int | None = None  # kept once the process object is closed

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
        # Outcomes known before any waiting (a task whose worker could not be
        # reached); wait() hands them out first.
        self._ready: list[Outcome] = []
        # Workers told to stop after max_tasks_per_child; reaped lazily so
        # that recycling never blocks the run.
        self._retiring: list[_Worker] = []

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
        with _sigint_shielded(self.start_method):
            process.start()
        child_conn.close()
        worker = _Worker(process, parent_conn, _Inbox(parent_conn.fileno()), pid=process.pid or 0)
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
        # Workers retired during the run have been told to stop: reap them now
        # so that no exited worker lingers as a zombie between calls.
        self._reap_retired(block=True)

    def in_flight(self) -> int:
        busy = sum(1 for w in self._slots if w is not None and w.key is not None)
        return busy + len(self._ready)

    def submit(self, key: int, payload: Any, *, timeout: float | None = None) -> None:
        assert self._job_id is not None and self._job_blob is not None, "start_job() first"
        self._reap_retired()
        slot = self._idle_slot()
        if slot is None:
            raise RuntimeError("submit() called with no free worker; check capacity() first")
        blob = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
        task = pickle.dumps(("task", key, self._job_id, blob, timeout is not None), protocol=5)
        # An idle worker may have died since its last task (OOM killer, a stray
        # signal); that is not this task's fault: replace it and send again.
        for attempt in range(2):
            worker = self._slots[slot] or self._start_worker(slot)
            try:
                if self._job_id not in worker.jobs:
                    worker.conn.send_bytes(pickle.dumps(("job", self._job_id, self._job_blob), protocol=5))
                    worker.jobs = {self._job_id}
                worker.conn.send_bytes(task)
            except OSError:
                code = self._kill(slot, worker)
                if attempt == 0:
                    continue
                self._ready.append(
                    Outcome(key, "crashed", error=_crash_info(worker.label, code, idle=True), worker=worker.label)
                )
                return
            except BaseException:
                # Interrupted half-way through a message (Ctrl-C): the worker's
                # stream is unusable.
                self._kill(slot, worker)
                raise
            break
        worker.key = key
        worker.started_at = time.monotonic()
        worker.timeout = timeout
        worker.acknowledged = False
        worker.deadline = None if timeout is None else worker.started_at + timeout + START_GRACE_SECONDS

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        if self._ready:
            known, self._ready = self._ready, []
            return known
        self._reap_retired()
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            # A pass may only read part of a reply; wait on for a whole one.
            outcomes = self._wait_once(None if end is None else max(0.0, end - time.monotonic()))
            busy = any(w is not None and w.key is not None for w in self._slots)
            if outcomes or not busy or (end is not None and time.monotonic() >= end):
                return outcomes

    def _wait_once(self, timeout: float | None) -> list[Outcome]:
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
        while True:
            try:
                if not worker.conn.poll():
                    if worker.process.is_alive():
                        return None  # nothing (more) yet, or only an acknowledgement
                    return self._crashed(slot, worker)
                raw = worker.inbox.pump()
            except (EOFError, OSError):
                # The worker's end closed, possibly half-way through a reply:
                # it is dead or dying.
                return self._crashed(slot, worker)
            if raw is None:
                if worker.timeout is not None and worker.acknowledged:
                    # The reply is coming: the timeout now bounds a stall in it.
                    worker.deadline = time.monotonic() + worker.timeout
                continue
            try:
                message = pickle.loads(raw)
            except BaseException as exc:
                info = ErrorInfo.from_exception(exc)
                info.message = f"the chunk's result could not be unpickled in the parent: {info.message}"
                outcome = Outcome(key, "error", error=info, worker=worker.label)
                break
            if message[0] == "ready":
                worker.ready = True
                continue
            if message[0] == "started":
                worker.acknowledged = True
                worker.started_at = time.monotonic()
                if worker.timeout is not None:
                    worker.deadline = worker.started_at + worker.timeout
                continue
            outcome = _outcome_from_message(message, worker.label)
            break
        worker.key = None
        worker.deadline = None
        worker.tasks_done += 1
        if self._max_tasks is not None and worker.tasks_done >= self._max_tasks:
            self._retire(slot, worker)
        return outcome

    def _crashed(self, slot: int, worker: _Worker) -> Outcome:
        assert worker.key is not None
        key = worker.key
        seconds = time.monotonic() - worker.started_at
        worker.process.join(STOP_GRACE_SECONDS)
        # Still alive after its pipe closed (it closed the pipe itself?): it can
        # no longer be talked to, so it goes.
        code = self._kill(slot, worker)
        starting = None if worker.ready else self.start_method
        info = _crash_info(worker.label, code, starting=starting)
        return Outcome(key, "crashed", error=info, seconds=seconds, worker=worker.label)

    def _time_out(self, slot: int, worker: _Worker, now: float) -> Outcome:
        assert worker.key is not None
        seconds = now - worker.started_at
        key = worker.key
        self._kill(slot, worker)
        if worker.inbox.mid_reply:
            message = (
                f"the worker ({worker.label}) stopped half-way through sending the chunk's result "
                f"and sent nothing more for the timeout ({worker.timeout} s); it was killed"
            )
        elif worker.acknowledged or worker.timeout is None:
            message = f"chunk ran past the timeout ({worker.timeout} s); its worker ({worker.label}) was killed"
        else:
            message = (
                f"the worker ({worker.label}) did not start the chunk within "
                f"{START_GRACE_SECONDS + worker.timeout:.0f} s and was killed"
            )
        info = ErrorInfo("framepar.ChunkTimeoutError", message, message)
        return Outcome(key, "timeout", error=info, seconds=seconds, worker=worker.label)

    def cancel(self) -> list[Outcome]:
        busy = [(i, w) for i, w in enumerate(self._slots) if w is not None and w.key is not None]
        cancelled = [Outcome(w.key, "cancelled", worker=w.label) for _, w in busy if w.key is not None]
        cancelled += [Outcome(o.key, "cancelled", worker=o.worker) for o in self._ready]
        self._ready = []
        # Kill them all before reaping any, so that a second Ctrl-C during the
        # clean-up cannot leave a worker running.
        self._kill_all(busy)
        return cancelled

    # -- stopping workers -----------------------------------------------------
    def _kill(self, slot: int, worker: _Worker) -> int | None:
        """Kill ``worker`` (if still alive), reap it and free its slot; its exit code."""
        self._kill_all([(slot, worker)])
        return worker.exitcode

    def _kill_all(self, workers: list[tuple[int, _Worker]]) -> None:
        for _, worker in workers:
            if worker.process.exitcode is None:
                worker.process.kill()
        for slot, worker in workers:
            worker.process.join(STOP_GRACE_SECONDS)
            self._discard(slot, worker)

    def _retire(self, slot: int, worker: _Worker) -> None:
        try:
            worker.conn.send_bytes(pickle.dumps(("stop",)))
        except OSError:
            worker.process.kill()
        # It exits on its own; reap it later instead of waiting for it here.
        worker.conn.close()
        if self._slots[slot] is worker:
            self._slots[slot] = None
        worker.deadline = time.monotonic() + STOP_GRACE_SECONDS
        self._retiring.append(worker)

    def _reap_retired(self, *, block: bool = False) -> None:
        still = []
        for worker in self._retiring:
            if block:
                worker.process.join(max(0.0, (worker.deadline or 0.0) - time.monotonic()))
            if worker.process.exitcode is None and (block or time.monotonic() > (worker.deadline or 0.0)):
                worker.process.kill()
                worker.process.join(STOP_GRACE_SECONDS)
            if worker.process.exitcode is None:
                still.append(worker)
            else:
                worker.exitcode = worker.process.exitcode
                worker.process.close()
        self._retiring = still

    def _discard(self, slot: int, worker: _Worker) -> None:
        worker.conn.close()
        if worker.process.exitcode is not None:
            worker.exitcode = worker.process.exitcode
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
        for _, worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
        self._kill_all(workers)
        self._reap_retired(block=True)
        self._ready = []
        self.end_job()


class _sigint_shielded:
    """Start a worker so that it can never see a Ctrl-C meant for the parent.

    SIGINT is blocked while the child is forked, so a forked child inherits
    the blocked mask until the worker ignores SIGINT itself. A spawned (or
    forkserver) child starts a fresh interpreter with an empty mask, so for
    those SIGINT is also set to ``SIG_IGN`` for the instant of the start: an
    ignored disposition survives ``exec`` and Python then installs no Ctrl-C
    handler in the child. (Only possible from the main thread; elsewhere the
    blocked mask is all there is.) The price: a Ctrl-C arriving during those
    few milliseconds is dropped rather than delivered late; pressing it again
    works.
    """

    def __init__(self, start_method: str) -> None:
        self.ignore = start_method != "fork" and threading.current_thread() is threading.main_thread()
        self.old_mask: Any = None
        self.old_handler: Any = None

    def __enter__(self) -> None:
        self.old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        if self.ignore:
            self.old_handler = signal.signal(signal.SIGINT, signal.SIG_IGN)

    def __exit__(self, *exc_info: object) -> None:
        if self.ignore:
            signal.signal(signal.SIGINT, self.old_handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, self.old_mask)


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


def _crash_info(label: str, code: int | None, *, idle: bool = False, starting: str | None = None) -> ErrorInfo:
    """What a dead worker's chunk reports; ``starting``: the start method of a
    worker that died before its loop began."""
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
    when = "before it could receive this chunk (twice)" if idle else "while running this chunk"
    if starting is not None:
        when = "while starting, before it could run this chunk"
    message = f"the worker process ({label}) {how} {when}"
    if starting is not None and starting != "fork":
        message += (
            f"; a worker started with {starting!r} first imports the main script, so a script that "
            'runs framepar at import time needs that code under `if __name__ == "__main__":` '
            "(the worker's own error is on stderr)"
        )
    info = ErrorInfo("framepar.WorkerCrashedError", message, message)
    info.exit_code = code
    return info
