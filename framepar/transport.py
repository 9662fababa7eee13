"""How a chunk's rows reach the function: the input side of transport.

A *source* is a small picklable object with a ``load()`` method that runs
where the function runs and returns the chunk. Which kind of source a run
uses is decided once per run by the orchestrator:

* :class:`InlineSource`: the rows themselves (pickled when they cross to a
  worker process). In-process backends use it without any pickling.
* :class:`InheritedSource`: a reference to the whole input, which forked
  workers already hold in their copy of the parent's memory; nothing is sent
  but ``(token, start, stop)``.
* :class:`ArrowSource`: the input was written once as an Arrow IPC file in
  shared memory (or on disk); the worker maps it and slices its rows without
  copying. Columns Arrow cannot carry travel pickled beside it.

The output side (:mod:`framepar.results`) is chosen with it: a
:class:`ResultSink` travels with each task and tells the worker whether to
write its result into the run's shared files or send it back pickled.

Transports by name (the ``transport=`` option):

* ``"pickle"``: chunks and results are pickled through the worker's pipe.
* ``"arrow"``: input and results go through Arrow IPC files in ``/dev/shm``
  (a private temp directory on disk, with a warning, when it has no room).
* ``"memmap"``: the same files, memory-mapped from a private temp directory
  on disk (for inputs larger than shared memory).
* ``"auto"``: pickle for small inputs; above :data:`INPUT_THRESHOLD_BYTES`,
  forked per-call workers inherit the input (the fastest way in: nothing is
  copied at all) and other pools get the Arrow file; results above
  :data:`~framepar.results.RESULT_THRESHOLD_BYTES` come back through shared
  memory.

The caller's frame is never modified: in-process chunks are copies under
pandas 2 (pandas 3's copy-on-write makes slices safe), worker processes only
ever see their own copy.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from . import framecodec, passthrough, results, shm
from .backends import _worker
from .planning import ChunkSpec

TRANSPORTS = ("auto", "pickle", "arrow", "memmap")
# Inputs smaller than this are cheaper to pickle than to write to a file.
INPUT_THRESHOLD_BYTES = 8 * 2**20

PANDAS_COPY_ON_WRITE = int(pd.__version__.split(".")[0]) >= 3


def take(data: pd.DataFrame | pd.Series, spec: ChunkSpec) -> pd.DataFrame | pd.Series:
    """The rows of ``spec`` (a slice, or the listed positions for group chunks)."""
    if spec.rows is not None:
        return data.take(spec.rows)
    return data.iloc[spec.start - spec.lead : spec.stop + spec.tail]


@dataclass(frozen=True)
class InlineSource:
    data: Any

    def load(self) -> Any:
        return passthrough.protect(self.data, self)


@dataclass(frozen=True)
class InheritedSource:
    token: str
    start: int
    stop: int
    rows: np.ndarray | None = None

    def load(self) -> Any:
        whole = _worker.INHERITED[self.token]
        if self.rows is not None:
            return whole.take(self.rows)
        return whole.iloc[self.start : self.stop]


@dataclass(frozen=True)
class ArrowSource:
    path: str
    start: int
    stop: int
    layout: framecodec.Layout
    rest: pd.DataFrame | None

    def load(self) -> Any:
        # Mapped per chunk, privately: writes by the function stay in this
        # chunk's own pages, so a retried chunk sees the input unchanged.
        mapped = framecodec.Mapped(self.path)
        table = mapped.table.slice(self.start, self.stop - self.start)
        frame = framecodec.decode(self.layout, table, self.rest, mapped=mapped, start=self.start)
        return passthrough.protect(frame, self)


@dataclass(frozen=True)
class ResultSink:
    """Travels with a task: how the worker should send its result back."""

    shm: str | None
    disk: str
    threshold: int
    target: results.BufferTarget | None = None

    def before(self, chunk: Any) -> tuple[Any, Any]:
        return getattr(chunk, "index", None), passthrough.fingerprints(chunk)

    def deliver(self, out: Any, before: tuple[Any, Any]) -> Any:
        chunk_index, keys = before
        passed = passthrough.passed_columns(out, keys, chunk_index)
        if self.target is not None and chunk_index is not None:
            try:
                written = self.target.write(out, chunk_index, passed, self.shm, self.disk)
            except OSError:
                written = None  # e.g. no room for the strings file: send it the other way
            if written is not None:
                return written
        return results.share(out, self.shm, self.disk, self.threshold, passed)


class Transport:
    """Makes the source for each chunk of one run; :meth:`close` frees what it holds.

    With a :class:`~framepar.shm.Workspace` results above ``threshold`` come
    back through files, and with ``buffers`` straight into the result buffers.
    """

    name = "pickle"

    def __init__(
        self,
        data: pd.DataFrame | pd.Series,
        *,
        in_process: bool,
        workspace: shm.Workspace | None = None,
        threshold: int = results.RESULT_THRESHOLD_BYTES,
        buffers: bool = False,
    ) -> None:
        self.data = data
        self.in_process = in_process
        self.workspace = workspace
        self.threshold = threshold
        self.buffers = (
            results.ResultBuffers(data, workspace)
            if buffers and workspace is not None and isinstance(data, pd.DataFrame)
            else None
        )
        self.spans: dict[int, tuple[int, int]] = {}
        self.warned = False

    @property
    def result_name(self) -> str:
        if self.in_process:
            return "none"
        return "pickle" if self.workspace is None else "shared"

    def input_bytes(self, spec: ChunkSpec) -> int:
        """Approximate bytes of input that cross to the worker for ``spec``."""
        if self.in_process:
            return 0
        per_row = _row_bytes(self.data)
        return int(per_row * spec.n_rows)

    def sink(self, spec: ChunkSpec) -> ResultSink | None:
        if self.workspace is None or self.in_process:
            return None
        self.spans[spec.index] = (spec.start, spec.stop)
        target = None
        if self.buffers is not None and spec.rows is None:
            target = self.buffers.target(spec.start)
        return ResultSink(self.workspace.shm, self.workspace.disk, self.threshold, target)

    def prime(self, key: int, spec: ChunkSpec, value: Any) -> Any:
        """A result that came back some other way (the in-process first chunk)."""
        if self.buffers is None or spec.rows is not None:
            return value
        self.spans[key] = (spec.start, spec.stop)
        passed = passthrough.passed_from(self.data, value, spec.start)  # type: ignore[arg-type]
        self.buffers.consider(value, spec.start, spec.stop, passed)
        return self.buffers.store(value, spec.start, spec.stop, passed)

    def receive(self, key: int, value: Any) -> tuple[Any, str, int]:
        """Turn a worker's reply into its result; also says how it came and its size."""
        if self.in_process:
            return value, "none", 0
        how, size = "pickle", nbytes(value)
        start, stop = self.spans.get(key, (0, 0))
        passed: dict[int, int] = {}
        if isinstance(value, (results.SharedResult, results.Written)):
            self._warn_disk(value.on_disk)
            size = value.nbytes
            if isinstance(value, results.SharedResult):
                passed = value.passed
                value, how = value.load(self.data, start), "shared"
            else:
                how = "buffer"
        if self.buffers is not None and key in self.spans:
            if how != "buffer":
                self.buffers.consider(value, start, stop, passed)
            value = self.buffers.store(value, start, stop, passed)
        return value, how, size

    def _warn_disk(self, on_disk: bool) -> None:
        if on_disk and not self.warned:
            self.warned = True
            import warnings

            warnings.warn(shm.SharedMemoryFallbackWarning(
                "shared memory had no room for some chunk results; they went through a private "
                "temp directory on disk instead, which is slower"), stacklevel=4)

    def assemble(self, parts: list[tuple[int, int, Any]], complete: bool) -> tuple[Any, list[Any]]:
        """The final result built without concatenation, or ``(None, parts to concatenate)``."""
        if self.buffers is None:
            return None, [p[2] for p in parts]
        return self.buffers.assemble(parts, complete)

    def source(self, spec: ChunkSpec) -> Any:
        chunk = take(self.data, spec)
        if self.in_process and not PANDAS_COPY_ON_WRITE and spec.rows is None:
            # pandas 2 slices are views: a function that writes to its chunk
            # would write to the caller's frame.
            chunk = chunk.copy()
        return InlineSource(chunk)

    def close(self) -> None:
        if self.buffers is not None:
            self.buffers.close()
        if self.workspace is not None:
            self.workspace.close()
            self.workspace = None
        self.data = None  # type: ignore[assignment]


def _row_bytes(data: pd.DataFrame | pd.Series) -> float:
    return nbytes(data) / max(1, len(data))


def nbytes(obj: Any, *, deep: bool = False) -> int:
    """Memory of a frame or series (``deep`` counts Python objects too); 0 for anything else."""
    if isinstance(obj, pd.DataFrame):
        return int(obj.memory_usage(index=True, deep=deep).sum())
    if isinstance(obj, pd.Series):
        return int(obj.memory_usage(index=True, deep=deep))
    return 0


class InProcessTransport(Transport):
    name = "none"

    def __init__(self, data: pd.DataFrame | pd.Series) -> None:
        super().__init__(data, in_process=True)


class InheritTransport(Transport):
    """Forked workers read their rows from their inherited copy of the input.

    The input must be registered before the workers are forked; replacement
    workers forked later during the same run inherit it too.
    """

    name = "inherit"

    def __init__(self, data: pd.DataFrame | pd.Series, **kwargs: Any) -> None:
        super().__init__(data, in_process=False, **kwargs)
        self.token = secrets.token_hex(8)
        _worker.INHERITED[self.token] = data

    def source(self, spec: ChunkSpec) -> Any:
        return InheritedSource(self.token, spec.start - spec.lead, spec.stop + spec.tail, spec.rows)

    def input_bytes(self, spec: ChunkSpec) -> int:
        return 0

    def close(self) -> None:
        _worker.INHERITED.pop(self.token, None)
        super().close()


class ArrowTransport(Transport):
    """The input is written once as an Arrow IPC file that every worker maps.

    ``on_disk`` puts it in the private temp directory on disk (``"memmap"``);
    otherwise in shared memory when it has room.
    """

    def __init__(self, data: pd.DataFrame | pd.Series, *, on_disk: bool, **kwargs: Any) -> None:
        super().__init__(data, in_process=False, **kwargs)
        assert self.workspace is not None
        self.name = "memmap" if on_disk else "arrow"
        self.encoded = framecodec.encode(data)
        self.path: str | None = None
        table = self.encoded.table
        if table is None:
            self.name = "pickle"  # nothing Arrow can carry
            return
        nbytes = framecodec.file_bytes(table)
        directory = self.workspace.disk if on_disk else self.workspace.pick_dir(nbytes)
        try:
            self.path = framecodec.write(table, directory, "input")
        except OSError:
            if directory == self.workspace.disk:
                raise
            import warnings

            warnings.warn(shm.SharedMemoryFallbackWarning(
                f"shared memory filled up while writing the {nbytes / 2**20:.0f} MiB input; "
                "using a private temp directory on disk instead"), stacklevel=2)
            self.path = framecodec.write(table, self.workspace.disk, "input")
        self.file_row_bytes = table.nbytes / max(1, table.num_rows)
        self.rest_row_bytes = _row_bytes(self.encoded.rest) if self.encoded.rest is not None else 0.0

    def source(self, spec: ChunkSpec) -> Any:
        if self.path is None or spec.rows is not None or spec.lead or spec.tail:
            # Group chunks and chunks with neighbour rows (overlap=) travel inline.
            return super().source(spec)
        rest = framecodec.slice_rest(self.encoded, spec.start, spec.stop)
        return ArrowSource(self.path, spec.start, spec.stop, self.encoded.layout, rest)

    def input_bytes(self, spec: ChunkSpec) -> int:
        if self.path is None or spec.rows is not None or spec.lead or spec.tail:
            return super().input_bytes(spec)
        return int((self.file_row_bytes + self.rest_row_bytes) * spec.n_rows)


def wants_buffers(data: pd.DataFrame | pd.Series, mode: str, *, frames: bool) -> bool:
    """Whether worker processes would write results into result buffers."""
    if not frames or not isinstance(data, pd.DataFrame) or mode == "pickle":
        return False
    return mode != "auto" or nbytes(data) >= INPUT_THRESHOLD_BYTES


def make_transport(
    data: pd.DataFrame | pd.Series,
    mode: str,
    *,
    in_process: bool,
    inherit: bool,
    frames: bool,
    shm_dir: str | None = None,
) -> Transport:
    """The transport for the chunks of one run (see the module docstring).

    ``inherit``: the workers are forked for this run only, so they can
    inherit the input. ``frames``: results are frames to concatenate (no
    ``combine``), so they may be written into result buffers.
    """
    if in_process:
        return InProcessTransport(data)
    if mode == "pickle":
        return Transport(data, in_process=False)
    big = nbytes(data) >= INPUT_THRESHOLD_BYTES
    if mode == "auto":
        workspace = shm.Workspace.create(shm_dir=shm_dir)
        try:
            kwargs: dict[str, Any] = {"workspace": workspace,
                                      "buffers": wants_buffers(data, mode, frames=frames)}
            if inherit:
                return InheritTransport(data, **kwargs)
            if big:
                return ArrowTransport(data, on_disk=False, **kwargs)
            return Transport(data, in_process=False, **kwargs)
        except BaseException:
            workspace.close()
            raise
    on_disk = mode == "memmap"
    workspace = shm.Workspace.create(use_shm=not on_disk, shm_dir=shm_dir)
    try:
        return ArrowTransport(data, on_disk=on_disk, workspace=workspace, threshold=0,
                              buffers=wants_buffers(data, mode, frames=frames))
    except BaseException:
        workspace.close()
        raise
