"""``df.framepar.groupby(...)``: pandas' groupby methods over group-aware chunks.

Every chunk holds whole groups (see :mod:`framepar.grouping`), and a worker
runs pandas' own ``chunk.groupby(...).apply/transform/agg/rolling`` on it, so
each group's result is exactly pandas'. What is left is putting the chunk
results together the way pandas assembles its per-group results, which
depends on what the function returned (see :func:`assemble_apply`):

* frames or Series stacked with the group keys (``group_keys=True``), a
  scalar or a Series per group (a row per group), ``agg``: chunks follow the
  group order, so concatenation is the answer (renumbered where pandas uses a
  plain 0..n-1 index, ``as_index=False``);
* results indexed like their group with ``group_keys=False``, and
  ``transform``: pandas returns the input's row order, so the rows are put
  back in input order by position;
* ``group_keys=True, as_index=False``: pandas 2 numbers the groups 0..n-1
  in the first index level; each chunk's numbers are shifted by the groups
  before it.

To know which rule pandas applied, each chunk records what the function
returned for each of its groups (:class:`ApplyMeta`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import grouping, groupkeys
from .collect import concat_results
from .exceptions import FrameparError, InvalidArgumentError
from .methods import concat_inferred, pop_options, restore_order, run_chunks
from .planning import ChunkSpec

PANDAS_3 = int(pd.__version__.split(".")[0]) >= 3


class GroupResultMismatchError(FrameparError, ValueError):
    """Groups in different chunks returned results pandas would combine
    differently (e.g. Series with different indexes in different chunks)."""


@dataclass(frozen=True)
class GroupSpec:
    """How to regroup a chunk: the arguments of ``DataFrame.groupby``, plus a
    column selection (``()`` for none, else a one-item tuple)."""

    by: Any
    level: Any
    as_index: bool
    sort: bool
    group_keys: bool
    dropna: bool
    observed: Any  # None: pandas' default
    selection: tuple[Any, ...] = ()
    keys: groupkeys.Keys | None = None  # keys the chunks carry (see groupkeys)

    def regroup(self, chunk: pd.DataFrame, method: str, extra: dict[str, Any]) -> Any:
        """The groupby of the chunk's own columns on its keys (carried ones taken off)."""
        frame, by, excluded = self._chunk_keys(chunk, method, extra)
        gb = self.groupby(frame, by)
        if excluded and not self.selection:
            gb = gb[[c for c in frame.columns if c not in excluded]]
        return gb

    def groupby(self, frame: pd.DataFrame, by: Any) -> Any:
        kwargs: dict[str, Any] = dict(
            by=by, level=self.level, as_index=self.as_index, sort=self.sort,
            group_keys=self.group_keys, dropna=self.dropna,
        )
        if self.observed is not None:
            kwargs["observed"] = self.observed
        gb = frame.groupby(**kwargs)
        return gb[self.selection[0]] if self.selection else gb

    def _chunk_keys(
        self, chunk: pd.DataFrame, method: str, extra: dict[str, Any],
    ) -> tuple[pd.DataFrame, Any, list[Any]]:
        keys = self.keys
        if keys is None:
            return chunk, self.by, []
        frame, carried = keys.split(chunk)
        unobserved = keys.unobserved
        # Empty groups only show in apply and agg results; for row-aligned
        # methods a time-bin key is its plain bin labels.
        lists_empty = method in ("apply", "agg")
        # pandas 2's apply(include_groups=True) shows the key column itself.
        shows_keys = method == "apply" and extra.get("include_groups", not PANDAS_3)
        items = self.by if isinstance(self.by, list) else [self.by]
        out: list[Any] = []
        excluded: list[Any] = []
        for item in items:
            if not isinstance(item, groupkeys.Carried):
                out.append(item)
                continue
            values = carried[item.slot]
            if values.dtype != item.dtype:
                values = values.astype(item.dtype)
            values = values.set_axis(frame.index, axis=0)
            values.name = item.name
            if item.dates is not None and not lists_empty:
                values = values.astype(item.dates.dtype)
            elif unobserved is not None and unobserved.target == item:
                values = groupkeys.restrict(values, unobserved.owned)
            lone_bins = item.dates is not None and not PANDAS_3 and not self.as_index
            if item.column is not None and not shows_keys and not lone_bins:
                # Stands in for the column, so pandas treats the key as that column.
                frame = frame.copy(deep=False)
                frame[item.column] = values
                out.append(item.column)
            else:
                out.append(values)
                if item.column is not None and not shows_keys:
                    # pandas 2 leaves a lone time-bin key out of as_index=False
                    # results but still excludes its column.
                    excluded.append(item.column)
        if unobserved is not None and not isinstance(unobserved.target, groupkeys.Carried):
            frame = frame.copy(deep=False)
            frame[unobserved.target] = groupkeys.restrict(frame[unobserved.target], unobserved.owned)
        return frame, out if isinstance(self.by, list) else out[0], excluded

    def finish(self, out: Any) -> Any:
        """Key levels and columns back to the whole input's dtype (a chunk's
        categorical keys hold only its own categories)."""
        keys = self.keys
        if keys is None or keys.unobserved is None:
            return out
        target = keys.unobserved.target
        if isinstance(target, groupkeys.Carried):
            dtype = target.dates.dtype if target.dates is not None else keys.unobserved.dtype
            names = [target.name, target.column]
        else:
            dtype, names = keys.unobserved.dtype, [target]
        return _retype_keys(out, names, dtype, keys.unobserved.dtype)

    @property
    def parent_by(self) -> Any:
        """The keys as the whole input is grouped on (carried keys by their own values)."""
        return self.keys.parent_by if self.keys is not None else self.by

    @property
    def series_groupby(self) -> bool:
        return bool(self.selection) and not isinstance(self.selection[0], list)


@dataclass
class ApplyMeta:
    """What ``func`` returned for the groups of one chunk, as pandas judges it."""

    ngroups: int = 0
    kind: str = "none"  # of the first result that is not None: frame, series, array, scalar
    mutated: bool = False  # some result not indexed like its group
    same_index: bool = True  # all Series results share one index
    series_index: Any = None
    # Series indexes still to compare with ``series_index``: compared only when
    # pandas' own result cannot tell (see :meth:`settle`), as comparing every
    # group's index costs as much as a cheap function.
    unchecked: list[Any] = field(default_factory=list)

    def settle(self, out: Any, frame_groupby: bool) -> None:
        """Decide ``same_index`` once the chunk's apply is done."""
        if self.unchecked:
            if frame_groupby and self.kind == "series" and isinstance(out, pd.DataFrame):
                # DataFrameGroupBy turns Series results into columns only when
                # all their indexes are the same (all_indexes_same).
                self.same_index = True
            else:
                first = self.series_index
                self.same_index = all(i is first or i.equals(first) for i in self.unchecked)
        self.unchecked = []


@dataclass(eq=False)  # hashable: pandas 2 looks functions up in a dict
class _Tracker:
    """Wraps the user's function to record :class:`ApplyMeta` (pandas'
    ``_is_indexed_like`` and ``all_indexes_same`` tests, per group)."""

    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    meta: ApplyMeta = field(default_factory=ApplyMeta)

    def __call__(self, group: Any) -> Any:
        res = self.func(group, *self.args, **self.kwargs)
        m = self.meta
        if res is None:
            return res
        if m.kind == "none":
            m.kind = _kind(res)
        if not m.mutated and not _indexed_like(res, group):
            m.mutated = True
        if isinstance(res, pd.Series):
            if m.series_index is None:
                m.series_index = res.index
            else:
                m.unchecked.append(res.index)
        return res


def _kind(res: Any) -> str:
    if isinstance(res, pd.DataFrame):
        return "frame"
    if isinstance(res, pd.Series):
        return "series"
    if isinstance(res, (np.ndarray, pd.Index)):
        return "array"
    return "scalar"


def _indexed_like(res: Any, group: Any) -> bool:
    if isinstance(res, pd.Series):
        return group.ndim == 1 and res.index.equals(group.index)
    if isinstance(res, pd.DataFrame):
        return res.index.equals(group.index)
    return False


# -- what a worker runs -------------------------------------------------------------


def group_chunk(
    chunk: pd.DataFrame, spec: GroupSpec, method: str, func: Any, args: tuple[Any, ...],
    kwargs: dict[str, Any], extra: dict[str, Any],
) -> tuple[Any, ApplyMeta | None]:
    gb = spec.regroup(chunk, method, extra)
    if gb.ngroups == 0 and len(chunk):
        # Only rows whose key is missing (dropna=True): no group to run, and
        # some pandas methods fail on such a frame; the empty frame is safe.
        gb = spec.regroup(chunk.iloc[:0], method, extra)
    if method == "apply":
        tracker = _Tracker(func, args, kwargs)
        out = gb.apply(tracker, **extra)
        tracker.meta.ngroups = gb.ngroups
        tracker.meta.settle(out, isinstance(gb, pd.api.typing.DataFrameGroupBy))
        return spec.finish(out), tracker.meta
    if method == "transform":
        return gb.transform(func, *args, **kwargs), None
    if method == "agg":
        return spec.finish(gb.agg(func, *args, **kwargs)), None
    window = getattr(gb, method)(**extra)  # rolling / expanding
    return spec.finish(window.apply(func, **kwargs)), None


def _retype_keys(out: Any, names: list[Any], dtype: Any, full: pd.CategoricalDtype) -> Any:
    """Key levels / columns (called ``names``, or of a chunk's categorical of
    ``full``'s categories) cast to ``dtype``."""
    if not isinstance(out, (pd.Series, pd.DataFrame)):
        return out

    def is_key(name: Any, kind: Any) -> bool:
        if not isinstance(kind, pd.CategoricalDtype) or kind == dtype:
            return False
        # Unnamed keys reach as_index=False results as "index"/"level_0" columns.
        return name in names or bool(kind.categories.isin(full.categories).all()
                                     and kind.categories.dtype == full.categories.dtype)

    def fix(ix: pd.Index) -> pd.Index:
        return ix.astype(dtype) if is_key(ix.name, ix.dtype) else ix

    index = out.index
    if isinstance(index, pd.MultiIndex):
        levels = [fix(lv) for lv in index.levels]
        if any(a is not b for a, b in zip(levels, index.levels, strict=True)):
            new = pd.MultiIndex(levels=levels, codes=index.codes, names=index.names,  # type: ignore[arg-type]
                                verify_integrity=False)
            out = out.set_axis(new, axis=0)
    elif fix(index) is not index:
        out = out.set_axis(fix(index), axis=0)
    if isinstance(out, pd.DataFrame) and out.columns.is_unique:
        cols = [c for c in out.columns if is_key(c, out[c].dtype)]
        if cols:
            out = out.copy(deep=False)
            for c in cols:
                out[c] = out[c].astype(dtype)
    return out


# -- putting chunk results together -------------------------------------------------


class _Assembler:
    """Puts chunk results together as pandas would have on the whole input."""

    def __init__(self, data: pd.DataFrame, spec: GroupSpec, groups: grouping.Groups) -> None:
        self.data = data
        self.spec = spec
        self.groups = groups
        self._na: np.ndarray | None = None

    def kept_rows(self, out: Any, rows: np.ndarray) -> np.ndarray:
        """A chunk's input rows that appear in a like-indexed result (rows with a
        missing key are left out by ``dropna=True``)."""
        if len(out) == len(rows):
            return rows
        if self._na is None:
            s = self.spec
            ids = self.data.groupby(by=s.parent_by, level=s.level, sort=s.sort, dropna=True,
                                    observed=True).ngroup()
            self._na = ids.isna().to_numpy()
        kept = rows[~self._na[rows]]
        if len(kept) != len(out):
            raise GroupResultMismatchError("a chunk's result is not aligned with its rows")
        return kept

    def in_input_order(self, outs: list[Any], specs: list[ChunkSpec], *, fill: bool = False) -> Any:
        kept = [self.kept_rows(o, s.rows) for o, s in zip(outs, specs, strict=True)]
        index = self.data.index
        if index.has_duplicates and not fill:
            return self._reorder_like_pandas(outs, kept)
        return restore_order(concat_results(outs), kept, index, fill=fill)

    def _reorder_like_pandas(self, outs: list[Any], kept: list[np.ndarray]) -> Any:
        """pandas' own way back to input order when the index has duplicates
        (GH 14776): from the results in group order, take the rows of each
        distinct label in turn."""
        result = concat_results([self._chunk_in_group_order(o, k) for o, k in zip(outs, kept, strict=True)])
        where = np.sort(np.concatenate(kept)) if kept else np.empty(0, np.int64)
        ax = self.data.index[where] if len(where) != len(self.data) else self.data.index
        if result.index.equals(ax):
            return result.set_axis(ax, axis=0)
        indexer, _ = result.index.get_indexer_non_unique(pd.unique(ax))
        return result.take(indexer)

    def _chunk_in_group_order(self, out: Any, kept: np.ndarray) -> Any:
        """A chunk's like-indexed result put back in group order.

        pandas returned it in the chunk's input order, except that with
        duplicated labels it took each distinct label's rows in group order
        (the same GH 14776 rule, applied to the chunk): undo exactly that.
        """
        order = np.argsort(self.groups.ids[kept], kind="stable")
        ax = self.data.index[kept]
        if not ax.has_duplicates:
            return out.take(order)
        in_groups = ax.take(order)
        if in_groups.equals(ax):
            return out  # pandas kept the group order as it was
        indexer, _ = in_groups.get_indexer_non_unique(pd.unique(ax))
        return out.take(np.argsort(indexer))

    def in_group_order(self, out: Any, rows: np.ndarray) -> Any:
        return self._chunk_in_group_order(out, self.kept_rows(out, rows))

    def apply(self, parts: list[tuple[Any, ApplyMeta]], specs: list[ChunkSpec]) -> Any:
        if len(parts) == 1 and len(specs[0].rows) == len(self.data):
            return self.bin_labels(parts[0][0])  # one chunk of every row: pandas' own answer
        result = self.bin_labels(self._apply(parts, specs))
        keys = self.groups.keys
        if (not PANDAS_3 and self.spec.observed and isinstance(keys, pd.CategoricalIndex)
                and isinstance(result.index, pd.MultiIndex)):
            # pandas 2 stacks per-group results with the observed categories only
            # (with observed=True).
            keys = keys.remove_unused_categories()
        return _categorical_levels(result, [o for o, _ in parts], keys)

    def _apply(self, parts: list[tuple[Any, ApplyMeta]], specs: list[ChunkSpec]) -> Any:
        live = [(o, m, s) for (o, m), s in zip(parts, specs, strict=True) if m.kind != "none"]
        if not live:
            return concat_results([o for o, _ in parts])
        kinds = {m.kind for _, m, _ in live}
        if len(kinds) > 1:
            raise GroupResultMismatchError(
                f"the function returned {' and '.join(sorted(kinds))} results in different chunks; "
                "pandas would combine them differently; return one kind of result per group"
            )
        kind = kinds.pop()
        outs = [o for o, _, _ in live]
        metas = [m for _, m, _ in live]
        s = self.spec
        if kind == "series" and not s.series_groupby:
            same = [m.same_index for m in metas]
            if all(same):
                first = metas[0].series_index
                if all(m.series_index.equals(first) for m in metas):
                    # One row per group (pandas stacks the Series into a frame).
                    return _renumber(concat_results(outs)) if not s.as_index else concat_results(outs)
                raise GroupResultMismatchError(
                    "groups in different chunks returned Series with different indexes; pandas "
                    "would stack them into one long Series: run with n_chunks=1 or return the "
                    "same index for every group"
                )
            if any(same):
                raise GroupResultMismatchError(
                    "some chunks' groups returned Series sharing one index and others not; "
                    "return the same index for every group"
                )
        elif kind in ("scalar", "array"):
            return concat_inferred(outs) if s.as_index else _renumber(concat_inferred(outs))
        # frames (or Series results of a column's groupby): pandas concatenates them.
        mutated = any(m.mutated for m in metas)
        if s.series_groupby and not s.as_index:
            if len({m.mutated for m in metas}) > 1:
                raise GroupResultMismatchError(
                    "with as_index=False some chunks' results are indexed like their groups and "
                    "others not; run with n_chunks=1"
                )
            if mutated:
                return _renumber(concat_results(outs))
        if s.group_keys:
            if s.as_index or PANDAS_3:
                return concat_results(outs)
            shifted, offset = [], 0
            for o, m in zip(outs, metas, strict=True):
                shifted.append(_shift_first_level(o, offset))
                offset += m.ngroups
            return concat_results(shifted)
        if not mutated:
            return self.in_input_order(outs, [sp for _, _, sp in live])
        return concat_results([
            self.in_group_order(o, sp.rows) if not m.mutated and m.ngroups > 1 else o
            for o, m, sp in live
        ])

    def transform(self, parts: list[tuple[Any, None]], specs: list[ChunkSpec]) -> Any:
        if len(parts) == 1 and len(specs[0].rows) == len(self.data):
            return parts[0][0]
        return self.in_input_order([o for o, _ in parts], specs, fill=True)

    def agg(self, parts: list[tuple[Any, None]], specs: list[ChunkSpec]) -> Any:
        outs = [o for o, _ in parts]
        if len(parts) == 1 and len(specs[0].rows) == len(self.data):
            return self.bin_labels(outs[0])
        result = _categorical_levels(concat_results(outs), outs, self.groups.keys)
        return self.bin_labels(result) if self.spec.as_index else _renumber(result)

    def bin_labels(self, result: Any) -> Any:
        """A time-bin key's labels as pandas' own index object (its ``freq``)."""
        keys = self.spec.keys
        dates = keys.freq.dates if keys is not None and keys.freq is not None else None
        if dates is None or not isinstance(result, (pd.Series, pd.DataFrame)):
            return result
        if not isinstance(result.index, pd.MultiIndex) and result.index.equals(dates):
            return result.set_axis(dates, axis=0)
        return result

    def window(self, parts: list[tuple[Any, None]], specs: list[ChunkSpec]) -> Any:
        outs = [o for o, _ in parts]
        if len(parts) == 1 and len(specs[0].rows) == len(self.data):
            return outs[0]
        return _categorical_levels(concat_results(outs), outs, self.groups.keys)


def _categorical_levels(result: Any, outs: list[Any], keys: pd.Index | None = None) -> Any:
    """Group keys that are categorical stay so in the result's index.

    Each chunk's index holds the categories of its own groups; concatenating
    indexes whose categories differ gives plain objects, where the whole-frame
    call keeps the categorical. The dtype is that of the group keys of the
    whole input (``keys``, by level name), else the union of the chunks'.
    """
    if not isinstance(result, (pd.Series, pd.DataFrame)):
        return result
    index = result.index
    parts = [o.index for o in outs if isinstance(o, (pd.Series, pd.DataFrame)) and len(o)]
    if not parts:
        return result
    known: dict[Any, Any] = {}
    if keys is not None:
        key_levels = keys.levels if isinstance(keys, pd.MultiIndex) else [keys]
        known = {lv.name: lv.dtype for lv in key_levels
                 if lv.name is not None and isinstance(lv.dtype, pd.CategoricalDtype)}
    if isinstance(index, pd.MultiIndex):
        levels = list(index.levels)
        changed = False
        for i in range(index.nlevels):
            dtype = _part_categorical(p.levels[i] if isinstance(p, pd.MultiIndex) else None for p in parts)
            if dtype is not None:
                dtype = known.get(levels[i].name, dtype)
            if dtype is not None and levels[i].dtype != dtype:
                levels[i] = pd.CategoricalIndex(levels[i], dtype=dtype, name=levels[i].name)
                changed = True
        if changed:
            new = pd.MultiIndex(levels=levels, codes=index.codes, names=index.names,  # type: ignore[arg-type]
                                verify_integrity=False)
            return result.set_axis(new, axis=0)
        return result
    dtype = _part_categorical(p if not isinstance(p, pd.MultiIndex) else None for p in parts)
    if dtype is not None:
        dtype = known.get(index.name, dtype)
    if dtype is not None and index.dtype != dtype:
        return result.set_axis(pd.CategoricalIndex(index, dtype=dtype, name=index.name), axis=0)
    return result


def _part_categorical(indexes: Any) -> pd.CategoricalDtype | None:
    dtypes = [ix.dtype for ix in indexes if ix is not None]
    if not dtypes or not all(isinstance(d, pd.CategoricalDtype) for d in dtypes):
        return None
    first = dtypes[0]
    if all(d == first for d in dtypes):
        return first
    categories = first.categories
    for d in dtypes[1:]:
        categories = categories.append(d.categories[~d.categories.isin(categories)])
    return pd.CategoricalDtype(categories, ordered=first.ordered)


def _renumber(result: Any) -> Any:
    return result.set_axis(pd.RangeIndex(len(result)), axis=0)


def _shift_first_level(out: Any, offset: int) -> Any:
    if offset == 0 or not len(out):
        return out
    index = out.index
    if isinstance(index, pd.MultiIndex):
        new = index.set_levels(list(index.levels[0] + offset), level=0, verify_integrity=False)
    else:
        new = index + offset
    return out.set_axis(new, axis=0)


# -- the user-facing objects -------------------------------------------------------------


class ParallelGroupBy:
    """What ``df.framepar.groupby(...)`` returns: pandas' groupby calls, in parallel.

    ``apply``, ``transform`` and ``agg`` (``aggregate``) return what the same
    call on ``df.groupby(...)`` returns; ``[col]`` selects columns;
    ``rolling(...)`` and ``expanding(...)`` give group-wise windows whose
    ``apply`` equals pandas'. The core's options (``workers``, ``chunk_rows``,
    ``backend``, ``errors``...) may be given to ``groupby(...)`` or to each call.
    """

    def __init__(self, data: pd.DataFrame, spec: GroupSpec, options: dict[str, Any]) -> None:
        self._data = data
        self._spec = spec
        self._options = options
        self._groups: grouping.Groups | None = None

    def __getitem__(self, key: Any) -> ParallelGroupBy:
        if self._spec.selection:
            raise InvalidArgumentError("columns are already selected")
        spec = GroupSpec(**{**self._spec.__dict__, "selection": (key,)})
        out = ParallelGroupBy(self._data, spec, self._options)
        out._groups = self._groups
        return out

    def __getattr__(self, name: str) -> ParallelGroupBy:
        # gb.col as in pandas (only reached when no attribute has that name).
        if not name.startswith("_") and not self._spec.selection and name in self._data.columns:
            return self[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def ngroups(self) -> int:
        return self._layout().n_groups

    def _layout(self) -> grouping.Groups:
        if self._groups is None:
            s = self._spec
            self._groups = grouping.layout(self._data, s.parent_by, level=s.level, sort=s.sort)
        return self._groups

    def _run(
        self, method: str, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
        extra: dict[str, Any], assemble: Callable[..., Any],
    ) -> Any:
        options = {**self._options, **pop_options(kwargs)}
        groups = self._layout()
        keys = self._spec.keys
        data = keys.carry(self._data) if keys is not None else self._data
        return run_chunks(
            data, group_chunk, (self._spec, method, func, args, kwargs, extra), options,
            assemble=assemble, by=groups,
        )

    def _assembler(self) -> _Assembler:
        return _Assembler(self._data, self._spec, self._layout())

    def apply(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``df.groupby(...).apply(func, *args, **kwargs)``; ``include_groups``
        goes to pandas, the core's options to the core, the rest to ``func``."""
        if not callable(func):
            raise InvalidArgumentError(f"func must be callable, got {func!r}")
        extra = {"include_groups": kwargs.pop("include_groups")} if "include_groups" in kwargs else {}
        self._check_apply(extra)
        return self._run("apply", func, args, kwargs, extra, self._assembler().apply)

    def _check_apply(self, extra: dict[str, Any]) -> None:
        s = self._spec
        if PANDAS_3 or s.as_index or s.keys is None or not extra.get("include_groups", True):
            return
        if any(isinstance(c, groupkeys.Carried) and c.binned and c.column is not None and c.dates is None
               for c in s.keys.chunk_items):
            # Groups must show the times, the result their bins: one column cannot do both.
            raise InvalidArgumentError(
                "with pandas 2, apply(include_groups=True) with as_index=False and a "
                "pd.Grouper(key=..., freq=...) among several keys is not supported; pass "
                "include_groups=False or as_index=True"
            )

    def transform(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """``df.groupby(...).transform(func, *args, **kwargs)``, in input row order."""
        if isinstance(func, str) and func in ("ngroup", "cumcount"):
            raise InvalidArgumentError(f"transform({func!r}) numbers rows across groups; use pandas")
        return self._run("transform", func, args, kwargs, {}, self._assembler().transform)

    def agg(self, func: Any = None, *args: Any, **kwargs: Any) -> Any:
        """``df.groupby(...).agg(func, *args, **kwargs)`` (named aggregation too)."""
        return self._run("agg", func, args, kwargs, {}, self._assembler().agg)

    aggregate = agg

    def rolling(self, window: int, **kwargs: Any) -> GroupWindow:
        """``df.groupby(...)[col].rolling(window, ...)``; its ``apply`` runs in parallel."""
        self._check_window()
        return GroupWindow(self, "rolling", {"window": window, **kwargs})

    def expanding(self, min_periods: int = 1, **kwargs: Any) -> GroupWindow:
        """``df.groupby(...)[col].expanding(...)``; its ``apply`` runs in parallel."""
        self._check_window()
        return GroupWindow(self, "expanding", {"min_periods": min_periods, **kwargs})

    def _check_window(self) -> None:
        keys = self._spec.keys
        if keys is not None and any(isinstance(c, groupkeys.Carried) and c.binned for c in keys.chunk_items):
            # pandas labels such windows inconsistently (pandas 2 raises when a time
            # is missing, pandas 3 mislabels rows): nothing reliable to equal.
            raise InvalidArgumentError(
                "group-wise rolling/expanding over pd.Grouper(freq=...) keys is not supported; "
                "group by the bin as a column (e.g. df[col].dt.floor(freq)) instead"
            )
        if keys is not None and keys.unobserved is not None:
            # pandas fails on the empty groups of unobserved categories.
            raise InvalidArgumentError(
                "group-wise rolling/expanding with a categorical key and observed=False is not "
                "supported (pandas fails on empty categories); pass observed=True"
            )

    def __repr__(self) -> str:
        return f"<framepar.ParallelGroupBy by={self._spec.by!r} selection={self._spec.selection!r}>"


class GroupWindow:
    """A group-wise rolling or expanding window (whole groups per chunk)."""

    def __init__(self, parent: ParallelGroupBy, method: str, window_kwargs: dict[str, Any]) -> None:
        self._parent = parent
        self._method = method
        self._window_kwargs = window_kwargs

    def apply(
        self, func: Callable[..., Any], raw: bool = False, engine: Any = None,
        engine_kwargs: dict[str, Any] | None = None, args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None, **options: Any,
    ) -> Any:
        """pandas' ``Rolling.apply`` / ``Expanding.apply`` on every group."""
        call = {"raw": raw, "engine": engine, "engine_kwargs": engine_kwargs, "args": args,
                "kwargs": kwargs}
        unknown = set(options) - set(pop_options(dict(options)))
        if unknown:
            raise InvalidArgumentError(f"unexpected keyword arguments {sorted(unknown)}")
        p = self._parent
        return p._run(self._method, func, (), {**call, **options}, self._window_kwargs,
                      p._assembler().window)


def make_groupby(
    data: pd.DataFrame, by: Any, level: Any, as_index: bool, sort: bool, group_keys: bool,
    observed: Any, dropna: bool, options: dict[str, Any],
) -> ParallelGroupBy:
    # pandas sorts the rows by time before binning them: so do its groups and results.
    data = groupkeys.time_sorted(data, by)
    keys = groupkeys.resolve(data, by, level, sort=sort, dropna=dropna, observed=observed)
    if keys.freq is not None:
        # Time bins come sorted and without missing times whatever is asked;
        # a chunk lists its empty bins as unobserved categories.
        sort, dropna, observed = True, True, False
    elif keys.unobserved is not None:
        observed = False
    spec = GroupSpec(by=keys.by, level=level, as_index=as_index, sort=sort, group_keys=group_keys,
                     dropna=dropna, observed=observed, keys=keys)
    return ParallelGroupBy(data, spec, options)


__all__ = ["GroupResultMismatchError", "GroupSpec", "GroupWindow", "ParallelGroupBy"]
