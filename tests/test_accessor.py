"""df.framepar / s.framepar against the pandas methods they stand for.

Each test runs the pandas method and its framepar twin on the same frame and
asserts pandas.testing equality, on the serial and process backends, with
chunks small enough that many chunks really run.
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

BACKENDS = ["serial", "process"]
FRAMES = frames()


# (backend, chunk_rows): one row per chunk, and chunks that cut through groups
# of equal values; worker processes with several rows per chunk.
PLANS = [("serial", 1), ("serial", 7), ("process", 7)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=PLANS, ids=[f"{b}-{n}" for b, n in PLANS])
def plan(request: pytest.FixtureRequest) -> tuple[str, int]:
    return request.param


def opts(backend: str, chunk_rows: int) -> dict:
    return {"backend": backend, "chunk_rows": chunk_rows, "workers": 2, "progress": False}


# -- registration ----------------------------------------------------------------


def test_accessor_is_registered_through_pandas_extension_api() -> None:
    assert "framepar" in dir(pd.DataFrame(index=[0]))
    assert isinstance(pd.DataFrame.framepar, type) or hasattr(pd.DataFrame, "framepar")
    assert "framepar" in dir(pd.Series(dtype=float))
    # No pandas method is replaced.
    for name in ("apply", "map", "groupby", "rolling"):
        assert getattr(pd.DataFrame, name).__module__.startswith("pandas.")
    assert pd.Series.apply.__module__.startswith("pandas.")


def test_map_chunks_and_run_are_the_core_calls(backend: str) -> None:
    df = FRAMES["numeric"]
    got = df.framepar.map_chunks(lambda c: c.assign(c2=c.a * 2), backend=backend, chunk_rows=5)
    assert_same(got, df.assign(c2=df.a * 2))
    run = df.framepar.run(lambda c: c.a + 1, backend=backend, chunk_rows=5)
    assert run.ok and len(run.report) == 5
    assert_same(run.result, df.a + 1)
    s = df["b"]
    assert_same(s.framepar.map_chunks(lambda c: c * 2, backend=backend, chunk_rows=4), s * 2)


# -- DataFrame.apply(axis=1) ---------------------------------------------------------


def _row_total(row: pd.Series) -> float:
    return float(sum(len(str(v)) for v in row.values))


ROW_FUNCS = {
    "scalar": (_row_total, {}),
    "series": (lambda r: pd.Series({"first": r.iloc[0], "n": len(r)}), {}),
    "expand_list": (lambda r: [r.iloc[0], len(r)], {"result_type": "expand"}),
    "broadcast": (lambda r: list(r.values), {"result_type": "broadcast"}),
    "raw": (lambda a: len(a), {"raw": True}),
    "name": (lambda r: r.name, {}),
    # pandas infers one dtype from all rows: chunks of only None must not make it object
    "none_or_float": (lambda r: None if str(r.iloc[-1]) < "5" else 1.5, {}),
}


@pytest.mark.parametrize("frame", list(FRAMES))
@pytest.mark.parametrize("func", list(ROW_FUNCS))
def test_apply_rows_matches_pandas(frame: str, func: str, plan: tuple[str, int]) -> None:
    backend, chunk_rows = plan
    df = FRAMES[frame]
    f, kw = ROW_FUNCS[func]
    if func == "broadcast" and df.index.has_duplicates:
        pytest.skip("pandas cannot broadcast over duplicated row labels; chunks without duplicates can")
    assert_twin(lambda: df.apply(f, axis=1, **kw),
                lambda: df.framepar.apply(f, axis=1, **kw, **opts(backend, chunk_rows)))


def test_apply_rows_args_and_kwargs_reach_the_function(backend: str) -> None:
    df = FRAMES["numeric"]

    def f(row: pd.Series, scale: float, *, shift: float = 0.0) -> float:
        return row["a"] * scale + shift

    expected = df.apply(f, axis=1, args=(3.0,), shift=2.5)
    got = df.framepar.apply(f, axis="columns", args=(3.0,), shift=2.5, **opts(backend, 4))
    assert_same(got, expected)


def test_apply_rows_assigned_as_column_equals_pandas(backend: str) -> None:
    df = FRAMES["strings"]
    got = df.assign(score=df.framepar.apply(_row_total, axis=1, **opts(backend, 3)))
    assert_same(got, df.assign(score=df.apply(_row_total, axis=1)))


# -- DataFrame.apply(axis=0) ---------------------------------------------------------

COLUMN_FUNCS = {
    "reduce": lambda c: c.count(),
    "transform": lambda c: c.astype(str).str.len(),
    "first": lambda c: c.iloc[0] if len(c) else None,
}


@pytest.mark.parametrize("frame", ["numeric", "strings", "nan", "datetime", "multiindex", "empty"])
@pytest.mark.parametrize("func", list(COLUMN_FUNCS))
def test_apply_columns_matches_pandas(frame: str, func: str, backend: str) -> None:
    df = FRAMES[frame]
    f = COLUMN_FUNCS[func]
    assert_same(df.framepar.apply(f, axis=0, **opts(backend, 1)), df.apply(f, axis=0))


def test_apply_columns_raw_and_result_type(backend: str) -> None:
    df = FRAMES["numeric"]
    assert_same(df.framepar.apply(np.sum, raw=True, **opts(backend, 1)), df.apply(np.sum, raw=True))


# -- DataFrame.map (element-wise) ----------------------------------------------------


@pytest.mark.parametrize("frame", list(FRAMES))
def test_frame_map_matches_pandas(frame: str, plan: tuple[str, int]) -> None:
    backend, chunk_rows = plan
    df = FRAMES[frame]
    f = lambda v: f"<{v}>"  # noqa: E731
    assert_same(df.framepar.map(f, **opts(backend, chunk_rows)), df.map(f))


def test_frame_map_na_action_and_kwargs(backend: str) -> None:
    df = FRAMES["nan"][["a"]]

    def f(v: float, add: float) -> float:
        return v + add

    assert_same(
        df.framepar.map(f, na_action="ignore", add=1.5, **opts(backend, 4)),
        df.map(f, na_action="ignore", add=1.5),
    )


# -- Series.apply / Series.map ---------------------------------------------------------


SERIES = {
    "ints": FRAMES["numeric"]["a"],
    "strings": FRAMES["strings"]["s"],
    "nan": FRAMES["nan"]["a"],
    "objects_with_none": FRAMES["nan"]["s"],
    "categorical": FRAMES["categorical"]["k"],
    "datetime": FRAMES["datetime"]["t"],
    "multiindex": FRAMES["multiindex"]["a"],
    "empty": FRAMES["empty"]["b"],
}


@pytest.mark.parametrize("name", list(SERIES))
def test_series_apply_matches_pandas(name: str, plan: tuple[str, int]) -> None:
    backend, chunk_rows = plan
    s = SERIES[name].rename("col")
    f = lambda v: str(v)[:3]  # noqa: E731
    assert_same(s.framepar.apply(f, **opts(backend, chunk_rows)), s.apply(f))


def test_series_apply_args_kwargs_and_series_results(backend: str) -> None:
    s = SERIES["ints"]

    def f(v: int, a: int, b: int = 0) -> int:
        return v * a + b

    assert_same(s.framepar.apply(f, args=(2,), b=5, **opts(backend, 3)), s.apply(f, args=(2,), b=5))
    g = lambda v: pd.Series({"v": v, "sq": v * v})  # noqa: E731
    assert_same(s.framepar.apply(g, **opts(backend, 3)), s.apply(g))


@pytest.mark.parametrize("name", list(SERIES))
def test_series_map_function_matches_pandas(name: str, plan: tuple[str, int]) -> None:
    backend, chunk_rows = plan
    s = SERIES[name]
    f = lambda v: hash(str(v)) % 7  # noqa: E731
    assert_same(s.framepar.map(f, **opts(backend, chunk_rows)), s.map(f))


@pytest.mark.parametrize(
    "func",
    [lambda v: None if v < 50 else v, lambda v: None if v < 50 else str(v),
     lambda v: None if v < 50 else pd.Timestamp("2020-01-01") + pd.Timedelta(days=int(v))],
    ids=["int", "str", "timestamp"],
)
def test_dtype_is_inferred_over_all_chunks(func: object, backend: str) -> None:
    s = SERIES["ints"].sort_values(ignore_index=True)
    assert_same(s.framepar.map(func, **opts(backend, 5)), s.map(func))
    assert_same(s.framepar.apply(func, **opts(backend, 5)), s.apply(func))
    df = s.to_frame()
    assert_same(df.framepar.map(func, **opts(backend, 5)), df.map(func))
    assert_same(df.framepar.apply(lambda r: func(r["a"]), axis=1, **opts(backend, 5)),
                df.apply(lambda r: func(r["a"]), axis=1))


@pytest.mark.parametrize("na_action", [None, "ignore"])
def test_series_map_mapping_matches_pandas(na_action: str | None, backend: str) -> None:
    s = SERIES["objects_with_none"]
    mapping = {f"v{i}": i * 10 for i in range(0, 23, 2)}
    assert_same(s.framepar.map(mapping, na_action=na_action, **opts(backend, 4)),
                s.map(mapping, na_action=na_action))
    as_series = pd.Series(mapping)
    assert_same(s.framepar.map(as_series, **opts(backend, 4)), s.map(as_series))
    cat = SERIES["categorical"]
    assert_same(cat.framepar.map({"x": "X", "y": "Y", "z": "Z"}, **opts(backend, 5)),
                cat.map({"x": "X", "y": "Y", "z": "Z"}))


# -- errors as pandas raises them ------------------------------------------------------


class OddRowError(ValueError):
    pass


def _fail_on_odd(row: pd.Series) -> int:
    if row["a"] % 2:
        raise OddRowError(f"odd value {row['a']}")
    return 0


@pytest.mark.parametrize("how", ["apply_rows", "series_map", "frame_map"])
def test_exception_reaches_the_caller_with_its_own_type(how: str, backend: str) -> None:
    df = FRAMES["numeric"].assign(a=np.arange(N := 23))
    calls = {
        "apply_rows": lambda: df.framepar.apply(_fail_on_odd, axis=1, **opts(backend, 4)),
        "series_map": lambda: df["a"].framepar.map(lambda v: 1 // (v - 5), **opts(backend, 4)),
        "frame_map": lambda: df[["a"]].framepar.map(lambda v: {}[v] if v == 9 else v, **opts(backend, 4)),
    }
    pandas_calls = {
        "apply_rows": lambda: df.apply(_fail_on_odd, axis=1),
        "series_map": lambda: df["a"].map(lambda v: 1 // (v - 5)),
        "frame_map": lambda: df[["a"]].map(lambda v: {}[v] if v == 9 else v),
    }
    with pytest.raises(Exception) as from_pandas:
        pandas_calls[how]()
    with pytest.raises(type(from_pandas.value)) as ours:
        calls[how]()
    assert type(ours.value) is type(from_pandas.value)
    assert N == 23


def test_errors_skip_returns_partial_result_and_warns(backend: str) -> None:
    df = FRAMES["numeric"].assign(a=np.arange(23))
    with pytest.warns(framepar.ChunkFailureWarning):
        got = df.framepar.apply(_fail_on_odd, axis=1, errors="skip", **opts(backend, 1))
    even = df[df.a % 2 == 0]
    assert_same(got, even.apply(_fail_on_odd, axis=1))


def test_unknown_axis_is_rejected_before_work() -> None:
    with pytest.raises(ValueError, match="axis"):
        FRAMES["numeric"].framepar.apply(len, axis=2)


# -- property: random frames and chunkings ------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(st.one_of(st.integers(-50, 50), st.none()), max_size=40),
    chunk_rows=st.integers(1, 12),
)
def test_apply_and_map_equal_pandas_on_random_frames(values: list, chunk_rows: int) -> None:
    df = pd.DataFrame({"a": pd.array(values, dtype="Int64"), "b": [str(v) for v in values]})
    o = {"backend": "serial", "chunk_rows": chunk_rows}
    f = lambda r: f"{r['b']}:{r['a']}"  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_same(df.framepar.apply(f, axis=1, **o), df.apply(f, axis=1))
        assert_same(df["a"].framepar.map(lambda v: v, **o), df["a"].map(lambda v: v))
