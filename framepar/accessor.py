"""The ``framepar`` accessor on pandas objects: ``df.framepar`` and ``s.framepar``.

Registered through pandas' extension API when ``framepar`` is imported; no
pandas class is patched. Every method returns what the pandas method of the
same name returns on the same data, computed chunk by chunk through the core
(:func:`framepar.run`), and takes the core's options as keyword arguments
(``workers``, ``chunk_rows``, ``n_chunks``, ``backend``, ``errors``,
``progress``, ``retries``, ``retry_on``, ``timeout``, ``start_method``,
``address``); other
keyword arguments go to the user's function, as in pandas. An exception
raised by the function reaches the caller with its own type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from . import api
from .exceptions import InvalidArgumentError
from .groupby import ParallelGroupBy, make_groupby
from .methods import (
    apply_columns_chunk,
    apply_rows_chunk,
    assemble_columns,
    concat_inferred,
    concat_inferred_columns,
    frame_map_chunk,
    pop_options,
    run_chunks,
    series_apply_chunk,
    series_map_chunk,
)
from .report import Run
from .windows import ParallelRolling

ACCESSOR_NAME = "framepar"


def _axis(axis: Any) -> int:
    if axis in (0, "index", "rows"):
        return 0
    if axis in (1, "columns"):
        return 1
    raise InvalidArgumentError(f"axis must be 0/'index' or 1/'columns', got {axis!r}")


def _rolling(
    data: pd.DataFrame | pd.Series, window: Any, min_periods: int | None, center: bool,
    win_type: str | None, on: Any, closed: str | None, step: int | None, method: str,
    options: dict[str, Any],
) -> ParallelRolling:
    if win_type is not None:
        raise InvalidArgumentError("rolling(win_type=...) has no apply in pandas")
    window_kwargs: dict[str, Any] = {
        "window": window, "min_periods": min_periods, "center": center, "closed": closed,
        "step": step, "method": method,
    }
    if on is not None:
        window_kwargs["on"] = on
    return ParallelRolling(data, window_kwargs, options)


class _Common:
    def __init__(self, obj: pd.DataFrame | pd.Series) -> None:
        self._obj = obj

    def map_chunks(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """:func:`framepar.map_chunks` on this object."""
        return api.map_chunks(self._obj, func, *args, **kwargs)

    def run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Run:
        """:func:`framepar.run` on this object."""
        return api.run(self._obj, func, *args, **kwargs)


@pd.api.extensions.register_dataframe_accessor(ACCESSOR_NAME)
class DataFrameAccessor(_Common):
    """``df.framepar``: pandas' DataFrame methods on every core."""

    _obj: pd.DataFrame

    def apply(
        self, func: Any, axis: Any = 0, raw: bool = False, result_type: str | None = None,
        args: tuple[Any, ...] = (), **kwargs: Any,
    ) -> Any:
        """``df.apply(func, axis, raw, result_type, args, **kwargs)``.

        ``axis=1`` splits the rows into chunks; ``axis=0`` splits the columns
        (each column is passed whole).
        """
        options = pop_options(kwargs)
        if _axis(axis) == 1:
            return run_chunks(self._obj, apply_rows_chunk, (func, raw, result_type, tuple(args), kwargs),
                              options, assemble=concat_inferred)
        positions = pd.Series(np.arange(self._obj.shape[1]))
        return run_chunks(
            positions, apply_columns_chunk, (self._obj, func, raw, result_type, tuple(args), kwargs),
            options, assemble=assemble_columns,
        )

    def map(self, func: Callable[..., Any], na_action: str | None = None, **kwargs: Any) -> Any:
        """``df.map(func, na_action, **kwargs)``: element-wise."""
        options = pop_options(kwargs)
        return run_chunks(self._obj, frame_map_chunk, (func, na_action, kwargs), options,
                          assemble=concat_inferred_columns)

    def groupby(
        self, by: Any = None, level: Any = None, as_index: bool = True, sort: bool = True,
        group_keys: bool = True, observed: bool | None = None, dropna: bool = True,
        **options: Any,
    ) -> ParallelGroupBy:
        """``df.groupby(...)`` whose ``apply``, ``transform``, ``agg`` and group-wise
        ``rolling/expanding(...).apply`` run on whole groups in parallel.

        ``by`` and ``level`` name columns or index levels (or are functions of
        the index); ``observed=None`` means pandas' default.
        """
        rest = dict(options)
        opts = pop_options(rest)
        if rest:
            raise InvalidArgumentError(f"unexpected keyword arguments {sorted(rest)}")
        return make_groupby(self._obj, by, level, as_index, sort, group_keys, observed, dropna, opts)

    def rolling(
        self, window: int, min_periods: int | None = None, center: bool = False,
        win_type: str | None = None, on: Any = None, closed: str | None = None,
        step: int | None = None, method: str = "single", **options: Any,
    ) -> ParallelRolling:
        """``df.rolling(window, ...)`` whose ``apply`` runs in parallel: each chunk
        borrows the rows its windows reach into from its neighbours."""
        return _rolling(self._obj, window, min_periods, center, win_type, on, closed, step, method,
                        options)


@pd.api.extensions.register_series_accessor(ACCESSOR_NAME)
class SeriesAccessor(_Common):
    """``s.framepar``: pandas' Series methods on every core."""

    _obj: pd.Series

    def apply(self, func: Any, args: tuple[Any, ...] = (), **kwargs: Any) -> Any:
        """``s.apply(func, args, **kwargs)``."""
        options = pop_options(kwargs)
        return run_chunks(self._obj, series_apply_chunk, (func, tuple(args), kwargs), options,
                          assemble=concat_inferred)

    def map(self, arg: Any, na_action: str | None = None, **kwargs: Any) -> Any:
        """``s.map(arg, na_action)``: ``arg`` a function, dict or Series."""
        options = pop_options(kwargs)
        return run_chunks(self._obj, series_map_chunk, (arg, na_action, kwargs), options,
                          assemble=concat_inferred)

    def rolling(
        self, window: int, min_periods: int | None = None, center: bool = False,
        win_type: str | None = None, on: Any = None, closed: str | None = None,
        step: int | None = None, method: str = "single", **options: Any,
    ) -> ParallelRolling:
        """``s.rolling(window, ...)`` whose ``apply`` runs in parallel."""
        return _rolling(self._obj, window, min_periods, center, win_type, on, closed, step, method,
                        options)
