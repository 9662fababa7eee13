"""Reassembling per-chunk results the way pandas would have built them whole.

``pd.concat`` already widens dtypes as the whole-frame call would (an int
column with NaN in one chunk becomes float64). Two things it does not do:
categoricals whose categories differ per chunk fall back to object (the
whole-frame call keeps a categorical with every category), and empty chunk
results with placeholder dtypes can widen the others; both are handled here.

When every part has the same columns and dtypes (the common case) the parts
are joined column by column instead (:func:`concat_columns`): the same
values, dtypes and index as ``pd.concat``, several times faster, and a
column the function passed through unchanged (a view of the input, under
copy-on-write) is not copied at all: the result shares it with the input,
exactly as the serial call's result does.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import CategoricalDtype

Frame = pd.DataFrame | pd.Series
COPY_ON_WRITE = int(pd.__version__.split(".")[0]) >= 3


def concat_results(parts: list[Frame], source: Frame | None = None) -> Frame:
    """Concatenate chunk results in order, keeping the index as returned.

    ``source`` is the input the parts were computed from; columns passed
    through from it are reused instead of copied (see the module docstring).
    """
    if not parts:
        raise ValueError("no results to concatenate")
    nonempty = [p for p in parts if len(p)]
    # Empty results add no rows; their dtypes (often object for a filtered
    # chunk built by hand) must not widen the real ones. If all are empty the
    # first stands for the columns and dtypes of the result.
    use = nonempty or parts[:1]
    if len(use) == 1:
        return use[0]
    fast = concat_columns(use, source)
    if fast is not None:
        return fast
    return pd.concat(_unify_categoricals(use))


def concat_columns(parts: list[Frame], source: Frame | None = None) -> pd.DataFrame | None:
    """Row-wise concatenation of frames that agree on columns and dtypes, or None."""
    if not all(isinstance(p, pd.DataFrame) for p in parts):
        return None
    frames: list[pd.DataFrame] = parts  # type: ignore[assignment]
    first = frames[0]
    dtypes = list(first.dtypes)
    for f in frames[1:]:
        if not (f.columns.equals(first.columns) and f.columns.dtype == first.columns.dtype
                and f.columns.names == first.columns.names and list(f.dtypes) == dtypes):
            return None
    if any(not isinstance(d, np.dtype) and not hasattr(d, "construct_array_type") for d in dtypes):
        return None
    if any(f.attrs != first.attrs for f in frames[1:]) or any(f.flags.allows_duplicate_labels is False
                                                              for f in frames):
        return None
    index = first.index.append([f.index for f in frames[1:]])
    n = len(index)
    shared = _source_columns(source, n) if COPY_ON_WRITE else {}
    columns: dict[int, Any] = {}
    for pos, dtype in enumerate(dtypes):
        pieces = [f.iloc[:, pos] for f in frames]
        reused = _passed_through(pieces, shared) if shared else None
        if reused is not None:
            reused = reused.copy(deep=False)
            reused.index = index
            columns[pos] = reused
        elif isinstance(dtype, np.dtype):
            values = np.concatenate([p.to_numpy() for p in pieces])
            # Wrapped so that pandas keeps object columns as object (no str inference).
            columns[pos] = pd.Series(values, index=index, dtype=dtype, copy=False) if dtype.kind == "O" else values
        else:
            columns[pos] = type(pieces[0].array)._concat_same_type([p.array for p in pieces])
    out = pd.DataFrame(columns, index=index, copy=False) if columns else pd.DataFrame(index=index)
    out.columns = first.columns
    out.attrs = dict(first.attrs)
    return out


def _source_columns(source: Frame | None, n: int) -> dict[tuple[int, str], pd.Series]:
    """The input's numpy columns by (data address, dtype), when it has ``n`` rows."""
    if not isinstance(source, pd.DataFrame) or len(source) != n:
        return {}
    out = {}
    for pos, dtype in enumerate(source.dtypes):
        if isinstance(dtype, np.dtype) and dtype.kind != "O":
            col = source.iloc[:, pos]
            values = col.to_numpy()
            if values.strides == (dtype.itemsize,):
                out[(values.__array_interface__["data"][0], dtype.str)] = col
    return out


def _passed_through(pieces: list[pd.Series], shared: dict[tuple[int, str], pd.Series]) -> pd.Series | None:
    """The input column when ``pieces`` are consecutive views covering all of it."""
    dtype = pieces[0].dtype
    if not isinstance(dtype, np.dtype):
        return None
    arrays = [p.to_numpy() for p in pieces]
    address = arrays[0].__array_interface__["data"][0]
    col = shared.get((address, dtype.str))
    if col is None:
        return None
    for arr in arrays:
        if arr.__array_interface__["data"][0] != address or arr.strides not in ((dtype.itemsize,), (0,)):
            return None
        address += arr.nbytes
    return col


def _unify_categoricals(parts: list[Frame]) -> list[Frame]:
    if all(isinstance(p, pd.Series) for p in parts):
        union = _union_dtype([p.dtype for p in parts])
        if union is None:
            return parts
        return [p.astype(union) for p in parts]
    if not all(isinstance(p, pd.DataFrame) for p in parts):
        return parts
    frames: list[pd.DataFrame] = parts  # type: ignore[assignment]
    if any(not f.columns.is_unique for f in frames):
        return parts
    changes: dict[Any, CategoricalDtype] = {}
    for col in frames[0].columns:
        if all(col in f.columns for f in frames):
            union = _union_dtype([f[col].dtype for f in frames])
            if union is not None:
                changes[col] = union
    if not changes:
        return parts
    out: list[Frame] = []
    for f in frames:
        f = f.copy(deep=False)
        for col, dtype in changes.items():
            f[col] = f[col].astype(dtype)
        out.append(f)
    return out


def _union_dtype(dtypes: list[Any]) -> CategoricalDtype | None:
    """The categorical dtype holding every chunk's categories, or None when
    the chunks agree already or are not all unordered categoricals."""
    if not all(isinstance(d, CategoricalDtype) for d in dtypes):
        return None
    if all(d == dtypes[0] for d in dtypes) or any(d.ordered for d in dtypes):
        return None
    categories = pd.Index(dtypes[0].categories)
    for d in dtypes[1:]:
        categories = categories.append(d.categories[~d.categories.isin(categories)])
    if all(d.categories.is_monotonic_increasing for d in dtypes):
        # astype("category") sorts its categories; so would the whole-frame call.
        with contextlib.suppress(TypeError):
            categories = categories.sort_values()
    return CategoricalDtype(categories, ordered=False)
