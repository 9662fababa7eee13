"""Streaming a file through a function: :func:`map_file`, behind ``framepar run``.

::

    plan (io.readers)         recipes: row groups / batches / byte ranges
      │
    core.drive                at most ``window`` chunks between "taken" and "written";
      │                       workers read their recipe, call the function and
      │                       write a part file (io.writers.PartEncoder)
      ▼
    appender (io.writers)     parts appended in input order to a temp file
      │                       next to the output; each one logged (io.state)
      ▼
    rename onto the output    only when every chunk is settled

Memory depends on the chunk size and the worker count, not on the file's
size. The orchestration (backends, retries, timeouts, errors, the report)
is the core's; this module only adds the file-shaped ends.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle

from .backends import make_backend
from .backends.base import Backend, ErrorInfo
from .core import Options, _attach_report, _exception_for, _State, available_cpus, drive, validate
from .exceptions import InvalidArgumentError
from .io.formats import detect, is_gzip
from .io.partition import BucketChunk, PartitionJob
from .io.readers import InputError, InputPlan, plan_input
from .io.state import RunState
from .io.writers import PartEncoder, PartInfo, existing_part, make_appender
from .job import ChunkJob, ChunkTask
from .pickling import pickle_job
from .planning import ChunkSpec
from .progress import Progress
from .report import ChunkRecord, Run
from .transport import InlineSource

FILE_ERRORS = ("raise", "skip", "collect")
# Chunks between "taken from the plan" and "written out", per worker: enough
# to keep every worker busy while the next-in-order chunk finishes.
WINDOW_PER_WORKER = 2


class OutputPathError(InvalidArgumentError):
    """The output path cannot be written safely (explains what to fix)."""


class PartitionError(InputError):
    """The ``by`` partition pass could not read the input (nothing was computed)."""


# ``output_format`` naming a Parquet directory; a path ending in "/" says the same.
PARQUET_DIR = "parquet-dir"


@dataclass
class FileJob:
    """The work item of a file run: read the recipe, call the function, write a part."""

    job: ChunkJob
    encoder: PartEncoder

    def __call__(self, task: ChunkTask) -> PartInfo:
        frame = task.source.load()
        out = self.job(ChunkTask(task.index, task.start, task.stop, InlineSource(frame)))
        return self.encoder.encode(out, task.index, len(frame))


class FileRun(Run):
    """A :class:`Run` whose result is the output file's path (``None`` if none was written)."""

    output: str | None = None


def function_fingerprint(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """Changes when the function's code (its module's source), name or arguments change."""
    h = hashlib.sha256()
    h.update(f"{getattr(func, '__module__', '')}:{getattr(func, '__qualname__', repr(func))}".encode())
    source = None
    try:
        path = inspect.getsourcefile(func)
        if path and os.path.exists(path):
            source = Path(path).read_bytes()
    except TypeError:
        pass
    h.update(source if source is not None else cloudpickle.dumps(func))
    try:
        h.update(cloudpickle.dumps((args, sorted(kwargs.items()))))
    except Exception:
        h.update(repr((args, kwargs)).encode())
    return h.hexdigest()


def check_output(output: Path, inputs: list[str], input_path: str, out_fmt: str,
                 directory: bool = False) -> None:
    """Refuse outputs that would overwrite the input or cannot be written where asked."""
    if directory:
        _check_output_dir(output, inputs)
    elif output.is_dir():
        raise OutputPathError(
            f"output {str(output)!r} is a directory; give a file name inside it, or end it with "
            "'/' for a directory of Parquet files"
        )
    parent = output.parent
    if not parent.is_dir():
        raise OutputPathError(f"the output's directory {str(parent)!r} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise OutputPathError(f"cannot write in {str(parent)!r}; check its permissions")
    target = output.resolve()
    if any(target == Path(f).resolve() for f in inputs):
        raise OutputPathError(f"output {str(output)!r} is the input file; write to another path")
    source = Path(input_path).resolve()
    if source.is_dir() and target.is_relative_to(source):
        raise OutputPathError(
            f"output {str(output)!r} is inside the input directory {input_path!r}; write it elsewhere"
        )
    if is_gzip(output) and out_fmt in ("parquet", "arrow"):
        raise OutputPathError(f"{out_fmt} output is compressed inside the file; drop the .gz suffix")


def _check_output_dir(output: Path, inputs: list[str]) -> None:
    """A directory output replaces only an earlier output of the same kind (part files only)."""
    if output.exists() and not output.is_dir():
        raise OutputPathError(f"output {str(output)!r} exists and is not a directory; remove it or "
                              "drop the trailing '/' to write one file")
    target = output.resolve()
    if any(Path(f).resolve().is_relative_to(target) for f in inputs):
        raise OutputPathError(f"output directory {str(output)!r} holds the input; write elsewhere")
    if output.is_dir():
        others = [p.name for p in output.iterdir() if not is_output_part(p.name)]
        if others:
            raise OutputPathError(
                f"output directory {str(output)!r} holds other files ({', '.join(sorted(others)[:3])}); "
                "framepar replaces only a directory of its own part-NNNNN.parquet files: "
                "name a new directory"
            )


def is_output_part(name: str) -> bool:
    return name.startswith("part-") and name.endswith(".parquet")


def output_mode(output: str, output_format: str | None) -> tuple[bool, str | None]:
    """Whether ``output`` is a directory of Parquet files, and the format left to detect."""
    if output_format is not None and output_format.lower() == PARQUET_DIR:
        return True, "parquet"
    directory = output.endswith(("/", os.sep))
    if directory and output_format is not None and output_format.lower() not in ("parquet", "pq"):
        raise OutputPathError(
            f"output {output!r} ends with '/', a directory of Parquet files; --output-format "
            f"{output_format} cannot be written as a directory (drop the '/' for one file)"
        )
    return directory, "parquet" if directory else output_format


def map_file(
    input: str | os.PathLike[str],
    func: Callable[..., Any],
    output: str | os.PathLike[str],
    *args: Any,
    workers: int | None = None,
    chunk_rows: int | None = None,
    by: str | None = None,
    backend: str = "auto",
    errors: str = "raise",
    retries: int = 0,
    timeout: float | None = None,
    progress: bool | None = None,
    resume: bool = False,
    input_format: str | None = None,
    output_format: str | None = None,
    dtypes: dict[str, Any] | None = None,
    function_id: str | None = None,
    address: str | None = None,
    **kwargs: Any,
) -> FileRun:
    """Stream ``input`` through ``func`` chunk by chunk and write ``output``.

    Inputs: CSV (also ``.csv.gz``), Parquet (a file or a directory of files),
    Arrow IPC / Feather v2, JSON lines; the output in any of these, by suffix
    or ``output_format``. Each worker reads its own chunk from the file and
    writes its own part; the parent appends parts in input order to a
    temporary file next to ``output`` and renames it on success, so ``output``
    never exists half-written. Peak memory depends on ``chunk_rows`` and
    ``workers``, not on the file's size. An ``output`` ending in ``"/"`` (or
    ``output_format="parquet-dir"``) is a directory of Parquet files, one per
    chunk (``part-00000.parquet``, ...; name order is input order), built in a
    temporary directory and renamed on success; it replaces an earlier such
    directory, never one holding other files.

    ``by``: never split the rows of one value of this column across chunks.
    When the file holds each group's rows together (Parquet or Arrow), the
    chunks are cut between groups and the output follows the file's order.
    Otherwise (scattered groups, or CSV / JSON-lines input) a first pass,
    run by the workers, spills the rows into buckets of whole groups in a
    private directory next to the output (removed at the end); each chunk
    then holds whole groups in sorted key order (missing keys last, as one
    group), rows of a group in input order with their index labels, so the
    output comes in the order of ``groupby(by, sort=True, dropna=False)``.
    Memory stays bounded: the parent keeps one count per distinct key. ``errors``: "raise"
    stops at the first failed chunk and writes no output; "skip" (or
    "collect") writes the chunks that succeeded. ``resume=True`` continues an
    interrupted run writing the same ``output`` (only if the input and the
    function are unchanged), computing only the chunks it had not finished.
    ``dtypes`` fixes text columns' types (otherwise inferred once for the
    whole file). Returns a :class:`FileRun`; it does not raise for failed
    chunks (``run.raise_for_errors()`` does).

    ``backend="dask"`` (with ``address=`` the scheduler, as for
    :func:`framepar.map_chunks`): the Dask workers read their chunks from
    ``input`` and write their parts next to ``output`` themselves, so both
    paths must be reachable from the workers under the same name (this
    machine, or a shared filesystem); no rows pass through this process
    until the parts are appended in order.
    """
    opts = Options(workers=workers, chunk_rows=chunk_rows, backend=backend,
                   errors=errors, progress=progress, retries=retries, timeout=timeout,
                   address=address)
    import pandas as pd

    validate(pd.DataFrame(), func, opts)
    if errors not in FILE_ERRORS:
        raise InvalidArgumentError(f"errors must be one of {FILE_ERRORS} for files, got {errors!r}")
    n_workers = workers or available_cpus()
    in_path = os.fspath(input)
    directory, output_format = output_mode(os.fspath(output), output_format)
    out_path = Path(os.fspath(output))
    if backend == "dask":
        # Dask workers run in directories of their own: give them absolute paths.
        in_path, out_path = os.path.abspath(in_path), out_path.absolute()
    out_fmt = detect(out_path, output_format, what="output")
    plan = plan_input(in_path, fmt=input_format, workers=n_workers, chunk_rows=chunk_rows, by=by, dtypes=dtypes)
    check_output(out_path, plan.files, in_path, out_fmt, directory)

    job = ChunkJob(func, args, kwargs, require_frame=True)
    state_files = RunState(out_path, directory=directory)
    compress = is_gzip(out_path) and not directory
    encoder = PartEncoder(out_fmt, str(state_files.parts), compress)
    file_job = FileJob(job, encoder)

    manifest = {
        "input": plan.fingerprint(),
        "function": function_id or function_fingerprint(func, args, kwargs),
        "plan": _plan_key(plan, chunk_rows, by, dtypes, n_workers),
        "output_format": [out_fmt, compress] + (["directory"] if directory else []),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    mode, reason = _choose_backend(backend, n_workers, plan, timeout)
    blob = pickle_job(job) if mode in ("process", "dask") else None  # fails before any work
    if blob is not None:
        blob = cloudpickle.dumps(file_job)

    entries: list[dict[str, Any]] = []
    if resume:
        entries = state_files.load(manifest)
    else:
        state_files.start(manifest)
    return _Runner(plan, file_job, opts, state_files, out_path, out_fmt, compress, entries,
                   mode, reason, blob, n_workers, directory).run()


def _plan_key(plan: InputPlan, chunk_rows: int | None, by: str | None,
              dtypes: dict[str, Any] | None, workers: int) -> Any:
    if isinstance(plan.chunks, list):
        return [plan.format, [c.describe() for c in plan.chunks]]
    return [plan.format, chunk_rows, by, sorted((dtypes or {}).items()), workers]


def _choose_backend(backend: str, workers: int, plan: InputPlan, timeout: float | None) -> tuple[str, str]:
    if backend != "auto":
        return backend, f"{backend}: requested"
    if timeout is not None:
        return "process", "worker processes: a timeout needs a process that can be stopped"
    if workers == 1:
        return "serial", "in-process: one CPU available"
    inputs = plan.partition.n_inputs if plan.partition is not None else None
    if plan.n_chunks is not None and plan.n_chunks <= 1 and (inputs or 0) <= 1:
        return "serial", "in-process: the input is one chunk"
    return "process", f"worker processes: {plan.n_chunks or 'several'} chunks on {workers} workers"


class _Runner:
    def __init__(
        self, plan: InputPlan, job: FileJob, opts: Options, files: RunState, output: Path,
        out_fmt: str, compress: bool, entries: list[dict[str, Any]], mode: str, reason: str,
        blob: bytes | None, workers: int, directory: bool = False,
    ) -> None:
        self.plan = plan
        self.job = job
        self.opts = opts
        self.files = files
        self.output = output
        self.state = _State(opts)
        self.mode = mode
        self.reason = reason
        self.blob = blob
        self.workers = workers
        self.spill: str | None = None
        old = f"{files.partial}.old"
        if entries and not directory:
            os.replace(files.partial, old)
        self.appender = make_appender(out_fmt, str(files.partial), compress=compress, hint=plan.schema,
                                      directory=directory)
        self.settled = {e["chunk"]: e for e in entries}
        self.recipes: dict[int, Any] = {}
        self.specs: dict[int, ChunkSpec] = {}
        self.reusable: dict[int, PartInfo] = {}
        if entries:
            # The interrupted output up to its last settled part is copied into
            # a fresh file; the moved-aside one is kept until that succeeded.
            self.appender.restore([e for e in entries if e.get("status") == "ok"], old)
            if not directory:  # a directory is continued where it is
                os.unlink(old)

    # -- the plan as specs, skipping what an interrupted run settled -----------------
    def _all_specs(self) -> Iterator[tuple[ChunkSpec, Any]]:
        for i, recipe in enumerate(self.plan.chunks):
            rows = int(recipe.rows)
            start = recipe.row_start
            # A --by bucket's rows come from all over the file: no label range.
            labelled = rows and not isinstance(recipe, BucketChunk)
            spec = ChunkSpec(i, start, start + rows, first_label=start if labelled else None,
                             last_label=start + rows - 1 if labelled else None)
            yield spec, recipe

    def _to_run(self) -> Iterator[ChunkSpec]:
        for spec, recipe in self._all_specs():
            self.specs[spec.index] = spec
            if spec.index in self.settled:
                self._reused_record(spec, self.settled[spec.index])
                continue
            part = existing_part(self.job.encoder.path_for(spec.index))
            if part is not None:
                self.reusable[spec.index] = part
                self._reused_record(spec, {"status": "ok", "rows_in": part.rows_in,
                                           "rows_out": part.rows_out})
                continue
            self.recipes[spec.index] = recipe
            yield spec

    def _reused_record(self, spec: ChunkSpec, entry: dict[str, Any]) -> None:
        rec = ChunkRecord(spec, status=entry.get("status", "ok"), attempts=entry.get("attempts", 0),
                          seconds=entry.get("seconds", 0.0), worker=entry.get("worker", ""),
                          backend=entry.get("backend", ""))
        if rec.failed:
            rec.error = ErrorInfo(entry.get("error_type") or "", entry.get("error_message") or "",
                                  entry.get("traceback") or "")
        rec.extra.update(source=_describe(self.plan, spec.index), rows_out=entry.get("rows_out"),
                         reused=True)
        self.state.records[spec.index] = rec
        if rec.status == "ok" and self.state.progress is not None:
            self.state.progress.advance(spec.n_rows)

    # -- settling chunks in order ------------------------------------------------------
    def _log(self, rec: ChunkRecord, entry: dict[str, Any] | None) -> None:
        e: dict[str, Any] = {
            "chunk": rec.spec.index, "status": rec.status, "attempts": rec.attempts,
            "seconds": rec.seconds, "worker": rec.worker, "backend": rec.backend,
            "rows_in": rec.spec.n_rows, "rows_out": rec.extra.get("rows_out"),
        }
        if rec.failed and rec.error is not None:
            e.update(error_type=rec.error.type_name, error_message=rec.error.message,
                     traceback=rec.error.traceback)
        e.update(entry or {})
        self.files.record(e)

    def _settle(self, results: list[tuple[int, dict[str, Any] | None, str | None]]) -> bool:
        """Record what the appender settled; False when a chunk failed and errors='raise'."""
        ok = True
        for chunk, entry, error in results:
            rec = self.state.records[chunk]
            if error is not None:
                rec.status = "error"
                rec.error = ErrorInfo("framepar.OutputMismatchError", error,
                                      f"framepar.OutputMismatchError: {error}")
                if self.state.first_failure is None:
                    self.state.first_failure = chunk
                if self.opts.errors == "raise":
                    ok = False
            self._log(rec, entry)
        return ok

    def _append(self, chunk: int, info: PartInfo) -> bool:
        rec = self.state.records[chunk]
        rec.extra["rows_out"] = info.rows_out
        if info.rows_in != rec.spec.n_rows:  # text estimates become exact
            rec.spec = dataclasses.replace(rec.spec, stop=rec.spec.start + info.rows_in)
        return self._settle(self.appender.add(chunk, info))

    def _append_reusable_before(self, index: float) -> bool:
        ok = True
        for chunk in sorted(k for k in self.reusable if k < index):
            ok = self._append(chunk, self.reusable.pop(chunk)) and ok
        return ok

    def run(self) -> FileRun:
        state = self.state
        total_rows = self.plan.rows or 0
        progress = Progress(total_rows, self.plan.n_chunks or 0, self.opts.progress)
        state.progress = progress
        backend: Backend | None = None
        finished = False
        try:
            if self.mode == "dask":
                # As many chunks at once as the cluster has threads, unless workers= says.
                backend = make_backend("dask", self.opts.workers or 0, address=self.opts.address)
            else:
                n_chunks = self.plan.n_chunks or self.workers
                if self.plan.partition is not None:
                    n_chunks = max(n_chunks, self.plan.partition.n_inputs or self.workers)
                n_backend = max(1, min(self.workers, n_chunks))
                backend = make_backend(self.mode, n_backend)
            if self.plan.partition is not None:
                self._partition(backend)
            specs = self._to_run()
            backend.start_job(self.job, self.blob if backend.crosses_processes else None)
            window = WINDOW_PER_WORKER * backend.workers
            ok = True
            chunks = drive(backend, specs, self._source, state, window=window)
            try:
                for rec in chunks:
                    self.recipes.pop(rec.spec.index, None)
                    rec.extra.update(source=_describe(self.plan, rec.spec.index), reused=False)
                    ok = self._append_reusable_before(rec.spec.index) and ok
                    if rec.status == "ok":
                        ok = self._append(rec.spec.index, state.results.pop(rec.spec.index)) and ok
                    else:
                        self._log(rec, None)
                    if not ok:
                        break
            finally:
                chunks.close()  # stops whatever still runs when we leave early
            if ok and not state.stopped:
                ok = self._append_reusable_before(float("inf"))
                ok = self._settle(_finish_held(self.appender)) and ok
            failed = any(r.failed for r in state.records.values())
            if failed and self.opts.errors == "raise":
                self.appender.close()
                self.files.discard()  # no output, nothing to resume
            else:
                self.appender.finish()
                self.appender.close()
                self.files.commit()
            finished = True
        finally:
            progress.close()
            if backend is not None:
                backend.end_job()
                backend.shutdown()
            if not finished:
                # Interrupted (Ctrl-C, a bug): keep the state so --resume can continue.
                self.appender.close()
                self.files.close()
            if self.spill is not None:
                shutil.rmtree(self.spill, ignore_errors=True)
        return self._result()

    def _partition(self, backend: Backend) -> None:
        """The ``by`` partition pass: the workers spill the input's rows into buckets."""
        part = self.plan.partition
        assert part is not None
        # Inside the run's state directory: next to the output (same file
        # system, room for data of the output's size), 0700, and removed with
        # the state should this process be killed before the finally below.
        self.spill = tempfile.mkdtemp(prefix="spill-", dir=self.files.dir)
        n = len(self.plan.chunks)
        done = frozenset(i for i in range(n) if i in self.settled
                         or existing_part(self.job.encoder.path_for(i)) is not None)
        job = PartitionJob(part.partitioner, self.spill, done)
        backend.start_job(job, cloudpickle.dumps(job) if backend.crosses_processes else None)
        state = _State(dataclasses.replace(self.opts, errors="raise", timeout=None))
        # A pass over the whole input: worth its own bar on a big file.
        state.progress = Progress(self.plan.rows or 0, part.n_inputs or 0, self.opts.progress,
                                  desc="framepar: partitioning")
        recipes: dict[int, Any] = {}

        def specs() -> Iterator[ChunkSpec]:
            for i, recipe in enumerate(part.inputs):
                recipes[i] = recipe
                yield ChunkSpec(i, recipe.row_start, recipe.row_start + int(recipe.rows))

        described: dict[int, str] = {}
        chunks = drive(backend, specs(), lambda s: recipes[s.index], state,
                       window=WINDOW_PER_WORKER * backend.workers)
        try:
            for rec in chunks:
                recipe = recipes.pop(rec.spec.index, None)
                if rec.status != "ok":
                    described[rec.spec.index] = recipe.describe() if recipe is not None else ""
                    break
        finally:
            chunks.close()
            backend.end_job()
            state.progress.close()
        records = sorted(state.records.values(), key=lambda r: (not r.failed, r.spec.index))
        failed = next((r for r in records if r.status != "ok"), None)
        if failed is not None:
            index = failed.spec.index
            recipe = recipes.get(index)
            where = described.get(index) or (recipe.describe() if recipe is not None else "")
            error = failed.error
            why = f"{error.type_name}: {error.message}" if error is not None else failed.status
            self.appender.close()
            self.files.discard()
            raise PartitionError(f"--by: the partition pass failed on input chunk {index} ({where}): "
                                 f"{' '.join(str(why).split())}; nothing was computed")
        self.plan.chunks = [dataclasses.replace(c, spill=self.spill) for c in self.plan.chunks]

    def _source(self, spec: ChunkSpec) -> Any:
        return self.recipes[spec.index]

    def _result(self) -> FileRun:
        records = dict(self.state.records)
        for index, spec in self.specs.items():
            if index not in records:
                records[index] = ChunkRecord(spec, status="cancelled")
        ordered = [records[k] for k in sorted(records)]
        for rec in ordered:
            rec.extra.setdefault("source", _describe(self.plan, rec.spec.index))
            rec.extra.setdefault("rows_out", None)
            rec.extra.setdefault("reused", False)
        backend = "+".join(dict.fromkeys(r.backend for r in ordered if r.backend)) or self.mode
        errors = {r.spec.index: _exception_for(r) for r in ordered if r.failed}
        first = errors.get(self.state.first_failure) if self.state.first_failure is not None else None
        wrote = self.output.exists() and not (errors and self.opts.errors == "raise")
        run = FileRun(str(self.output) if wrote else None, ordered, list(errors.values()),
                      mode=self.opts.errors, backend=backend, reason=self.reason, first_error=first)
        run.output = str(self.output) if wrote else None
        for exc in errors.values():
            _attach_report(exc, run.report)
        return run


def _finish_held(appender: Any) -> list[tuple[int, dict[str, Any] | None, str | None]]:
    finish = getattr(appender, "finish_held", None)
    return finish() if finish is not None else []


def _describe(plan: InputPlan, index: int) -> str:
    chunks = plan.chunks
    if isinstance(chunks, list) and index < len(chunks):
        return str(chunks[index].describe())
    return ""
