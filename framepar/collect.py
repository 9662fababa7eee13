"""Reassembling per-chunk results the way pandas would have built them whole.

``pd.concat`` already widens dtypes as the whole-frame call would (an int
column with NaN in one chunk becomes float64). Two things it does not do:
categoricals whose categories differ per chunk fall back to object (the
whole-frame call keeps a categorical with every category), and empty chunk
results with placeholder dtypes can widen the others; both are handled here.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pandas as pd
from pandas.api.types import CategoricalDtype

Frame = pd.DataFrame | pd.Series


def concat_results(parts: list[Frame]) -> Frame:
    """Concatenate chunk results in order, keeping the index as returned."""
    if not parts:
        raise ValueError("no results to concatenate")
    nonempty = [p for p in parts if len(p)]
    # Empty results add no rows; their dtypes (often object for a filtered
    # chunk built by hand) must not widen the real ones. If all are empty the
    # first stands for the columns and dtypes of the result.
    use = nonempty or parts[:1]
    if len(use) == 1:
        return use[0]
    return pd.concat(_unify_categoricals(use))


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
