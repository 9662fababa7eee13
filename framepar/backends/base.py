"""What every execution backend provides.

A backend runs opaque work items: a *job* (a picklable callable, registered
once per run) applied to many small *payloads*. It knows nothing about
DataFrames. The orchestrator submits ``(key, payload)`` pairs, at most
``capacity()`` at a time, and gathers :class:`Outcome` records from
:meth:`Backend.wait`; retries, ordering and reporting stay in the
orchestrator.
"""

from __future__ import annotations

import traceback as _traceback
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

Status = Literal["ok", "error", "crashed", "timeout", "cancelled"]


@dataclass
class ErrorInfo:
    """What is known about a failure, whether or not the exception survived.

    ``exception`` is the live exception object when it could be obtained (the
    same object in-process, a rebuilt one from a worker) and ``None`` when it
    could not be rebuilt; ``remote`` tells whether it came from another
    process, in which case ``traceback`` is that process's text.
    """

    type_name: str
    message: str
    traceback: str
    exception: BaseException | None = None
    remote: bool = False
    exit_code: int | None = None

    @classmethod
    def from_exception(cls, exc: BaseException, *, remote: bool = False) -> ErrorInfo:
        return cls(
            type_name=qualified_name(type(exc)),
            message=str(exc),
            traceback="".join(_traceback.format_exception(exc)),
            exception=exc,
            remote=remote,
        )


def qualified_name(cls: type) -> str:
    module = cls.__module__
    return cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"


@dataclass
class Outcome:
    """How one submitted work item ended."""

    key: int
    status: Status
    value: Any = None
    error: ErrorInfo | None = None
    seconds: float = 0.0
    worker: str = ""
    started: float | None = None  # time.time() when it started, for timelines


Job = Callable[[Any], Any]


class Backend(ABC):
    """Runs ``job(payload)`` for submitted payloads; see the module docstring."""

    name: ClassVar[str]
    #: whether workers see the parent's memory as it was when they started
    #: (fork), so payloads may refer to it instead of carrying data
    inherits_memory: bool = False
    #: whether payloads and results cross a process boundary (and so must pickle)
    crosses_processes: bool = False

    @property
    @abstractmethod
    def workers(self) -> int:
        """How many items can run at once."""

    @abstractmethod
    def start_job(self, job: Job, job_blob: bytes | None) -> None:
        """Make ``job`` the callable applied to the payloads submitted next.

        ``job_blob`` is the job already pickled (with cloudpickle) by the caller,
        for backends that cross processes.
        """

    @abstractmethod
    def submit(self, key: int, payload: Any, *, timeout: float | None = None) -> None:
        """Start ``job(payload)``; its outcome comes back from :meth:`wait` under ``key``."""

    @abstractmethod
    def wait(self, timeout: float | None = None) -> list[Outcome]:
        """Block until at least one item ends (or ``timeout`` passes); return the ended ones."""

    @abstractmethod
    def in_flight(self) -> int:
        """Items submitted whose outcome has not been returned yet."""

    @abstractmethod
    def cancel(self) -> list[Outcome]:
        """Stop everything in flight now; return a ``cancelled`` outcome for each."""

    def capacity(self) -> int:
        """How many more items may be submitted now."""
        return max(0, self.workers - self.in_flight())

    def end_job(self) -> None:  # noqa: B027 - optional hook
        """The run is over: drop per-run state (the pool itself may stay warm)."""

    @abstractmethod
    def shutdown(self) -> None:
        """Stop all workers and release every resource. Idempotent."""

    def describe_worker_start(self) -> float:
        """Estimated seconds to get all workers ready for a new run (0 when warm)."""
        return 0.0
