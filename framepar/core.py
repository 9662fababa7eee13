"""Orchestration: plan -> transport -> execute -> collect -> report.

:func:`execute` is the one pipeline behind every entry point. It validates
the options, plans the chunks, hands ``(chunk, source)`` work items to a
backend, keeps at most ``backend.workers`` of them in flight, retries or
stops on failures, reassembles the results in input order and builds the
per-chunk report.

With ``backend="auto"`` the first chunk runs in-process and its timing
decides whether the remaining rows are worth worker processes; nothing is
ever computed twice.

Failures: a failed chunk is retried (``retries``/``retry_on``) before it
counts; a chunk whose worker was SIGKILLed while other chunks ran is first
run once on its own (see :meth:`_State.handle`); with ``locate=True`` the
failed chunks are bisected afterwards (:mod:`framepar.locate`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
import warnings
from collections import deque
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from . import grouping, planning
from .backends import make_backend
from .backends.base import Backend, ErrorInfo, Outcome
from .backends.serial import SerialBackend
from .collect import concat_results
from .exceptions import (
    ChunkError,
    ChunkFailureWarning,
    ChunksFailed,
    ChunkTimeoutError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    RemoteExceptionError,
    RemoteTraceback,
    WorkerCrashedError,
)
from .job import ChunkJob, ChunkTask
from .pickling import pickle_job
from .planning import ChunkSpec
from .progress import Progress
from .report import ChunkRecord, Run
from .transport import (
    TRANSPORTS,
    InProcessTransport,
    Transport,
    make_transport,
    nbytes,
    wants_buffers,
)

ERRORS = ("raise", "collect", "skip")
BACKENDS = ("auto", "serial", "thread", "process", "dask")
RETRYABLE = ("error", "crashed", "timeout")


@dataclass(frozen=True)
class Options:
    """Every option of a run, validated by :func:`validate`."""

    workers: int | None = None
    chunk_rows: int | None = None
    n_chunks: int | None = None
    backend: str = "auto"
    errors: str = "raise"
    progress: bool | None = None
    combine: Callable[[list[Any]], Any] | None = None
    retries: int = 0
    retry_on: tuple[Any, ...] = RETRYABLE
    timeout: float | None = None
    start_method: str | None = None
    address: str | None = None
    locate: bool = False
    transport: str = "auto"
    by: Any = None
    overlap: int | tuple[int, int] = 0

    @property
    def user_chunking(self) -> bool:
        return self.chunk_rows is not None or self.n_chunks is not None


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _check_int(name: str, value: Any, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentTypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise InvalidArgumentError(f"{name} must be >= {minimum}, got {value}")


def validate(data: Any, func: Any, opts: Options) -> None:
    """Reject bad input with a message that says what to fix, before any work."""
    if not isinstance(data, (pd.DataFrame, pd.Series)):
        raise InvalidArgumentTypeError(
            f"framepar needs a pandas DataFrame or Series, got {type(data).__module__}."
            f"{type(data).__qualname__}; convert it first, e.g. pd.DataFrame(data)"
        )
    if not callable(func):
        raise InvalidArgumentTypeError(f"func must be callable, got {type(func).__name__} {func!r}")
    _check_int("workers", opts.workers, 1)
    _check_int("chunk_rows", opts.chunk_rows, 1)
    _check_int("n_chunks", opts.n_chunks, 1)
    _check_int("retries", opts.retries, 0)
    if opts.chunk_rows is not None and opts.n_chunks is not None:
        raise InvalidArgumentError("give chunk_rows or n_chunks, not both")
    if opts.errors not in ERRORS:
        raise InvalidArgumentError(f"errors must be one of {ERRORS}, got {opts.errors!r}")
    if opts.backend not in BACKENDS:
        raise InvalidArgumentError(f"backend must be one of {BACKENDS}, got {opts.backend!r}")
    if not isinstance(opts.locate, bool):
        raise InvalidArgumentTypeError(f"locate must be True or False, got {opts.locate!r}")
    if opts.transport not in TRANSPORTS:
        raise InvalidArgumentError(f"transport must be one of {TRANSPORTS}, got {opts.transport!r}")
    if opts.progress not in (None, True, False):
        raise InvalidArgumentTypeError(f"progress must be None, True or False, got {opts.progress!r}")
    if opts.combine is not None and not callable(opts.combine):
        raise InvalidArgumentTypeError(f"combine must be callable, got {opts.combine!r}")
    if opts.timeout is not None:
        if isinstance(opts.timeout, bool) or not isinstance(opts.timeout, (int, float)):
            raise InvalidArgumentTypeError(f"timeout must be a number of seconds, got {opts.timeout!r}")
        if not opts.timeout > 0:
            raise InvalidArgumentError(f"timeout must be > 0 seconds, got {opts.timeout}")
        if opts.backend in ("serial", "thread"):
            raise InvalidArgumentError(
                f"timeout needs a backend that can stop a chunk (process or dask); "
                f"backend={opts.backend!r} cannot interrupt running Python code"
            )
    if opts.address is not None:
        if not isinstance(opts.address, str) or not opts.address:
            raise InvalidArgumentTypeError(
                f"address must be a Dask scheduler address such as 'tcp://host:8786', got {opts.address!r}"
            )
        if opts.backend != "dask":
            raise InvalidArgumentError(
                f"address is the Dask scheduler to use; it needs backend='dask', not {opts.backend!r}"
            )
    if opts.backend == "dask" and opts.transport not in ("auto", "pickle"):
        raise InvalidArgumentError(
            f"transport={opts.transport!r} leaves the rows in this machine's memory or files, which "
            "Dask workers elsewhere cannot read; with backend='dask' use transport='auto' or 'pickle'"
        )
    for item in opts.retry_on:
        if item in RETRYABLE or (isinstance(item, type) and issubclass(item, BaseException)):
            continue
        raise InvalidArgumentError(
            f"retry_on items must be {RETRYABLE} or exception classes, got {item!r}"
        )
    _overlap(opts)
    if opts.by is not None and opts.overlap != 0:
        raise InvalidArgumentError("give by= (whole groups per chunk) or overlap= (row windows), not both")


def _overlap(opts: Options) -> tuple[int, int]:
    """``overlap=`` as (rows before, rows after); an int means rows before."""
    value = opts.overlap
    pair = (value, 0) if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not isinstance(pair, tuple)
        or len(pair) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in pair)
    ):
        raise InvalidArgumentError(
            f"overlap must be an int >= 0 (rows before each chunk) or a pair (before, after), "
            f"got {value!r}"
        )
    return pair[0], pair[1]


def _specs(
    data: pd.DataFrame | pd.Series,
    ranges: list[tuple[int, int]],
    first_index: int,
    opts: Options,
    groups: grouping.Groups | None,
) -> list[ChunkSpec]:
    """Specs for planned ranges: group chunks take their rows from the group
    layout (ranges are in group-sorted order); ``overlap=`` adds context rows."""
    if groups is not None:
        specs = [groups.spec(first_index + i, a, b) for i, (a, b) in enumerate(ranges)]
        return label_specs(data, specs)
    specs = label_specs(data, planning.number(ranges, first_index))
    before, after = _overlap(opts)
    if before or after:
        n = len(data)
        specs = [
            dataclasses.replace(s, lead=min(before, s.start), tail=min(after, n - s.stop))
            for s in specs
        ]
    return specs


def _cut(ranges: list[tuple[int, int]], groups: grouping.Groups | None) -> list[tuple[int, int]]:
    return ranges if groups is None else groups.snap(ranges)


def label_specs(data: pd.DataFrame | pd.Series, specs: Iterable[ChunkSpec]) -> list[ChunkSpec]:
    """Fill in each chunk's first and last index labels."""
    index = data.index
    out = []
    for s in specs:
        if s.n_rows:
            first = s.start if s.rows is None else int(s.rows[0])
            last = s.stop - 1 if s.rows is None else int(s.rows[-1])
            s = dataclasses.replace(s, first_label=index[first], last_label=index[last])
        out.append(s)
    return out


@dataclass
class _State:
    """Everything one run accumulates while its chunks execute."""

    opts: Options
    records: dict[int, ChunkRecord] = field(default_factory=dict)
    results: dict[int, Any] = field(default_factory=dict)
    assembled: Any = None  # the final result when the transport built it without concat
    first_failure: int | None = None
    stopped: bool = False
    t0: float = field(default_factory=time.time)
    progress: Progress | None = None
    # Chunks to run alone before they are blamed (see handle), the one
    # running alone now, and those that have had their run alone.
    solo: deque[ChunkSpec] = field(default_factory=deque)
    solo_running: int | None = None
    solo_runs: set[int] = field(default_factory=set)

    def add(self, specs: list[ChunkSpec]) -> None:
        for s in specs:
            # transport/bytes_moved: how the chunk travelled (see transport.py).
            rec = self.records[s.index] = ChunkRecord(s, extra={"transport": "none", "bytes_moved": 0})
            if s.groups is not None:
                rec.extra["groups"] = list(s.groups)

    def should_retry(self, rec: ChunkRecord, out: Outcome) -> bool:
        # A run alone to clear a chunk's name (see handle) is not a retry.
        free = 1 if rec.spec.index in self.solo_runs else 0
        if rec.attempts - free > self.opts.retries:
            return False
        for item in self.opts.retry_on:
            if item == out.status:
                return True
            if (
                isinstance(item, type)
                and out.error is not None
                and out.error.exception is not None
                and isinstance(out.error.exception, item)
            ):
                return True
        return False

    def handle(self, out: Outcome, pending: deque[ChunkSpec], *, crowded: bool = False) -> None:
        """Record ``out``; ``crowded``: other chunks were running when it ended."""
        if out.key == self.solo_running:
            self.solo_running = None
        rec = self.records[out.key]
        rec.seconds = out.seconds
        rec.worker = out.worker or rec.worker
        started = out.started if out.started is not None else time.time() - out.seconds
        rec.started_at = started - self.t0
        if out.status == "ok":
            rec.status = "ok"
            rec.error = None
            self.results[out.key] = out.value
            if self.progress is not None:
                self.progress.advance(rec.spec.n_rows)
            return
        rec.error = out.error
        if out.status == "cancelled":
            rec.status = "cancelled"
            return
        if (
            out.status == "crashed"
            and crowded
            and out.key not in self.solo_runs
            and out.error is not None
            and out.error.exit_code == -signal.SIGKILL
        ):
            # SIGKILL is what the kernel's OOM killer sends, and it picks the
            # biggest process, not necessarily the one whose chunk used the
            # memory: run this chunk once more on its own before blaming it.
            self.solo_runs.add(out.key)
            self.solo.append(rec.spec)
            return
        if self.should_retry(rec, out):
            pending.appendleft(rec.spec)
            return
        rec.status = out.status
        if self.first_failure is None:
            self.first_failure = out.key
        if self.opts.errors == "raise":
            self.stopped = True


def drive(
    backend: Backend,
    specs: Iterable[ChunkSpec],
    source: Callable[[ChunkSpec], Any],
    state: _State,
    *,
    window: int | None = None,
    transport: Transport | None = None,
) -> Generator[ChunkRecord, None, None]:
    """Run ``specs`` on ``backend``, yielding each chunk's final record in input order.

    A record is yielded as soon as it and every chunk before it are final, so
    a consumer can write results out incrementally (their values are in
    ``state.results``; pop them to free memory). ``window`` bounds how many
    chunks are taken from ``specs`` and not yet yielded (running, waiting for
    a retry or finished out of order): with a lazy ``specs`` iterator, memory
    then depends on the window, not on the input's size. ``source(spec)``
    makes the chunk's payload (rows, or a recipe the worker reads itself).
    The run stops early when ``state.stopped`` is set (``errors="raise"``).
    With ``transport``, results may come back through it (shared memory) and
    the report notes how each chunk travelled.
    """
    pending: deque[ChunkSpec] = deque()  # retries, ahead of new chunks
    upcoming = iter(specs)
    order: deque[int] = deque()  # taken from ``specs``, not yet yielded
    exhausted = False
    timeout = state.opts.timeout

    def submit(spec: ChunkSpec) -> None:
        rec = state.records[spec.index]
        rec.attempts += 1
        rec.backend = backend.name
        trim = (spec.lead, spec.tail) if spec.lead or spec.tail else None
        sink = None
        if transport is not None:
            # Results of overlapping chunks are trimmed in the worker; they travel plainly.
            sink = transport.sink(spec) if trim is None else None
            rec.extra["transport"] = transport.name
            rec.extra["bytes_moved"] = transport.input_bytes(spec)
        task = ChunkTask(spec.index, spec.start, spec.stop, source(spec), sink, trim)
        backend.submit(spec.index, task, timeout=timeout)

    def take() -> ChunkSpec | None:
        """The next chunk of the plan, if the window has room for it."""
        nonlocal exhausted
        if exhausted or (window is not None and len(order) >= window):
            return None
        spec = next(upcoming, None)
        if spec is None:
            exhausted = True
            return None
        if spec.index not in state.records:
            state.add([spec])
        order.append(spec.index)
        return spec

    try:
        while not state.stopped:
            while order and state.records[order[0]].status is not None:
                yield state.records[order.popleft()]
            if state.solo or state.solo_running is not None:
                # A chunk to run alone: let the others finish, then run it
                # with nothing beside it.
                if state.solo_running is None and not backend.in_flight():
                    spec = state.solo.popleft()
                    state.solo_running = spec.index
                    submit(spec)
            else:
                while not state.stopped and backend.capacity() > 0:
                    nxt = pending.popleft() if pending else take()
                    if nxt is None:
                        break
                    submit(nxt)
            if not (backend.in_flight() or pending or state.solo) and (exhausted or not order):
                break
            outs = backend.wait()
            crowded = len(outs) > 1 or backend.in_flight() > 0
            for out in outs:
                if out.status == "ok" and transport is not None:
                    _receive(transport, state.records[out.key], out)
                state.handle(out, pending, crowded=crowded)
    finally:
        # Stopped early (errors="raise", Ctrl-C, a bug, the consumer gave up):
        # nothing may keep running.
        for out in backend.cancel():
            rec = state.records[out.key]
            if rec.status is None:
                rec.status = "cancelled"
                rec.worker = out.worker or rec.worker
        for spec in [*pending, *state.solo]:
            if state.records[spec.index].status is None:
                state.records[spec.index].status = "cancelled"


def _receive(transport: Transport, rec: ChunkRecord, out: Outcome) -> None:
    """Turn a worker's reply into the chunk's result; note how it travelled."""
    try:
        out.value, how, nbytes = transport.receive(out.key, out.value)
    except Exception as exc:  # e.g. the result file vanished
        out.status, out.value = "error", None
        out.error = ErrorInfo.from_exception(exc)
        out.error.message = f"the chunk's result could not be read back: {out.error.message}"
        return
    if how != "none":
        rec.extra["transport"] = f"{transport.name}/{how}"
        rec.extra["bytes_moved"] = rec.extra.get("bytes_moved", 0) + nbytes


def _drive(
    backend: Backend,
    specs: list[ChunkSpec],
    transport: Transport,
    state: _State,
) -> None:
    """Run ``specs`` on ``backend`` until all are final or the run stops."""
    for _ in drive(backend, specs, transport.source, state, transport=transport):
        pass


def execute(
    data: pd.DataFrame | pd.Series,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    opts: Options,
    pool: Backend | None = None,
) -> Run:
    """Run ``func`` over the chunks of ``data``; never raises for a chunk's failure."""
    validate(data, func, opts)
    workers = opts.workers or (pool.workers if pool is not None else available_cpus())
    job = ChunkJob(func, args, kwargs, require_frame=opts.combine is None)
    mode = opts.backend
    n_rows = len(data)
    state = _State(opts)
    groups = grouping.layout(data, opts.by) if opts.by is not None else None

    # -- plan ---------------------------------------------------------------
    probe: list[ChunkSpec] = []
    probe_end = 0
    if mode == "auto" and opts.timeout is None:
        if n_rows == 0 or workers == 1:
            ranges = planning.plan_ranges(n_rows, workers=workers, chunk_rows=opts.chunk_rows,
                                          n_chunks=opts.n_chunks)
        elif opts.user_chunking:
            ranges = planning.plan_ranges(n_rows, workers=workers, chunk_rows=opts.chunk_rows,
                                          n_chunks=opts.n_chunks)[:1]
        else:
            ranges = [(0, planning.probe_rows(n_rows, workers))]
        ranges = _cut(ranges, groups)
        probe = _specs(data, ranges, 0, opts, groups)
        probe_end = ranges[-1][1] if ranges else 0
    elif mode == "auto":
        mode = "process"  # only processes can stop a chunk that runs too long
    state.add(probe)
    job_blob: bytes | None = None
    if mode in ("process", "dask") or (mode == "auto" and probe and probe_end < n_rows):
        job_blob = pickle_job(job)  # fail before any work starts

    progress = Progress(n_rows, len(probe) or 1, opts.progress)
    state.progress = progress
    reason = ""
    backend_name = mode
    own_backend: Backend | None = None
    transport: Transport | None = None
    try:
        # -- auto: measure the first chunk in-process, then decide ----------
        rest_from = 0
        if mode == "dask" and pool is None:
            # Connect first: the cluster's size is the default worker count.
            pool = own_backend = make_backend("dask", opts.workers or 0, address=opts.address)
            workers = opts.workers or pool.workers
        if mode == "auto":
            serial = SerialBackend()
            serial.start_job(job, None)
            transport = InProcessTransport(data)
            _drive(serial, probe, transport, state)
            if opts.locate:
                _locate(serial, transport, data, state, probe)
            rest_from = probe_end
            if rest_from >= n_rows:
                reason = (
                    "in-process: " + ("one CPU available" if workers == 1 and n_rows else
                                      "input too small for parallelism to pay off")
                )
                backend_name = "serial"
            else:
                mode, reason = _decide(data, probe, state, workers, rest_from, pool, opts)
        # -- the remaining chunks --------------------------------------------
        if rest_from < n_rows or (n_rows == 0 and not probe):
            lead_in = (mode == "process" and not probe and groups is None and not opts.overlap
                       and wants_buffers(data, opts.transport, frames=opts.combine is None))
            specs = _plan_rest(data, opts, workers, rest_from, len(probe),
                               in_process=mode == "serial" and bool(probe), lead_in=lead_in,
                               groups=groups)
            state.add(specs)
            progress.set_total_chunks(len(state.records))
            if not state.stopped:
                if pool is not None and mode == pool.name:
                    backend = pool
                else:
                    backend = own_backend = make_backend(
                        mode, min(workers, max(1, len(specs))), start_method=opts.start_method
                    )
                if transport is not None:
                    transport.close()
                transport = None
                transport = _transport_for(data, backend, owned=backend is own_backend, opts=opts,
                                           frames=job.require_frame)
                for s in probe:
                    if s.index in state.results:
                        state.results[s.index] = transport.prime(s.index, s, state.results[s.index])
                backend.start_job(job, job_blob if backend.crosses_processes else None)
                try:
                    _drive(backend, specs, transport, state)
                    if opts.locate:
                        _locate(backend, transport, data, state, specs)
                finally:
                    backend.end_job()
                _assemble(transport, state)
                if not reason:
                    reason = f"{backend.name}: requested"
            else:
                for s in specs:
                    state.records[s.index].status = "cancelled"
            backend_name = "+".join(dict.fromkeys(r.backend for r in state.records.values() if r.backend))
    finally:
        progress.close()
        if own_backend is not None:
            own_backend.shutdown()
        if transport is not None:
            transport.close()
    return _finish(data, state, opts, backend_name or mode, reason)


def _locate(
    backend: Backend, transport: Transport, data: pd.DataFrame | pd.Series, state: _State, specs: list[ChunkSpec]
) -> None:
    """``locate=True``: find the failing rows of the chunks of ``specs`` that failed."""
    from .locate import locate_failures

    records = [state.records[s.index] for s in specs]
    locate_failures(backend, transport, data, records, timeout=state.opts.timeout)


def _decide(
    data: pd.DataFrame | pd.Series,
    probe: list[ChunkSpec],
    state: _State,
    workers: int,
    rest_from: int,
    pool: Backend | None,
    opts: Options,
) -> tuple[str, str]:
    """After the in-process first chunk: processes or in-process for the rest?"""
    n_rows = len(data)
    probe_rows = sum(s.n_rows for s in probe)
    seconds = sum(state.records[s.index].seconds for s in probe)
    if pool is not None:
        start = pool.describe_worker_start()
    else:
        start = 0.01 + 0.01 * workers if _fork_default(opts) else 0.6 + 0.05 * workers
    rest_rows = n_rows - rest_from
    left = seconds / max(probe_rows, 1) * rest_rows
    if left < start:
        # Starting workers alone costs more than finishing here; skip measuring data.
        return "serial", (
            f"in-process: about {left:.3f} s of work left, less than starting "
            f"{workers} worker processes ({start:.3f} s)"
        )
    moved = 0.0
    results = [state.results[s.index] for s in probe if s.index in state.results]
    if results and probe_rows:
        out_bytes = sum(nbytes(r, deep=True) for r in results)
        moved = out_bytes / probe_rows
    inherit = pool is None and _fork_default(opts)
    if not inherit and probe_rows:
        moved += nbytes(data.iloc[:probe_rows], deep=True) / probe_rows
    rest_chunks = len(planning.plan_ranges(rest_rows, workers=workers, chunk_rows=opts.chunk_rows,
                                           n_chunks=opts.n_chunks))
    est = planning.choose_execution(
        probe_seconds=seconds, probe_rows=probe_rows, rest_rows=rest_rows, rest_chunks=rest_chunks,
        workers=workers, start_seconds=start, moved_bytes_per_row=moved,
    )
    if est.use_processes:
        return (pool.name if pool is not None else "process"), est.reason
    return "serial", est.reason


def _fork_default(opts: Options) -> bool:
    from .backends.process import default_start_method

    return (opts.start_method or default_start_method()) == "fork"


def _plan_rest(
    data: pd.DataFrame | pd.Series,
    opts: Options,
    workers: int,
    rest_from: int,
    first_index: int,
    *,
    in_process: bool,
    lead_in: bool = False,
    groups: grouping.Groups | None = None,
) -> list[ChunkSpec]:
    rest_rows = len(data) - rest_from
    if in_process and not opts.user_chunking:
        # Staying in-process: one call for the rest costs least.
        ranges = [(rest_from, len(data))]
    elif lead_in and not opts.user_chunking:
        ranges = planning.lead_in_ranges(rest_rows, workers=workers, offset=rest_from)
    else:
        ranges = planning.plan_ranges(rest_rows, workers=workers, chunk_rows=opts.chunk_rows,
                                      n_chunks=opts.n_chunks, offset=rest_from)
    return _specs(data, _cut(ranges, groups), first_index, opts, groups)


def _transport_for(
    data: pd.DataFrame | pd.Series, backend: Backend, *, owned: bool, opts: Options, frames: bool
) -> Transport:
    mode = opts.transport
    if mode == "auto" and backend.name != "process":
        mode = "pickle"  # workers elsewhere (dask) may not see this machine's files
    return make_transport(
        data, mode, in_process=not backend.crosses_processes,
        inherit=owned and backend.inherits_memory, frames=frames and opts.combine is None,
    )


def _assemble(transport: Transport, state: _State) -> None:
    """Let the transport build the final frame (result buffers) before it closes."""
    keys = sorted(state.records)
    ok = [k for k in keys if state.records[k].status == "ok"]
    if state.opts.combine is not None or not ok:
        return
    parts = [(state.records[k].spec.start, state.records[k].spec.stop, state.results[k]) for k in ok]
    assembled, values = transport.assemble(parts, complete=len(ok) == len(keys))
    if assembled is not None:
        state.assembled = assembled
    else:
        for k, value in zip(ok, values, strict=True):
            state.results[k] = value


# -- collect and report ---------------------------------------------------------


def _finish(data: pd.DataFrame | pd.Series, state: _State, opts: Options, backend: str, reason: str) -> Run:
    records = [state.records[k] for k in sorted(state.records)]
    if opts.locate:
        for r in records:
            r.extra.setdefault("failing_labels", None)
    ok_parts = [state.results[r.spec.index] for r in records if r.status == "ok"]
    errors = {r.spec.index: _exception_for(r) for r in records if r.failed}
    if opts.combine is not None:
        result = opts.combine(ok_parts) if ok_parts or not errors else None
    elif state.assembled is not None:
        result = state.assembled
    elif ok_parts:
        result = concat_results(ok_parts, source=data)
    else:
        result = pd.DataFrame() if isinstance(data, pd.DataFrame) else pd.Series(dtype=object)
    first = errors.get(state.first_failure) if state.first_failure is not None else None
    run = Run(result, records, list(errors.values()), mode=opts.errors, backend=backend,
              reason=reason, first_error=first)
    run.chunks = [r.spec for r in records]
    if errors:
        for exc in errors.values():
            _attach_report(exc, run.report)
    return run


def _exception_for(rec: ChunkRecord) -> Exception:
    """The exception a failed chunk stands for, with a note naming the chunk."""
    info = rec.error
    assert info is not None
    where = f"{rec.describe()} failed in {rec.worker or 'an unknown worker'}"
    if rec.attempts > 1:
        where += f" after {rec.attempts} attempts"
    details = {
        "chunk": rec.spec.index, "start": rec.spec.start, "stop": rec.spec.stop,
        "first_label": rec.spec.first_label, "last_label": rec.spec.last_label,
        "status": rec.status, "error_type": info.type_name, "error_message": info.message,
        "traceback": info.traceback, "worker": rec.worker,
    }
    exc: Exception
    located = rec.extra.get("failing_labels")
    if rec.status == "error" and isinstance(info.exception, Exception):
        exc = info.exception
        if info.remote:
            exc.__cause__ = RemoteTraceback(info.traceback)
        note = f"framepar: {where}"
        if note not in getattr(exc, "__notes__", []):
            exc.add_note(note)
        if located:
            exc.add_note(_located_note(located))
        return exc
    if rec.status == "crashed":
        exc = WorkerCrashedError(f"{where}: {info.message}", info=details)
    elif rec.status == "timeout":
        exc = ChunkTimeoutError(f"{where}: {info.message}", info=details)
    else:
        why = (
            "it could not be rebuilt in this process"
            if info.exception is None
            else "it is a BaseException, reported here rather than allowed to stop this process"
        )
        exc = RemoteExceptionError(
            f"{where}: {info.type_name}: {info.message} ({why}; the traceback text is in .traceback)",
            info=details,
        )
        exc.__cause__ = RemoteTraceback(info.traceback)
    if located:
        exc.add_note(_located_note(located))
    return exc


def _located_note(labels: list[Any]) -> str:
    shown = ", ".join(repr(x) for x in labels[:10]) + (", ..." if len(labels) > 10 else "")
    what = "row" if len(labels) == 1 else f"{len(labels)} rows"
    return f"framepar: first failing {what} (index labels): [{shown}]"


def _attach_report(exc: BaseException, report: pd.DataFrame) -> None:
    if isinstance(exc, ChunkError):
        exc.report = report
    # Exceptions with __slots__ refuse new attributes; the report is on the Run.
    with contextlib.suppress(AttributeError, TypeError):
        exc.framepar_report = report  # type: ignore[attr-defined]


def raise_for_run(run: Run) -> None:
    """Raise what a failed run stands for (see :meth:`Run.raise_for_errors`)."""
    if not run.errors:
        return
    if run.mode == "raise" and run._first_error is not None:
        raise run._first_error
    raise ChunksFailed(summarize(run), run.errors, partial=run.result, report=run.report)


def summarize(run: Run) -> str:
    failed = run.report[run.report["status"].isin(("error", "crashed", "timeout"))]
    parts = [
        f"chunk {row.chunk} {row.status} ({row.error_type}: {str(row.error_message)[:80]})"
        for row in failed.head(3).itertuples()
    ]
    more = f", and {len(failed) - 3} more" if len(failed) > 3 else ""
    return f"{len(failed)} of {len(run.report)} chunks failed: " + "; ".join(parts) + more


def map_chunks_result(run: Run) -> Any:
    """What ``map_chunks`` returns for a finished run, raising or warning per ``errors``."""
    if run.errors:
        if run.mode == "skip":
            warnings.warn(ChunkFailureWarning(summarize(run) + "; the result leaves them out"), stacklevel=3)
        else:
            raise_for_run(run)
    return run.result
