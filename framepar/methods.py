"""pandas' element-, row- and column-wise methods, run chunk by chunk.

Each ``*_chunk`` function is what a worker runs: the pandas method itself on
one chunk, so every pandas rule (dtype inference, ``result_type``, ``raw``,
``na_action``...) applies unchanged; the parent only concatenates.
:func:`run_chunks` is the one way the accessor calls the core.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from .api import run
from .collect import concat_results
from .core import map_chunks_result
from .exceptions import InvalidArgumentError
from .planning import ChunkSpec

# The core's options: every accessor method takes them as keyword arguments;
# all other keyword arguments go to the user's function, as in pandas.
CORE_OPTIONS = (
    "workers", "chunk_rows", "n_chunks", "backend", "errors", "progress", "retries",
    "retry_on", "timeout", "start_method", "address",
)

Assemble = Callable[[list[Any], list[ChunkSpec]], Any]


def pop_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take the core's options out of ``kwargs`` (what is left is the function's)."""
    return {name: kwargs.pop(name) for name in CORE_OPTIONS if name in kwargs}


def run_chunks(
    data: pd.DataFrame | pd.Series,
    chunk_fn: Callable[..., Any],
    chunk_args: tuple[Any, ...],
    options: dict[str, Any],
    assemble: Assemble | None = None,
    **core: Any,
) -> Any:
    """Run ``chunk_fn(chunk, *chunk_args)`` through the core and return the
    result as ``map_chunks`` would (raising or warning per ``errors``).

    ``assemble(parts, specs)`` replaces the plain ordered concatenation when
    the parts need the plan to be put together (restoring input order after
    group chunks, renumbering); it gets the results and specs of the chunks
    that succeeded, in chunk order.
    """
    if "combine" in options:
        raise InvalidArgumentError("combine= is for framepar.map_chunks; pandas methods combine their own results")
    if assemble is None:
        return map_chunks_result(run(data, chunk_fn, *chunk_args, **options, **core))
    outcome = run(data, chunk_fn, *chunk_args, combine=list, **options, **core)
    parts = outcome.result or []
    status = outcome.report["status"].tolist()
    specs = [s for s, st in zip(outcome.chunks, status, strict=True) if st == "ok"]
    outcome.result = assemble(parts, specs) if parts else None
    return map_chunks_result(outcome)


def concat_inferred(parts: list[Any], specs: list[ChunkSpec] | None = None, *, columns: bool = False) -> Any:
    """Concatenate chunk results, inferring dtypes as pandas does on the whole.

    pandas infers the dtype of values a function returned from all of them at
    once: ``None`` in some rows and floats in others make float64. Chunk by
    chunk, a chunk of only ``None`` is object and the concatenation stays
    object; such results are inferred again from their values. With
    ``columns``, each column of frame results too (``DataFrame.map`` infers
    column by column; row-wise ``apply`` builds frames otherwise).
    """
    result = concat_results(parts)
    nonempty = [p for p in parts if len(p)]
    if len(nonempty) < 2:
        return result
    if isinstance(result, pd.Series):
        if result.dtype == object and len({str(p.dtype) for p in nonempty}) > 1:
            return _reinfer(result)
        return result
    if columns and isinstance(result, pd.DataFrame) and result.columns.is_unique:
        mixed = [
            col for col in result.columns
            if result[col].dtype == object
            and all(isinstance(p, pd.DataFrame) and col in p.columns for p in nonempty)
            and len({str(p[col].dtype) for p in nonempty}) > 1
        ]
        if mixed:
            result = result.copy(deep=False)
            for col in mixed:
                result[col] = _reinfer(result[col])
    return result


def concat_inferred_columns(parts: list[Any], specs: list[ChunkSpec] | None = None) -> Any:
    return concat_inferred(parts, specs, columns=True)


def _reinfer(s: pd.Series) -> pd.Series:
    return pd.Series(s.tolist(), index=s.index, name=s.name)


def restore_order(result: Any, positions: list[np.ndarray], index: pd.Index, *, fill: bool = False) -> Any:
    """Rows of chunk results back into input order.

    ``positions`` holds each chunk's input rows, aligned with its result;
    ``index`` is the input's index. The result takes the input's own index
    object (or its masked subset), as pandas' reindexing would, so attributes
    such as a DatetimeIndex's ``freq`` carry over. With ``fill``, input rows no
    chunk returned come back as missing values (pandas' transform does so for
    rows whose group key is missing).
    """
    where = np.concatenate(positions) if positions else np.empty(0, np.int64)
    if len(where) != len(result):
        raise AssertionError("chunk results are not aligned with their rows")
    if len(positions) > 1:
        result = result.take(np.argsort(where, kind="stable"))
    if len(where) == len(index):
        return result.set_axis(index, axis=0)
    if fill:
        result = result.set_axis(np.sort(where), axis=0).reindex(np.arange(len(index)))
        return result.set_axis(index, axis=0)
    mask = np.zeros(len(index), dtype=bool)
    mask[where] = True
    return result.set_axis(index[mask], axis=0)


# -- chunk functions (run in the workers) --------------------------------------


def apply_rows_chunk(
    chunk: pd.DataFrame, func: Any, raw: bool, result_type: Any, args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    return chunk.apply(func, axis=1, raw=raw, result_type=result_type, args=args, **kwargs)


def apply_columns_chunk(
    positions: pd.Series, data: pd.DataFrame, func: Any, raw: bool, result_type: Any,
    args: tuple[Any, ...], kwargs: dict[str, Any],
) -> Any:
    """``axis=0``: the chunk is a run of column positions; each column is whole."""
    part = data.iloc[:, positions.to_numpy()]
    return part.apply(func, axis=0, raw=raw, result_type=result_type, args=args, **kwargs)


def assemble_columns(parts: list[Any], specs: list[ChunkSpec]) -> Any:
    """``axis=0`` results: Series (one value per column) follow each other,
    frames (one column per column) sit side by side."""
    nonempty = [p for p in parts if p is not None]
    if len(nonempty) == 1:
        return nonempty[0]
    if all(isinstance(p, pd.DataFrame) for p in nonempty):
        return pd.concat(nonempty, axis=1)
    return concat_inferred(nonempty)


def series_apply_chunk(chunk: pd.Series, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return chunk.apply(func, args=args, **kwargs)


def series_map_chunk(chunk: pd.Series, arg: Any, na_action: Any, kwargs: dict[str, Any]) -> Any:
    return chunk.map(arg, na_action=na_action, **kwargs)


def frame_map_chunk(chunk: pd.DataFrame, func: Any, na_action: Any, kwargs: dict[str, Any]) -> Any:
    return chunk.map(func, na_action=na_action, **kwargs)
