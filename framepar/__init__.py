"""framepar: run your function over a pandas DataFrame on every core.

Row chunks go to worker processes, results come back in the original order,
and every chunk ends with a line in a report that says what happened.
"""

from __future__ import annotations

from . import accessor as _accessor  # noqa: F401  (registers df.framepar and s.framepar)
from ._version import __version__
from .api import map_chunks, run
from .exceptions import (
    ChunkCancelledError,
    ChunkError,
    ChunkFailureWarning,
    ChunksFailed,
    ChunkTimeoutError,
    FrameparError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    NotPicklableError,
    RemoteExceptionError,
    SharedMemoryFallbackWarning,
    WorkerCrashedError,
)
from .executor import Executor
from .filerun import FileRun, map_file
from .groupby import GroupResultMismatchError
from .job import ChunkResultTypeError
from .report import Run

__all__ = [
    "ChunkCancelledError",
    "ChunkError",
    "ChunkFailureWarning",
    "ChunkResultTypeError",
    "ChunkTimeoutError",
    "ChunksFailed",
    "Executor",
    "FileRun",
    "FrameparError",
    "GroupResultMismatchError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "NotPicklableError",
    "RemoteExceptionError",
    "Run",
    "SharedMemoryFallbackWarning",
    "WorkerCrashedError",
    "__version__",
    "map_chunks",
    "map_file",
    "run",
]
