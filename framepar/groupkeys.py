"""Group keys a chunk cannot compute from its own rows, resolved once in the parent.

A chunk holds some rows of the input, so it can regroup itself on column and
index-level names or functions of the index, but not on:

* arrays, Series, Index objects (positional, or aligned to the whole input);
* ``pd.Grouper(freq=...)``, whose bins depend on the whole input's time span;
* categorical keys with ``observed=False``, whose unobserved categories
  pandas lists although no chunk holds them.

:func:`resolve` turns such keys into values computed on the whole input
(aligned, binned) that travel with each chunk as hidden columns after the
frame's own ones (:class:`Carried`); the worker takes them off again before
anything sees the chunk (:meth:`Keys.split`). Unobserved categories are each
given to one chunk, the one holding the group that precedes them in pandas'
order (:class:`Unobserved`): that chunk's pandas lists them, so pandas itself
decides what an empty group gives.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .exceptions import InvalidArgumentError, InvalidArgumentTypeError

PANDAS_3 = int(pd.__version__.split(".")[0]) >= 3
NO_GROUP = -2  # owner code of the categories listed when no group has rows


@dataclass(frozen=True)
class Carried:
    """A key whose values ride along as hidden column ``slot`` (after the frame's).

    ``column`` names the in-axis column it stands for (``pd.Grouper(key=col,
    freq=...)``): the chunk's column takes the binned values so that pandas
    treats the key as that column. ``dates`` holds the time bins of a single
    ``freq`` key carried as a categorical of them.
    """

    slot: int
    name: Hashable
    dtype: Any
    column: Hashable | None = None
    dates: pd.Index | None = field(default=None, compare=False)
    binned: bool = False  # a pd.Grouper(freq=...) key's time bins


@dataclass(frozen=True)
class Unobserved:
    """Categories pandas lists without rows, each owned by one group.

    ``owned[code]`` lists the category codes that follow the group of code
    ``code`` in pandas' order (``-1`` for the missing-key group, ``NO_GROUP``
    when no row has a key); ``target`` is the column name or carried key.
    """

    target: Any
    dtype: pd.CategoricalDtype
    owned: dict[int, tuple[int, ...]]


@dataclass(frozen=True)
class Keys:
    """``by`` for the chunks (carried keys as :class:`Carried`) and for the
    whole input (carried keys as Series), and what the worker needs."""

    by: Any
    parent_by: Any
    carried: tuple[Any, ...] = ()
    n_columns: int = 0
    columns: pd.Index | None = None
    unobserved: Unobserved | None = None
    freq: Carried | None = None  # one time-bin key: results list its empty bins

    @property
    def chunk_items(self) -> list[Any]:
        return [] if self.by is None else self.by if isinstance(self.by, list) else [self.by]

    def carry(self, data: pd.DataFrame) -> pd.DataFrame:
        """``data`` with the carried values as extra columns (a shallow copy)."""
        if not self.carried:
            return data
        out = data.copy(deep=False)
        out.columns = pd.RangeIndex(data.shape[1])
        for i, values in enumerate(self.carried):
            out[data.shape[1] + i] = values
        return out

    def split(self, chunk: pd.DataFrame) -> tuple[pd.DataFrame, list[pd.Series]]:
        """A chunk's own columns and the carried keys of its rows."""
        if not self.carried:
            return chunk, []
        assert self.columns is not None
        n = self.n_columns
        keys = []
        for i in range(len(self.carried)):
            s = chunk.iloc[:, n + i]
            keys.append(s.set_axis(chunk.index, axis=0))
        return chunk.iloc[:, :n].set_axis(self.columns, axis=1), keys


# -- resolving ------------------------------------------------------------------------


def resolve(
    data: pd.DataFrame, by: Any, level: Any, *, sort: bool, dropna: bool, observed: Any,
) -> Keys:
    """Check ``by`` / ``level`` and carry what a chunk cannot compute."""
    if by is None:
        if level is None:
            raise InvalidArgumentError("groupby needs by= or level=")
        keys = Keys(by=None, parent_by=None)
        return _with_unobserved(data, keys, level, sort=sort, dropna=dropna, observed=observed)
    is_list = isinstance(by, list)
    items = list(by) if is_list else [by]
    if is_list and _is_value_list(data, items):
        # pandas takes a list of plain values as long as the frame as one key
        items, is_list = [_values_array(items)], False
    carried: list[Any] = []
    chunk_items: list[Any] = []
    parent_items: list[Any] = []
    freq: Carried | None = None
    for item in items:
        if isinstance(item, pd.Grouper) and getattr(item, "freq", None) is not None:
            key, values, parent = _time_bins(data, item, slot=len(carried), single=not is_list,
                                             sort=sort)
            freq = key if key.dates is not None else freq
        elif _is_array_key(item) and not _is_column(data, item):
            key, values, parent = _array_key(data, item, slot=len(carried))
        else:
            _check_name(item)
            name = item.name if isinstance(item, pd.Series) else item  # a Series that is a column
            chunk_items.append(name)
            parent_items.append(name)
            continue
        carried.append(values)
        chunk_items.append(key)
        parent_items.append(parent)
    keys = Keys(
        by=chunk_items if is_list else chunk_items[0],
        parent_by=parent_items if is_list else parent_items[0],
        carried=tuple(carried), n_columns=data.shape[1],
        columns=data.columns if carried else None, freq=freq,
    )
    if freq is not None:
        return _with_bins(keys, freq)
    return _with_unobserved(data, keys, level, sort=sort, dropna=dropna, observed=observed)


def _is_array_key(item: Any) -> bool:
    return isinstance(item, (pd.Series, pd.Index, np.ndarray, list, pd.api.extensions.ExtensionArray))


def _is_value_list(data: pd.DataFrame, items: list[Any]) -> bool:
    if len(items) != len(data) or not items:
        return False
    if any(callable(i) or isinstance(i, (pd.Grouper, dict)) or _is_array_key(i) for i in items):
        return False
    names = set(data.columns) | set(data.index.names)
    try:
        return not all(i in names for i in items)
    except TypeError:
        return True


def _is_column(data: pd.DataFrame, item: Any) -> bool:
    """A Series pandas takes for the column of its name (``df.groupby(df["k"])``)."""
    if not isinstance(item, pd.Series) or item.name is None:
        return False
    try:
        if item.name not in data.columns:
            return False
        gb = data.groupby(item)
    except (TypeError, ValueError, KeyError):
        return False
    grouper = getattr(gb, "_grouper", None) or gb.grouper
    return bool(grouper.groupings[0].in_axis)


def _check_name(item: Any) -> None:
    if callable(item) or isinstance(item, (pd.Grouper, dict, pd.Series)):
        return
    if not isinstance(item, Hashable):
        raise InvalidArgumentTypeError(f"cannot group by {item!r}")


def _values_array(values: list[Any]) -> np.ndarray:
    """A list of key values as pandas makes it an array: strings and tuples as objects."""
    out = np.asarray(values)
    if out.ndim == 1 and not issubclass(out.dtype.type, str):
        return out
    objects = np.empty(len(values), dtype=object)
    objects[:] = values if out.ndim == 1 else [tuple(v) if isinstance(v, list) else v for v in values]
    return objects


def _array_key(data: pd.DataFrame, item: Any, slot: int) -> tuple[Carried, Any, pd.Series]:
    """Values of an array-like key for every row, as pandas would take them."""
    values: Any
    if isinstance(item, pd.Series):
        # pandas aligns a Series key on the index (reindexing when they differ).
        aligned = item if item.index.equals(data.index) else item.reindex(data.index)
        values, name = aligned.array, item.name
    elif isinstance(item, pd.Index):
        values, name = (np.asarray(item) if isinstance(item, pd.MultiIndex) else item.array), item.name
    elif isinstance(item, list):
        values, name = _values_array(item), None
    else:
        values, name = item, None
    if len(values) != len(data):
        raise InvalidArgumentError(
            f"a groupby key of {len(values)} values for a frame of {len(data)} rows: "
            "Grouper and axis must be same length"
        )
    series = pd.Series(values, index=data.index, name=name, copy=False)
    return Carried(slot, name, series.dtype), values, series


# -- pd.Grouper(freq=...) -----------------------------------------------------------


def _time_bins(
    data: pd.DataFrame, grouper: pd.Grouper, slot: int, *, single: bool, sort: bool,
) -> tuple[Carried, Any, pd.Series]:
    """Every row's time bin, computed by pandas on the whole input.

    A single ``freq`` key travels as a categorical of all the bins: pandas
    lists empty bins as it lists unobserved categories. Beside other keys
    pandas lists only bins with rows, so plain bin labels do.
    """
    codes, bins = _bin_codes(data, grouper)
    key_name = grouper.key if grouper.key is not None else _level_name(data, grouper.level)
    if single:
        labels = data.groupby(grouper, sort=sort).size().index  # pandas' own label index
        values: Any = pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(bins))
        carried = Carried(slot, key_name, values.dtype, column=grouper.key, dates=labels, binned=True)
    else:
        values = _take_bins(bins, codes).array
        carried = Carried(slot, key_name, values.dtype, column=grouper.key, binned=True)
    parent = pd.Series(_take_bins(bins, codes), index=data.index, name=key_name)
    return carried, values, parent


def _take_bins(bins: pd.Index, codes: np.ndarray) -> pd.Index:
    """Each row's bin label (missing where the code is -1)."""
    return bins.take(codes, allow_fill=True, fill_value=pd.NaT)  # type: ignore[arg-type]


def _level_name(data: pd.DataFrame | pd.Series, level: Any) -> Hashable:
    if level is None:
        return data.index.name
    return data.index.names[level] if isinstance(level, int) else level


def time_sorted(data: pd.DataFrame, by: Any) -> pd.DataFrame:
    """The input as pandas groups it on one ``pd.Grouper(freq=...)`` key: sorted
    by time (stable, missing times first) unless it already is."""
    # (a list of keys goes another way in pandas: rows stay in input order)
    if not isinstance(by, pd.Grouper) or getattr(by, "freq", None) is None:
        return data
    times = _times(data, by)
    if times.is_monotonic_increasing:
        return data
    return data.iloc[times.array.argsort(kind="mergesort", na_position="first")]


def _times(data: pd.DataFrame | pd.Series, grouper: pd.Grouper) -> pd.Index:
    if grouper.key is not None:
        return pd.Index(pd.DataFrame(data)[grouper.key])
    level: Any = grouper.level
    return data.index if level is None else data.index.get_level_values(level)


def bin_keys(data: pd.DataFrame | pd.Series, by: Any) -> Any:
    """``by`` with every ``pd.Grouper(freq=...)`` replaced by its rows' bin
    labels: pandas' own group numbers of such a key need not follow the rows
    of an unsorted input with missing times."""
    items = by if isinstance(by, list) else [by]
    if not any(isinstance(i, pd.Grouper) and getattr(i, "freq", None) is not None for i in items):
        return by
    out = []
    for item in items:
        if isinstance(item, pd.Grouper) and getattr(item, "freq", None) is not None:
            codes, bins = _bin_codes(data, item)
            name = item.key if item.key is not None else _level_name(data, item.level)
            item = pd.Series(_take_bins(bins, codes), index=data.index, name=name)
        out.append(item)
    return out if isinstance(by, list) else out[0]


def _bin_codes(data: pd.DataFrame | pd.Series, grouper: pd.Grouper) -> tuple[np.ndarray, pd.Index]:
    """The bin of each row (-1 where the time is missing) and all the bins.

    pandas is asked on the rows in time order without missing times, where
    its group numbers follow the rows (on unsorted input they need not).
    """
    frame = pd.DataFrame(data)[[grouper.key]] if grouper.key is not None else pd.DataFrame(index=data.index)
    times = _times(data, grouper)
    if not isinstance(times, pd.DatetimeIndex | pd.TimedeltaIndex | pd.PeriodIndex):
        raise InvalidArgumentTypeError(
            f"pd.Grouper(freq=...) needs datetimes, got {times.dtype} for {grouper!r}"
        )
    valid = np.flatnonzero(~np.asarray(times.isna()))
    order = valid[np.argsort(times[valid], kind="stable")]
    gb = frame.iloc[order].groupby(grouper)
    bins = gb.size().index
    codes = np.full(len(data), -1, dtype=np.int64)
    codes[order] = gb.ngroup().to_numpy(dtype=np.int64)
    return codes, bins


def _with_bins(keys: Keys, freq: Carried) -> Keys:
    """Every empty bin goes to the chunk holding the bin with rows before it."""
    assert freq.dates is not None
    values = keys.carried[freq.slot]
    counts = np.bincount(values.codes[values.codes >= 0], minlength=len(values.categories))
    owned = _owners(np.arange(len(counts)), counts > 0)
    return Keys(**{**keys.__dict__, "unobserved": Unobserved(freq, values.dtype, owned)})


# -- categorical keys, observed=False ------------------------------------------------------


def _with_unobserved(
    data: pd.DataFrame, keys: Keys, level: Any, *, sort: bool, dropna: bool, observed: Any,
) -> Keys:
    if (observed if observed is not None else PANDAS_3):
        return keys
    found = _categorical_keys(data, keys, level)
    if not found:
        return keys
    items = keys.by if isinstance(keys.by, list) else [keys.by]
    levels = level if isinstance(level, list) else [level]
    if len(items) + len(levels) - (keys.by is None) - (level is None) > 1:
        raise InvalidArgumentError(
            f"categorical groupby key {found[0][0]!r} among several keys with observed=False: "
            "pandas lists every combination of the keys' values, which no chunk can know; "
            "pass observed=True (pandas 3's default) or group by that key alone"
        )
    target, dtype = found[0]
    if keys.by is None or not (isinstance(target, Carried) or target in data.columns):
        raise InvalidArgumentError(
            f"categorical index level {target!r} with observed=False: chunks would have to "
            "change the groups' index to list unobserved categories; pass observed=True "
            "(pandas 3's default) or group by a column"
        )
    full = data.groupby(keys.parent_by, observed=False, sort=sort, dropna=dropna).size()
    codes = pd.Index(dtype.categories).get_indexer(full.index)
    owned = _owners(codes, full.to_numpy() > 0)
    return Keys(**{**keys.__dict__, "unobserved": Unobserved(target, dtype, owned)})


def _categorical_keys(data: pd.DataFrame, keys: Keys, level: Any) -> list[tuple[Any, Any]]:
    found: list[tuple[Any, Any]] = []
    items = [] if keys.by is None else keys.by if isinstance(keys.by, list) else [keys.by]
    levels = [] if level is None else level if isinstance(level, list) else [level]
    for item in items + levels:
        dtype = _key_dtype(data, item, is_level=item in levels and level is not None)
        if isinstance(dtype, pd.CategoricalDtype):
            found.append((item, dtype))
    return found


def _key_dtype(data: pd.DataFrame, item: Any, *, is_level: bool) -> Any:
    if isinstance(item, Carried):
        return item.dtype
    try:
        if not is_level and item in data.columns:
            return data[item].dtype
        return data.index.get_level_values(item).dtype
    except (KeyError, TypeError, IndexError, ValueError):
        return None


def _owners(codes: np.ndarray, observed: np.ndarray) -> dict[int, tuple[int, ...]]:
    """Walk pandas' result order: each empty group goes to the group with rows
    before it (the first one takes those that come before every group)."""
    owned: dict[int, list[int]] = {}
    pending: list[int] = []
    current: int | None = None
    for code, seen in zip(codes.tolist(), observed.tolist(), strict=True):
        if seen:
            current = code
            if pending:
                owned.setdefault(code, []).extend(pending)
                pending = []
        elif current is None:
            pending.append(code)
        else:
            owned.setdefault(current, []).append(code)
    if pending:
        owned[NO_GROUP] = pending
    return {k: tuple(v) for k, v in owned.items()}


def restrict(values: pd.Series, owned: dict[int, tuple[int, ...]]) -> pd.Series:
    """A chunk's categorical key with only its own groups' categories and the
    unobserved ones those groups own: pandas lists exactly these."""
    codes = values.cat.codes.to_numpy()
    present = np.unique(codes)
    keep = np.zeros(len(values.cat.categories), dtype=bool)
    keep[present[present >= 0]] = True
    owners = present.tolist() if len(present) else [NO_GROUP]
    if len(present) and not (present >= 0).any():
        owners.append(NO_GROUP)
    for code in owners:
        keep[list(owned.get(code, ()))] = True
    return values.cat.set_categories(values.cat.categories[keep])
