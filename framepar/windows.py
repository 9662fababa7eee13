"""``df.framepar.rolling(window).apply(func)``: row windows across chunk boundaries.

Chunks stay contiguous; each is handed the ``window`` rows before it (and
after it, for centred windows) through the core's ``overlap=`` option, runs
pandas' own ``rolling(...).apply`` and has the borrowed rows cut from its
result, so every row sees the same window as in the whole-frame call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from .exceptions import InvalidArgumentError, InvalidArgumentTypeError
from .methods import pop_options, run_chunks


def rolling_chunk(chunk: Any, window_kwargs: dict[str, Any], call: dict[str, Any]) -> Any:
    return chunk.rolling(**window_kwargs).apply(**call)


class ParallelRolling:
    """What ``df.framepar.rolling(...)`` returns; ``apply`` equals pandas'."""

    def __init__(self, data: pd.DataFrame | pd.Series, window_kwargs: dict[str, Any], options: dict[str, Any]) -> None:
        window = window_kwargs["window"]
        if isinstance(window, bool) or not isinstance(window, int):
            raise InvalidArgumentTypeError(
                f"framepar's rolling needs a window given as a number of rows, got {window!r}; "
                "time-based windows (offsets) are not supported"
            )
        if window < 0:
            raise InvalidArgumentError(f"window must be >= 0, got {window}")
        if window_kwargs.get("step") not in (None, 1):
            raise InvalidArgumentError("rolling(step=...) is not supported")
        self._data = data
        self._window_kwargs = window_kwargs
        self._options = options
        # One row more than the window on each side needed: closed= may widen it.
        after = window if window_kwargs.get("center") else 0
        self._overlap = (window, after)

    def apply(
        self, func: Callable[..., Any], raw: bool = False, engine: Any = None,
        engine_kwargs: dict[str, Any] | None = None, args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None, **options: Any,
    ) -> Any:
        """pandas' ``Rolling.apply(func, raw, engine, engine_kwargs, args, kwargs)``."""
        opts = {**self._options, **pop_options(options)}
        if options:
            raise InvalidArgumentError(f"unexpected keyword arguments {sorted(options)}")
        call = {"func": func, "raw": raw, "engine": engine, "engine_kwargs": engine_kwargs,
                "args": args, "kwargs": kwargs}
        return run_chunks(self._data, rolling_chunk, (self._window_kwargs, call), opts,
                          overlap=self._overlap)
