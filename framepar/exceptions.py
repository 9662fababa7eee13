"""framepar's exceptions and warnings.

The hierarchy::

    FrameparError                       base of everything framepar raises itself
    ├── InvalidArgumentError            (also ValueError) a bad option value
    ├── InvalidArgumentTypeError        (also TypeError) an option of the wrong type
    ├── NotPicklableError               (also TypeError) func/args cannot be sent to workers
    ├── ChunkError                      one chunk failed and no original exception exists
    │   ├── WorkerCrashedError          the worker process died (exit code or signal)
    │   ├── ChunkTimeoutError           (also TimeoutError) the chunk ran past ``timeout``
    │   ├── ChunkCancelledError         never ran to the end because the run stopped
    │   └── RemoteExceptionError        the chunk raised, but the exception could not be
    │                                   rebuilt in this process (type name kept)
    └── ChunksFailed                    (also ExceptionGroup) errors="collect": every failed
                                        chunk's exception, plus ``.partial`` and ``.report``

    ChunkFailureWarning (UserWarning)   errors="skip": some chunks failed
    SharedMemoryFallbackWarning         /dev/shm had no room: data went through a
      (UserWarning)                     private temp directory on disk instead

A chunk's own exception (a ``ValueError`` raised by the user's function) is
re-raised with its original type; framepar adds a note naming the chunk and
attaches the worker's traceback text as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


class FrameparError(Exception):
    """Base class of the exceptions framepar raises itself."""


class InvalidArgumentError(FrameparError, ValueError):
    """An option has a value framepar cannot use."""


class InvalidArgumentTypeError(FrameparError, TypeError):
    """An option, or the input, has a type framepar cannot use."""


class NotPicklableError(FrameparError, TypeError):
    """The function or one of its arguments cannot be sent to worker processes."""


class RemoteTraceback(Exception):
    """Carries a worker's traceback text; attached as ``__cause__``."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return "\n\n" + self.text.rstrip() + "\n\n(traceback above is from the worker)"


class ChunkError(FrameparError):
    """A chunk failed and there is no original exception to re-raise.

    Attributes mirror the chunk's report row: ``chunk``, ``start``, ``stop``,
    ``first_label``, ``last_label``, ``status``, ``error_type``,
    ``error_message``, ``traceback`` and ``worker``; ``report`` is the run's
    report when the error left a run.
    """

    def __init__(self, message: str, *, info: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        info = info or {}
        self.chunk: int | None = info.get("chunk")
        self.start: int | None = info.get("start")
        self.stop: int | None = info.get("stop")
        self.first_label: Any = info.get("first_label")
        self.last_label: Any = info.get("last_label")
        self.status: str | None = info.get("status")
        self.error_type: str | None = info.get("error_type")
        self.error_message: str | None = info.get("error_message")
        self.traceback: str | None = info.get("traceback")
        self.worker: str | None = info.get("worker")
        self.report: pd.DataFrame | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        info = {k: getattr(self, k) for k in _INFO_KEYS}
        return (_rebuild_chunk_error, (type(self), str(self), info))


_INFO_KEYS = (
    "chunk", "start", "stop", "first_label", "last_label", "status",
    "error_type", "error_message", "traceback", "worker",
)


def _rebuild_chunk_error(cls: type[ChunkError], message: str, info: dict[str, Any]) -> ChunkError:
    return cls(message, info=info)


class WorkerCrashedError(ChunkError):
    """The worker process running the chunk died (non-zero exit code or a signal)."""


class ChunkTimeoutError(ChunkError, TimeoutError):
    """The chunk ran longer than ``timeout`` seconds; its worker was killed."""


class ChunkCancelledError(ChunkError):
    """The chunk did not finish because the run stopped early."""


class RemoteExceptionError(ChunkError):
    """The chunk raised an exception that could not be rebuilt in this process."""


class ChunksFailed(FrameparError, ExceptionGroup):  # type: ignore[misc]
    """``errors="collect"``: one or more chunks failed.

    An ``ExceptionGroup`` of the failed chunks' exceptions (so ``except*
    ValueError`` works), with ``.partial`` (the combined result of the chunks
    that succeeded) and ``.report`` (the per-chunk report).
    """

    partial: Any
    report: pd.DataFrame | None

    def __new__(
        cls,
        message: str,
        exceptions: Sequence[Exception],
        *,
        partial: Any = None,
        report: pd.DataFrame | None = None,
    ) -> ChunksFailed:
        self = super().__new__(cls, message, exceptions)
        self.partial = partial
        self.report = report
        return self

    def __init__(
        self,
        message: str,
        exceptions: Sequence[Exception],
        *,
        partial: Any = None,
        report: pd.DataFrame | None = None,
    ) -> None:
        super().__init__(message, exceptions)

    def derive(self, excs: Sequence[Exception]) -> ChunksFailed:  # type: ignore[override]
        # Called by except* to split the group; keep the report on each part.
        return ChunksFailed(self.message, excs, partial=self.partial, report=self.report)


class ChunkFailureWarning(UserWarning):
    """``errors="skip"``: some chunks failed and were left out of the result."""


class SharedMemoryFallbackWarning(UserWarning):
    """Shared memory had no room, so data went through a temp directory on disk."""
