"""df.framepar.groupby(...) against df.groupby(...), and the core's by= option.

Every kind of function result pandas' groupby.apply distinguishes (a scalar,
a Series, a like-indexed frame, a filtered frame, None) under every
combination of group_keys / as_index / sort / dropna, on frames with numeric,
string, NaN, categorical, datetime and MultiIndex data; chunks of one to a
few groups on the serial and process backends.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandas_frames import assert_same, assert_twin, frames

import framepar
from framepar import grouping
from framepar.groupby import PANDAS_3

FRAMES = frames()
GROUPED = ["numeric", "strings", "nan", "categorical", "datetime", "multiindex", "messy_index", "empty"]


def _plan(backend: str, chunk_rows: int) -> dict:
    return {"backend": backend, "chunk_rows": chunk_rows, "workers": 2, "progress": False}


def cases(names: list[str], on_processes: tuple[str, ...] = ("numeric", "nan")) -> list:
    """Every frame in-process with one and with seven rows per chunk (the
    planner rounds up to whole groups); a few also on worker processes."""
    out = []
    for name in names:
        out.append(pytest.param(name, _plan("serial", 1), id=f"{name}-serial-1"))
        out.append(pytest.param(name, _plan("serial", 7), id=f"{name}-serial-7"))
        if name in on_processes:
            out.append(pytest.param(name, _plan("process", 5), id=f"{name}-process-5"))
    return out


PLANS = [_plan("serial", 1), _plan("serial", 7), _plan("process", 5)]


@pytest.fixture(params=PLANS, ids=["serial-1", "serial-7", "process-5"])
def plan(request: pytest.FixtureRequest) -> dict:
    return request.param


@pytest.fixture(autouse=True)
def _quiet_pandas_deprecations():
    # pandas 2.2 warns that apply will stop passing the grouping columns;
    # both sides of each comparison see the same behaviour either way.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def _num(g: pd.DataFrame) -> pd.DataFrame:
    return g.select_dtypes("number")


APPLY_FUNCS = {
    "scalar": lambda g: len(g) * 2.5,
    "series_same_index": lambda g: pd.Series({"n": len(g), "first": str(g.iloc[0, -1])}),
    "like_indexed": lambda g: g.iloc[:, -1:].astype(str) + "!",
    "filter_head": lambda g: g.head(2),
    "filter_tail_one": lambda g: g.tail(1),
    "none_for_some": lambda g: None if len(g) % 2 else g.iloc[:1],
    "name": lambda g: str(g.name),
}


def _gb_kwargs(frame: str) -> dict:
    if frame == "multiindex":
        return {"level": "outer"}
    return {"by": "k", "observed": True} if frame == "categorical" else {"by": "k"}


@pytest.mark.parametrize(("frame", "plan"), cases(GROUPED))
@pytest.mark.parametrize("func", list(APPLY_FUNCS))
@pytest.mark.parametrize("group_keys", [True, False])
def test_apply_matches_pandas(frame: str, plan: dict, func: str, group_keys: bool) -> None:
    df = FRAMES[frame]
    f = APPLY_FUNCS[func]
    kw = {**_gb_kwargs(frame), "group_keys": group_keys}
    assert_twin(lambda: df.groupby(**kw).apply(f), lambda: df.framepar.groupby(**kw).apply(f, **plan))


@pytest.mark.parametrize(("frame", "plan"), cases(["numeric", "nan", "messy_index"], ("nan",)))
@pytest.mark.parametrize("func", ["scalar", "series_same_index", "like_indexed", "filter_head"])
@pytest.mark.parametrize(
    "options",
    [{"as_index": False}, {"sort": False}, {"dropna": False}, {"as_index": False, "group_keys": False},
     {"sort": False, "dropna": False, "group_keys": False}],
    ids=["as_index", "unsorted", "keep_na", "as_index-no_keys", "unsorted-keep_na-no_keys"],
)
def test_apply_options_match_pandas(frame: str, plan: dict, func: str, options: dict) -> None:
    df = FRAMES[frame]
    f = APPLY_FUNCS[func]
    kw = {"by": "k", **options}
    assert_twin(lambda: df.groupby(**kw).apply(f), lambda: df.framepar.groupby(**kw).apply(f, **plan))


def test_apply_args_kwargs_and_multiple_keys(plan: dict) -> None:
    df = FRAMES["numeric"].assign(k2=lambda d: d.a % 2)

    def f(g: pd.DataFrame, scale: float, *, shift: float = 0) -> float:
        return float(g["b"].sum() * scale + shift)

    assert_same(df.framepar.groupby(["k", "k2"]).apply(f, 2.0, shift=1.0, **plan),
                df.groupby(["k", "k2"]).apply(f, 2.0, shift=1.0))


def test_apply_on_a_selected_column(plan: dict) -> None:
    df = FRAMES["nan"]
    for f in (lambda s: s.sum(), lambda s: s.cumsum(), lambda s: s.head(1)):
        assert_same(df.framepar.groupby("k")["a"].apply(f, **plan), df.groupby("k")["a"].apply(f))
        assert_same(df.framepar.groupby("k", group_keys=False)["a"].apply(f, **plan),
                    df.groupby("k", group_keys=False)["a"].apply(f))


def test_apply_by_index_level_and_function_of_the_index(plan: dict) -> None:
    df = FRAMES["datetime"]
    f = lambda g: g["a"].mean()  # noqa: E731
    assert_same(df.framepar.groupby(lambda ts: ts.month).apply(f, **plan),
                df.groupby(lambda ts: ts.month).apply(f))
    mi = FRAMES["multiindex"]
    assert_same(mi.framepar.groupby(level=["outer"]).apply(lambda g: g["b"].max(), **plan),
                mi.groupby(level=["outer"]).apply(lambda g: g["b"].max()))


@pytest.mark.parametrize(("frame", "plan"), cases(GROUPED))
@pytest.mark.parametrize("func", ["cumsum", "mean", "lambda", "first"])
def test_transform_matches_pandas(frame: str, plan: dict, func: str) -> None:
    df = FRAMES[frame]
    kw = _gb_kwargs(frame)
    f = (lambda s: s - s.min()) if func == "lambda" else func
    col = "a"
    assert_twin(lambda: df.groupby(**kw)[col].transform(f),
                lambda: df.framepar.groupby(**kw)[col].transform(f, **plan))
    if func != "lambda":
        # Every column at once; where pandas refuses (cumsum of datetimes...), so do we.
        assert_twin(lambda: df.groupby(**kw).transform(f),
                    lambda: df.framepar.groupby(**kw).transform(f, **plan))


@pytest.mark.parametrize(("frame", "plan"), cases(GROUPED))
@pytest.mark.parametrize(
    "agg", ["sum", ["min", "max"], "named", "lambda"], ids=["sum", "list", "named", "lambda"]
)
@pytest.mark.parametrize("as_index", [True, False])
def test_agg_matches_pandas(frame: str, plan: dict, agg: object, as_index: bool) -> None:
    df = FRAMES[frame]
    kw = {**_gb_kwargs(frame), "as_index": as_index}
    if agg == "named":
        assert_twin(lambda: df.groupby(**kw).agg(top=("a", "max"), n=("a", "size")),
                    lambda: df.framepar.groupby(**kw).agg(top=("a", "max"), n=("a", "size"), **plan))
        return
    func = (lambda s: s.max()) if agg == "lambda" else agg
    assert_twin(lambda: df.groupby(**kw)[["a"]].agg(func),
                lambda: df.framepar.groupby(**kw)[["a"]].agg(func, **plan))
    assert_twin(lambda: df.groupby(**kw)["a"].aggregate(func),
                lambda: df.framepar.groupby(**kw)["a"].aggregate(func, **plan))


@pytest.mark.parametrize(("frame", "plan"), cases(["numeric", "nan", "datetime", "messy_index", "empty"]))
def test_groupwise_rolling_and_expanding_match_pandas(frame: str, plan: dict) -> None:
    df = FRAMES[frame]
    f = lambda a: float(np.nanmax(a) - np.nanmin(a))  # noqa: E731
    for window in (1, 3):
        assert_same(df.framepar.groupby("k")["a"].rolling(window).apply(f, raw=True, **plan),
                    df.groupby("k")["a"].rolling(window).apply(f, raw=True))
    assert_same(df.framepar.groupby("k")["a"].rolling(3, min_periods=1).apply(f, raw=True, **plan),
                df.groupby("k")["a"].rolling(3, min_periods=1).apply(f, raw=True))
    if not df["k"].isna().any():
        # (pandas' own raw=False expanding apply fails when some keys are missing)
        assert_same(df.framepar.groupby("k")["a"].expanding().apply(lambda s: s.iloc[-1], **plan),
                    df.groupby("k")["a"].expanding().apply(lambda s: s.iloc[-1]))
    assert_same(df.framepar.groupby("k")[["a"]].expanding(2).apply(f, raw=True, **plan),
                df.groupby("k")[["a"]].expanding(2).apply(f, raw=True))


# -- chunking, report and errors ------------------------------------------------------------


class BadGroupError(KeyError):
    pass


def test_failing_group_raises_its_own_exception_naming_the_group(plan: dict) -> None:
    df = pd.DataFrame({"k": list("aabbbccd"), "v": range(8)})

    def f(g: pd.DataFrame) -> int:
        if g.name == "c":
            raise BadGroupError("no c")
        return len(g)

    with pytest.raises(BadGroupError) as info:
        df.framepar.groupby("k").apply(f, **plan)
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert "'c'" in notes and "groups" in notes
    report = info.value.framepar_report
    failed = report[report.status == "error"]
    assert len(failed) == 1 and "c" in failed.iloc[0]["groups"]


def test_report_of_a_groupby_run_lists_whole_groups() -> None:
    df = pd.DataFrame({"k": np.repeat(np.arange(40), 3)[::-1], "v": np.arange(120)})
    run = df.framepar.run(lambda c: c.groupby("k").v.sum(), by="k", chunk_rows=10, backend="serial")
    assert run.ok
    keys = [k for ks in run.report["groups"] for k in ks]
    assert keys == sorted(df.k.unique())
    # Whole groups of 3 rows; boundaries move to the next group's start.
    assert (run.report["rows"] % 3 == 0).all() and run.report["rows"].between(9, 12).all()
    assert len(run.report) == 12
    assert_same(run.result, df.groupby("k").v.sum())


def test_errors_skip_leaves_out_the_failing_groups() -> None:
    df = pd.DataFrame({"k": np.arange(30) % 10, "v": np.arange(30.0)})

    def f(g: pd.DataFrame) -> float:
        if g.name == 4:
            raise ValueError("four")
        return g["v"].sum()

    with pytest.warns(framepar.ChunkFailureWarning):
        got = df.framepar.groupby("k").apply(f, errors="skip", chunk_rows=1, backend="serial")
    assert_same(got, df[df.k != 4].groupby("k").apply(f))


def test_bad_groupings_are_rejected_before_work() -> None:
    df = FRAMES["numeric"]
    with pytest.raises(ValueError, match="same length"):
        df.framepar.groupby(df["k"].to_numpy()[:5])
    cat = FRAMES["categorical"]
    with pytest.raises(ValueError, match="every combination"):
        cat.framepar.groupby(["k", "a"], observed=False)
    with pytest.raises(ValueError, match="index level"):
        cat.set_index("k").framepar.groupby(level="k", observed=False)
    with pytest.raises(TypeError, match="datetimes"):
        df.framepar.groupby(pd.Grouper(key="a", freq="D"))
    with pytest.raises(ValueError, match="cannot group"):
        framepar.map_chunks(df, len, by="nope", combine=list)
    with pytest.raises(ValueError, match="not both"):
        framepar.map_chunks(df, len, by="k", overlap=2)


def test_results_pandas_would_combine_differently_are_an_error() -> None:
    df = pd.DataFrame({"k": [0, 0, 1, 1], "v": range(4)})
    f = lambda g: pd.Series({f"n{g.name}": len(g)})  # noqa: E731
    with pytest.raises(framepar.GroupResultMismatchError):
        df.framepar.groupby("k").apply(f, chunk_rows=1, backend="serial")
    assert_same(df.framepar.groupby("k").apply(f, n_chunks=1, backend="serial"), df.groupby("k").apply(f))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    keys=st.lists(st.one_of(st.integers(0, 6), st.none()), max_size=60),
    chunk_rows=st.integers(1, 15),
    sort=st.booleans(),
)
def test_group_chunks_never_split_a_group(keys: list, chunk_rows: int, sort: bool) -> None:
    df = pd.DataFrame({"k": pd.array(keys, dtype="Int64"), "v": np.arange(len(keys))})
    run = framepar.run(df, lambda c: c, by="k", chunk_rows=chunk_rows, backend="serial")
    seen: set = set()
    rows = []
    for spec in run.chunks:
        chunk_keys = set(df["k"].take(spec.rows).astype(object).where(df["k"].take(spec.rows).notna(), None))
        assert not chunk_keys & seen  # no group in two chunks
        seen |= chunk_keys
        rows.extend(spec.rows.tolist())
        assert list(spec.rows) == sorted(spec.rows)  # input order inside a chunk
    assert sorted(rows) == list(range(len(keys)))  # every row exactly once
    groups = grouping.layout(df, "k", sort=sort)
    assert groups.n_groups == df["k"].nunique(dropna=False)
    # Group-wise apply equals pandas on the same random keys.
    f = lambda g: g["v"].sum()  # noqa: E731
    assert_twin(lambda: df.groupby("k", sort=sort, dropna=False).apply(f),
                lambda: df.framepar.groupby("k", sort=sort, dropna=False).apply(
                    f, chunk_rows=chunk_rows, backend="serial"))
    assert_twin(lambda: df.groupby("k", sort=sort, group_keys=False).apply(lambda g: g * 2),
                lambda: df.framepar.groupby("k", sort=sort, group_keys=False).apply(
                    lambda g: g * 2, chunk_rows=chunk_rows, backend="serial"))


def test_many_small_groups_share_a_chunk() -> None:
    df = pd.DataFrame({"k": np.arange(5000) % 1000, "v": 1.0})
    run = df.framepar.run(lambda c: c.groupby("k").v.sum(), by="k", n_chunks=4, backend="serial")
    assert len(run.report) == 4
    assert_same(run.result, df.groupby("k").v.sum())


# -- keys a chunk cannot compute by itself --------------------------------------------------
# (arrays and Series, time bins, unobserved categories: computed on the whole input
# and carried with each chunk; pandas' result on the same frame is the reference)

KEY_PLANS = [
    pytest.param(_plan("serial", 1), id="serial-1"),
    pytest.param(_plan("serial", 4), id="serial-4"),
    pytest.param({"backend": "serial", "n_chunks": 1, "progress": False}, id="serial-all"),
    pytest.param(_plan("process", 6), id="process-6"),
]

KEY_CALLS = {
    "apply_scalar": lambda gb: gb.apply(lambda g: len(g) * 1.5),
    "apply_name": lambda gb: gb.apply(lambda g: str(g.name)),
    "apply_head": lambda gb: gb.apply(lambda g: g.head(2)),
    "agg": lambda gb: gb[["a"]].agg(["min", "size"]),
    "agg_lambda": lambda gb: gb["a"].agg(lambda s: len(s)),
    "named": lambda gb: gb.agg(top=("a", "max"), n=("a", "size")),
    "transform": lambda gb: gb["a"].transform("cumsum"),
    "rolling": lambda gb: gb["a"].rolling(2, min_periods=1).apply(np.nansum, raw=True),
}


def _twin_calls(df: pd.DataFrame, kw: dict, plan: dict, calls: list[str] | None = None) -> None:
    for name in calls or list(KEY_CALLS):
        call = KEY_CALLS[name]
        for as_index in (True, False):
            opts = {**kw, "as_index": as_index}
            assert_twin(lambda: call(df.groupby(**opts)),  # noqa: B023
                        lambda: call(df.framepar.groupby(**opts, **plan)))  # noqa: B023


def _sample(plan: dict, key: str, few: tuple[str, ...], *, skip: bool = False) -> None:
    """Skip all but ``few`` keys outside the four-rows-per-chunk plan (the suite
    stays fast), and whatever ``skip`` says."""
    if skip or (plan.get("chunk_rows") != 4 and key not in few):
        pytest.skip("every key with four rows per chunk; a few with the other chunkings")


def _array_keys(df: pd.DataFrame) -> dict:
    values = (df["a"] % 3).to_numpy()
    named = pd.Series(values, index=df.index, name="m")
    return {
        "array": values,
        "series": named,
        "series_misaligned": named.iloc[::-1] if df.index.is_unique else named,
        "series_unnamed": named.rename(None),
        "index": pd.Index(values, name="ix"),
        "values_list": [f"v{v}" for v in values],
        "column_series": df["k"],
        "mixed": [named, "k"],
        "mixed_array": ["k", values],
    }


@pytest.mark.parametrize("plan", KEY_PLANS)
@pytest.mark.parametrize("frame", ["numeric", "messy_index"])
@pytest.mark.parametrize("key", list(_array_keys(FRAMES["numeric"])))
def test_array_keys_match_pandas(frame: str, key: str, plan: dict) -> None:
    df = FRAMES[frame]
    _sample(plan, key, ("series_misaligned", "mixed"), skip=frame != "numeric" and plan.get("chunk_rows") != 4)
    _twin_calls(df, {"by": _array_keys(df)[key]}, plan)
    by = _array_keys(df)[key]
    f = APPLY_FUNCS["like_indexed"]
    assert_twin(lambda: df.groupby(by, group_keys=False).apply(f),
                lambda: df.framepar.groupby(by, group_keys=False).apply(f, **plan))


def _times() -> pd.DataFrame:
    """Unsorted times with gaps (empty bins) and a missing time."""
    rng = np.random.default_rng(3)
    t = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.choice([0, 1, 2, 5, 6, 11, 12], 19) * 7,
                                                    unit="h")
    df = pd.DataFrame({"t": t, "a": rng.integers(0, 50, 19), "x": list("pq" * 9 + "p")},
                      index=pd.date_range("2023-12-01", periods=19, freq="13h"))
    if PANDAS_3:  # pandas 2 mislabels groups when a time is missing: nothing to equal there
        df.loc[df.index[4], "t"] = pd.NaT
    return df


TIME_KEYS = {
    "key_day": pd.Grouper(key="t", freq="D"),
    "key_right": pd.Grouper(key="t", freq="10h", closed="right", label="right"),
    "key_origin": pd.Grouper(key="t", freq="9h", origin="start", offset="1h"),
    "index_2d": pd.Grouper(freq="2D"),
    "level_week": pd.Grouper(level=0, freq="W"),
    "with_column": [pd.Grouper(key="t", freq="D"), "x"],
}


@pytest.mark.parametrize("plan", KEY_PLANS)
@pytest.mark.parametrize("key", list(TIME_KEYS))
def test_time_bins_match_pandas(key: str, plan: dict) -> None:
    _sample(plan, key, ("key_day", "with_column"))
    df = _times()
    calls = [c for c in KEY_CALLS if c != "rolling"]
    if key == "with_column" and not PANDAS_3:
        with pytest.raises(ValueError, match="include_groups"):
            df.framepar.groupby(TIME_KEYS[key], as_index=False).apply(len, **plan)
        calls = [c for c in calls if not c.startswith("apply")]
    _twin_calls(df, {"by": TIME_KEYS[key]}, plan, calls)
    f = APPLY_FUNCS["like_indexed"]
    assert_twin(lambda: df.groupby(TIME_KEYS[key], group_keys=False).apply(f),
                lambda: df.framepar.groupby(TIME_KEYS[key], group_keys=False).apply(f, **plan))
    with pytest.raises(ValueError, match="rolling"):
        df.framepar.groupby(TIME_KEYS[key])["a"].rolling(2)


def _categories() -> pd.DataFrame:
    keys = ["c", "a", None, "c", "a", "a", "e", None, "c", "e", "a"]
    return pd.DataFrame({
        "k": pd.Categorical(keys, categories=["a", "b", "c", "d", "e", "f"]),
        "a": np.arange(len(keys)),
        "s": [f"s{i % 4}" for i in range(len(keys))],
    })


CATEGORY_KEYS = {
    "column": {"by": "k"},
    "unsorted": {"by": "k", "sort": False},
    "keep_na": {"by": "k", "dropna": False},
    "unsorted_keep_na": {"by": "k", "sort": False, "dropna": False},
    "carried": {"by": pd.Series(_categories()["k"].array, name="kk")},
}


@pytest.mark.parametrize("plan", KEY_PLANS)
@pytest.mark.parametrize("key", list(CATEGORY_KEYS))
def test_unobserved_categories_match_pandas(key: str, plan: dict) -> None:
    _sample(plan, key, ("column", "keep_na"))
    df = _categories()
    _twin_calls(df, {**CATEGORY_KEYS[key], "observed": False}, plan, [c for c in KEY_CALLS if c != "rolling"])
    with pytest.raises(ValueError, match="rolling"):
        df.framepar.groupby(**CATEGORY_KEYS[key], observed=False)["a"].rolling(2)
    # Every category observed, and no rows at all: pandas lists them all.
    full = df.assign(k=df["k"].cat.remove_unused_categories().cat.add_categories(["z"]).fillna("z"))
    _twin_calls(full, {**CATEGORY_KEYS[key], "observed": False} if key != "carried" else
                {"by": "k", "observed": False}, plan, ["apply_name", "agg"])
    _twin_calls(df.iloc[:0], {"by": "k", "observed": False}, plan, ["apply_scalar", "agg"])


@pytest.mark.parametrize("by", [np.arange(8) % 3, pd.Grouper(key="t", freq="D"), "k"],
                         ids=["array", "time_bins", "unobserved"])
def test_collect_names_the_failing_group_of_carried_keys(by: object) -> None:
    df = pd.DataFrame({
        "t": pd.date_range("2024-01-01", periods=8, freq="17h"),
        "k": pd.Categorical(list("aabbccaa"), categories=list("abcd")),
        "v": range(8),
    })
    bad = pd.Timestamp("2024-01-03") if isinstance(by, pd.Grouper) else "b" if isinstance(by, str) else 1

    def f(g: pd.DataFrame) -> int:
        if g.name == bad:
            raise BadGroupError(f"no {g.name}")
        return len(g)

    with pytest.raises(framepar.ChunksFailed) as info:
        df.framepar.groupby(by, observed=False).apply(f, errors="collect", chunk_rows=1, workers=2,
                                                      backend="serial")
    report = info.value.report
    failed = report[report.status == "error"]
    assert len(failed) == 1 and list(failed.iloc[0]["groups"]) == [bad]


def test_map_chunks_by_arrays_and_time_bins() -> None:
    df = _times()
    keys = (df["a"] % 4).to_numpy()
    got = framepar.map_chunks(df, lambda c: c.groupby(keys[df.index.get_indexer(c.index)])["a"].sum(),
                              by=keys, chunk_rows=3, backend="serial")
    assert_same(got, df.groupby(keys)["a"].sum())
    grouper = pd.Grouper(key="t", freq="D")
    run = framepar.run(df, lambda c: c, by=grouper, chunk_rows=1, backend="serial")
    bins = df["t"].dt.floor("D")
    for spec in run.chunks:  # each chunk holds whole days
        assert bins.iloc[spec.rows].nunique(dropna=False) == 1
    assert sorted(np.concatenate([s.rows for s in run.chunks]).tolist()) == list(range(len(df)))


@pytest.mark.parametrize("plan", KEY_PLANS)
@pytest.mark.parametrize("by", [["k", "a"], ["a", "k"]], ids=["k-a", "a-k"])
def test_two_keys_with_duplicate_labels_keep_pandas_row_order(by: list, plan: dict) -> None:
    # pandas takes each duplicated label's rows in group order (GH 14776);
    # every chunk did the same on its own rows, which the parent must undo.
    df = FRAMES["messy_index"]
    assert df.index.has_duplicates
    for name in ("like_indexed", "none_for_some"):
        f = APPLY_FUNCS[name]
        assert_twin(lambda f=f: df.groupby(by, group_keys=False).apply(f),
                    lambda f=f: df.framepar.groupby(by, group_keys=False).apply(f, **plan))

