"""Dask backend: chunks run as tasks on a Dask distributed cluster.

::

    client (this module)                               Dask workers
    ────────────────────────────────                   ─────────────────────────────
    start_job: scatter(job blob, broadcast) ───────▶   every worker holds the job bytes
    submit:    scatter(pickled payload) to the ───▶    one worker holds the chunk's rows
               least busy worker (big chunks), then
               submit(run_chunk, job, key, payload) ▶  _dask_worker.run_chunk: same reply
                                                       as the process worker
    wait():    a done-callback wakes it up        ◀──  (address, reply bytes)
               KilledWorker / cancelled / lost    ──▶  outcome "crashed"
               deadline passed                    ──▶  cancel + restart that worker,
                                                       outcome "timeout"

Which cluster: an explicit ``client``; else ``address`` (or the
``FRAMEPAR_DASK_ADDRESS`` environment variable when no client is current);
else the current ``distributed.Client``; else a ``LocalCluster`` of worker
processes bound to 127.0.0.1, which this backend closes on shutdown. It never
closes a client or cluster it did not create.

Each chunk's rows are pickled once. Above ``SCATTER_MIN_BYTES`` they are
scattered to the least busy worker, where the task then runs; a retry of the
same chunk reuses the scattered copy while a worker still holds it (a worker
that died takes it with it, so then it is scattered again). Small chunks ride
inside the task message, which saves a round trip per chunk.

Failures are framepar's to count, not the scheduler's: the scheduler would
otherwise re-run a task whose worker died up to ``allowed-failures`` times.
A cluster started here has ``allowed-failures`` 0; on an existing cluster a
small scheduler plugin marks framepar's tasks (by their key prefix) as they
arrive, so that the first worker death fails them with ``KilledWorker``. That
is reported as ``crashed`` for the chunk and retried according to
``retries``. Each task is placed on a worker with a free thread, so a dying
worker takes down only chunks that were running on it.

``timeout``: Dask cannot stop a running task, so a chunk past its deadline is
cancelled and the worker running it is restarted through its nanny (its other
tasks are lost with it and are reported ``crashed`` or re-run by the
scheduler). A worker without a nanny cannot be restarted: the chunk is still
reported ``timeout`` but its thread runs on until the function returns.
Likewise a run stopped early (``errors="raise"``) cancels its pending tasks,
while chunks already running finish on their workers and are discarded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import secrets
import threading
import time
import traceback
import warnings
from dataclasses import dataclass
from typing import Any

import dask
import distributed
from distributed import Client, Future, KilledWorker, LocalCluster

from . import _dask_worker
from .base import Backend, ErrorInfo, Job, Outcome
from .process import _outcome_from_message

ADDRESS_ENV = "FRAMEPAR_DASK_ADDRESS"
CONNECT_TIMEOUT_SECONDS = 30.0
# Wake up this often while waiting, to notice futures the scheduler lost.
POLL_SECONDS = 1.0
RESTART_TIMEOUT_SECONDS = 30.0
THREADS_REFRESH_SECONDS = 2.0
TASK_PREFIX = "framepar-chunk-"
PLUGIN_NAME = "framepar-no-scheduler-retries"
ENDED = ("finished", "error", "cancelled", "lost")
# Chunks pickled to at least this size are scattered to a worker ahead of the
# task (the rows then travel once, straight to a worker, never through the
# scheduler); smaller ones ride inside the task message.
SCATTER_MIN_BYTES = 64 * 1024

logger = logging.getLogger(__name__)


@dataclass
class _Flight:
    future: Future
    worker: str
    started: float  # time.monotonic()
    started_wall: float
    deadline: float | None


class DaskBackend(Backend):
    """Runs chunks on a Dask cluster; see the module docstring.

    ``workers`` caps the chunks in flight; 0 means the cluster's total number
    of threads (and, for a cluster started here, the CPUs of this machine).
    """

    name = "dask"
    crosses_processes = True

    def __init__(
        self,
        workers: int = 0,
        *,
        address: str | None = None,
        client: Client | None = None,
    ) -> None:
        self._cluster: LocalCluster | None = None
        self._owns_client = False
        self._client = self._connect(workers, address, client)
        self._n = workers or _total_threads(self._client)
        self._job_id: int | None = None
        self._job_blob: bytes | None = None
        self._job_future: Future | None = None
        self._flights: dict[int, _Flight] = {}
        self._payloads: dict[int, Future | bytes] = {}  # pickled once per chunk, kept for retries
        self._attempts: dict[int, int] = {}
        if self._cluster is None:  # a cluster started here has allowed-failures 0 already
            self._leave_retries_to_framepar()
        self._closed = False
        self._ready = threading.Event()  # set when any future ends
        self._threads: dict[str, int] = {}
        self._threads_at: float | None = None

    def _on_done(self, future: Future) -> None:
        self._ready.set()

    # -- connecting -----------------------------------------------------------
    def _connect(self, workers: int, address: str | None, client: Client | None) -> Client:
        if client is not None:
            return client
        if address is None:
            try:
                return distributed.default_client()
            except ValueError:
                address = os.environ.get(ADDRESS_ENV) or None
        if address is not None:
            try:
                connected = Client(address, timeout=CONNECT_TIMEOUT_SECONDS, set_as_default=False)
            except OSError as exc:
                raise ConnectionError(
                    f"could not reach the Dask scheduler at {address!r}: {exc}. Check the address "
                    f"(address=... or {ADDRESS_ENV}) and that the scheduler is running"
                ) from exc
            self._owns_client = True
            return connected
        from ..core import available_cpus

        # Only this machine may reach the cluster; no dashboard (needs bokeh,
        # opens a port); the scheduler must not re-run a task behind our back.
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            self._cluster = LocalCluster(
                n_workers=workers or available_cpus(),
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                # The scheduler serves HTTP (health, metrics) even without a
                # dashboard; keep it on loopback and off the default port.
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                silence_logs=logging.ERROR,
            )
        self._owns_client = True
        return Client(self._cluster, set_as_default=False)

    def _leave_retries_to_framepar(self) -> None:
        """Register :func:`_no_scheduler_retries` on the scheduler (once per scheduler)."""
        try:
            self._client.register_plugin(_no_scheduler_retries(), name=PLUGIN_NAME)
        except Exception as exc:
            warnings.warn(
                f"framepar could not ask the Dask scheduler to leave retries to framepar "
                f"({type(exc).__name__}: {exc}); a chunk whose worker dies may be re-run by the "
                "scheduler before framepar sees it, up to its allowed-failures setting",
                RuntimeWarning,
                stacklevel=4,
            )

    @property
    def client(self) -> Client:
        return self._client

    @property
    def workers(self) -> int:
        return self._n

    # -- jobs and tasks -------------------------------------------------------
    def start_job(self, job: Job, job_blob: bytes | None) -> None:
        if job_blob is None:
            raise ValueError("the dask backend needs the job pickled")
        self._job_id = secrets.randbits(62)
        self._job_blob = job_blob
        self._job_future = None

    def end_job(self) -> None:
        futures: list[Future] = [f.future for f in self._flights.values()]
        futures += [p for p in self._payloads.values() if isinstance(p, Future)]
        if self._job_future is not None:
            futures.append(self._job_future)
        for future in futures:
            future.release()
        self._flights.clear()
        self._payloads.clear()
        self._attempts.clear()
        self._job_id = None
        self._job_blob = None
        self._job_future = None

    def in_flight(self) -> int:
        return len(self._flights)

    def _job(self) -> Future:
        assert self._job_blob is not None, "start_job() first"
        if self._job_future is None or self._job_future.status != "finished":
            # Broadcast: every worker gets the job once, not once per chunk.
            self._job_future = self._client.scatter(self._job_blob, broadcast=True, hash=False)
        return self._job_future

    def submit(self, key: int, payload: Any, *, timeout: float | None = None) -> None:
        assert self._job_id is not None, "start_job() first"
        job = self._job()
        # One task per free thread, placed by us: the scheduler would otherwise
        # queue a second task on a busy worker, and a crash there would take
        # down a chunk that never started.
        target = self._least_busy_worker()
        data = self._payloads.get(key)
        if data is None or (isinstance(data, Future) and data.status != "finished"):
            blob = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
            # Small chunks ride inside the task message, saving a round trip.
            data = blob if len(blob) < SCATTER_MIN_BYTES else self._scatter(blob, target)
            self._payloads[key] = data
        attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
        task_key = f"{TASK_PREFIX}{self._job_id:x}-{key}-{attempt}"
        future = self._client.submit(
            _dask_worker.run_chunk, self._job_id, job, key, data,
            key=task_key, pure=False, retries=0,
            workers=[target] if target else None, allow_other_workers=True,
        )
        future.add_done_callback(self._on_done)
        now = time.monotonic()
        deadline = None if timeout is None else now + timeout
        self._flights[key] = _Flight(future, target or "", now, time.time(), deadline)

    def _scatter(self, blob: bytes, target: str | None) -> Future:
        if target:
            try:
                return self._client.scatter(blob, workers=[target], hash=False)
            except Exception:  # that worker just left: let the scheduler choose
                self._threads_at = None
        return self._client.scatter(blob, hash=False)

    def _least_busy_worker(self) -> str | None:
        now = time.monotonic()
        if self._threads_at is None or now - self._threads_at > THREADS_REFRESH_SECONDS:
            # Workers come and go (a nanny restarts a dead one at a new address).
            self._threads = dict(self._client.nthreads())
            self._threads_at = now
        threads = self._threads
        if not threads:
            return None
        busy: dict[str, int] = {}
        for flight in self._flights.values():
            busy[flight.worker] = busy.get(flight.worker, 0) + 1
        return max(threads, key=lambda w: threads[w] - busy.get(w, 0))

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        if not self._flights:
            return []
        now = time.monotonic()
        limit = POLL_SECONDS if timeout is None else min(timeout, POLL_SECONDS)
        deadlines = [f.deadline for f in self._flights.values() if f.deadline is not None]
        if deadlines:
            limit = min(limit, max(0.0, min(deadlines) - now))
        self._ready.wait(limit)
        self._ready.clear()  # before looking: a future ending from here on sets it again
        outcomes: list[Outcome] = []
        now = time.monotonic()
        # Read each status once: it may change while we look.
        statuses = {k: str(f.future.status) for k, f in self._flights.items()}
        ended = {k: f for k, f in self._flights.items() if statuses[k] in ENDED}
        values = self._gather([f.future for k, f in ended.items() if statuses[k] == "finished"])
        for key, flight in ended.items():
            del self._flights[key]
            outcome = self._outcome(key, flight, statuses[key], values)
            if outcome.status == "crashed":
                self._threads_at = None
            if outcome.status == "ok":
                done = self._payloads.pop(key)
                if isinstance(done, Future):
                    done.release()  # no retry will need these rows
            outcomes.append(outcome)
        for key, flight in list(self._flights.items()):
            if flight.deadline is not None and flight.deadline <= now:
                del self._flights[key]
                outcomes.append(self._time_out(key, flight, now))
                self._threads_at = None
        return outcomes

    def _gather(self, futures: list[Future]) -> dict[Any, Any]:
        """The finished futures' values in one round trip (one at a time if that fails)."""
        if not futures:
            return {}
        try:
            return dict(zip([f.key for f in futures], self._client.gather(futures), strict=True))
        except Exception:
            return {}  # _outcome fetches each one and reports its own failure

    def _outcome(self, key: int, flight: _Flight, status: str, values: dict[Any, Any]) -> Outcome:
        seconds = time.monotonic() - flight.started
        if status == "finished":
            try:
                value = values[flight.future.key] if flight.future.key in values else flight.future.result()
                worker, raw = value
                message = pickle.loads(raw)
            except BaseException as exc:
                info = ErrorInfo.from_exception(exc)
                info.message = f"the chunk's result could not be unpickled in the parent: {info.message}"
                return Outcome(key, "error", error=info, seconds=seconds, worker=flight.worker)
            flight.worker = worker or flight.worker
            return _outcome_from_message(message, flight.worker)
        if status == "error":
            failure = flight.future.exception()
            if isinstance(failure, KilledWorker):
                worker = _killed_worker_address(failure) or flight.worker
                message = (
                    f"the Dask worker {worker} died while running this chunk "
                    f"(the scheduler reported KilledWorker)"
                )
                info = ErrorInfo("framepar.WorkerCrashedError", message, message)
                return Outcome(key, "crashed", error=info, seconds=seconds, worker=worker)
            # The task could not run at all (e.g. framepar or the function's
            # module cannot be imported on the worker): the chunk's error.
            if not isinstance(failure, BaseException):
                failure = RuntimeError(f"the Dask task failed without an exception ({failure!r})")
            info = ErrorInfo.from_exception(failure, remote=True)
            tb = flight.future.traceback()
            if tb is not None:
                info.traceback = "".join(traceback.format_exception(type(failure), failure, tb))
            return Outcome(key, "error", error=info, seconds=seconds, worker=flight.worker)
        # "cancelled" or "lost": the scheduler dropped the task (a restart, a
        # lost connection, its input lost with a worker): as good as a crash.
        message = f"the Dask scheduler {'lost' if status == 'lost' else 'cancelled'} this chunk's task"
        info = ErrorInfo("framepar.WorkerCrashedError", message, message)
        return Outcome(key, "crashed", error=info, seconds=seconds, worker=flight.worker)

    def _time_out(self, key: int, flight: _Flight, now: float) -> Outcome:
        seconds = now - flight.started
        worker = self._running_on(flight.future) or flight.worker
        flight.future.cancel()
        how = self._stop_worker(worker)
        message = f"chunk ran past the timeout ({seconds:.1f} s) on Dask worker {worker}; {how}"
        info = ErrorInfo("framepar.ChunkTimeoutError", message, message)
        return Outcome(key, "timeout", error=info, seconds=seconds, worker=worker)

    def _running_on(self, future: Future) -> str | None:
        try:
            processing = self._client.processing()
        except Exception:
            return None
        for worker, keys in processing.items():
            if future.key in keys:
                return str(worker)
        return None

    def _stop_worker(self, worker: str) -> str:
        if not worker:
            return "its worker is unknown, so the task may run on until it returns"
        try:
            status = self._client.restart_workers(
                [worker], timeout=RESTART_TIMEOUT_SECONDS, raise_for_error=False
            )
        except Exception as exc:  # e.g. a worker without a nanny
            return f"the worker could not be restarted ({exc}), so the task runs on until it returns"
        result = status.get(worker, "OK") if isinstance(status, dict) else "OK"
        if result == "OK":
            return "the worker was restarted to stop it"
        return f"restarting the worker gave {result!r}, so the task may run on until it returns"

    def cancel(self) -> list[Outcome]:
        cancelled = [Outcome(key, "cancelled", worker=f.worker) for key, f in self._flights.items()]
        if self._flights:
            with contextlib.suppress(Exception):
                self._client.cancel([f.future for f in self._flights.values()], force=True)
        self._flights.clear()
        return cancelled

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self.cancel()
            self.end_job()
        if self._owns_client:
            with contextlib.suppress(Exception):
                self._client.close()
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close()


def _no_scheduler_retries() -> Any:
    """A scheduler plugin: a worker death fails framepar's tasks at once.

    The scheduler fails a task once more workers died running it than its
    ``allowed-failures``; starting that count at the limit, as each of
    framepar's tasks arrives, does it for framepar's tasks alone and leaves
    the cluster's setting alone for everyone else. The class is made here so
    that it travels by value: the scheduler need not have framepar installed.
    """
    from distributed.diagnostics.plugin import SchedulerPlugin

    prefix = TASK_PREFIX

    class FrameparNoSchedulerRetries(SchedulerPlugin):
        name = PLUGIN_NAME

        def update_graph(self, scheduler: Any, *, tasks: list[Any], **kwargs: Any) -> None:
            allowed = scheduler.allowed_failures
            if not allowed:
                return
            for key in tasks:
                if isinstance(key, str) and key.startswith(prefix):
                    ts = scheduler.tasks.get(key)
                    if ts is not None:
                        ts.suspicious = max(ts.suspicious, allowed)

    return FrameparNoSchedulerRetries()


def _killed_worker_address(exc: KilledWorker) -> str:
    last = getattr(exc, "last_worker", None)
    return str(getattr(last, "address", "") or "")


def _total_threads(client: Client) -> int:
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception:
        return 1
