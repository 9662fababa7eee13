"""One suite, every backend: results equal what plain pandas computes."""

from __future__ import annotations

import pandas as pd
import pandas.testing as tm
import pytest
from frames import (
    INDEX_KINDS,
    add_column,
    base_frame,
    categorize,
    chunk_sum,
    drop_all_but_high,
    indexed,
    keep_every_third,
    nan_in_one_place,
    reset,
    scaled,
    series_double,
    to_series,
)

import framepar

N = 50
CHUNKINGS = [1, 7, N]


def serial_map(data, func, chunk_rows):
    """The plain-pandas meaning of a chunk map whose function is not row-local."""
    parts = [func(data.iloc[i : i + chunk_rows]) for i in range(0, len(data), chunk_rows)]
    return pd.concat(parts)


@pytest.mark.parametrize("chunk_rows", CHUNKINGS)
@pytest.mark.parametrize("kind", INDEX_KINDS)
def test_row_local_function_equals_pandas(backend, chunk_rows, kind):
    df = indexed(kind, N)
    got = framepar.map_chunks(df, add_column, backend=backend, chunk_rows=chunk_rows, workers=2)
    tm.assert_frame_equal(got, add_column(df))


@pytest.mark.parametrize("chunk_rows", CHUNKINGS)
@pytest.mark.parametrize("func", [keep_every_third, drop_all_but_high, nan_in_one_place])
def test_filters_and_dtype_widening_equal_pandas(backend, chunk_rows, func):
    df = indexed("non_monotonic", N)
    got = framepar.map_chunks(df, func, backend=backend, chunk_rows=chunk_rows, workers=2)
    tm.assert_frame_equal(got, func(df))


def test_int_column_widens_to_float_as_whole_frame_would(backend):
    df = base_frame(N)
    got = framepar.map_chunks(df, nan_in_one_place, backend=backend, chunk_rows=7, workers=2)
    assert got["x"].dtype == nan_in_one_place(df)["x"].dtype == "float64"


@pytest.mark.parametrize("chunk_rows", [3, 7])
def test_categoricals_keep_the_union_of_categories(backend, chunk_rows):
    df = base_frame(N)
    got = framepar.map_chunks(df, categorize, backend=backend, chunk_rows=chunk_rows, workers=2)
    tm.assert_frame_equal(got, categorize(df))


@pytest.mark.parametrize("chunk_rows", CHUNKINGS)
def test_function_that_resets_the_index_keeps_what_it_returned(backend, chunk_rows):
    df = indexed("string", N)
    got = framepar.map_chunks(df, reset, backend=backend, chunk_rows=chunk_rows, workers=2)
    tm.assert_frame_equal(got, serial_map(df, reset, chunk_rows))


@pytest.mark.parametrize("chunk_rows", CHUNKINGS)
def test_series_in_series_out(backend, chunk_rows):
    s = indexed("datetime", N)["b"]
    got = framepar.map_chunks(s, series_double, backend=backend, chunk_rows=chunk_rows, workers=2)
    tm.assert_series_equal(got, series_double(s))


def test_frame_in_series_out(backend):
    df = indexed("multi", N)
    got = framepar.map_chunks(df, to_series, backend=backend, chunk_rows=7, workers=2)
    tm.assert_series_equal(got, to_series(df))


def test_empty_input_calls_function_once_and_keeps_schema(backend):
    df = base_frame(N).iloc[0:0]
    got = framepar.map_chunks(df, add_column, backend=backend, workers=2)
    tm.assert_frame_equal(got, add_column(df))
    report = framepar.run(df, add_column, backend=backend, workers=2).report
    assert len(report) == 1 and report["rows"].tolist() == [0]


def test_str_and_object_columns_keep_their_dtypes(backend):
    df = base_frame(N)
    got = framepar.map_chunks(df, add_column, backend=backend, chunk_rows=7, workers=2)
    expected = add_column(df)
    assert got.dtypes.to_dict() == expected.dtypes.to_dict()
    assert got["o"].dtype == object


def test_args_and_kwargs_reach_the_function(backend):
    df = base_frame(N)
    got = framepar.map_chunks(df, scaled, 3.0, backend=backend, chunk_rows=7, workers=2, offset=1.5)
    tm.assert_frame_equal(got, scaled(df, 3.0, offset=1.5))


def test_combine_reduces_non_frame_results(backend):
    df = base_frame(N)
    got = framepar.map_chunks(df, chunk_sum, backend=backend, chunk_rows=7, workers=2, combine=sum)
    assert got == int(df["a"].sum())


def test_combine_receives_results_in_order(backend):
    df = base_frame(N)
    got = framepar.map_chunks(
        df, lambda c: int(c["a"].iloc[0]), backend=backend, chunk_rows=7, workers=2, combine=list
    )
    assert got == list(range(0, N, 7))


def test_pipe_and_lambdas_work(backend):
    df = base_frame(N)
    got = df.pipe(framepar.map_chunks, lambda c: c.assign(d=c["a"] ** 2), backend=backend, chunk_rows=9)
    tm.assert_frame_equal(got, df.assign(d=df["a"] ** 2))


def test_closure_over_local_state(backend):
    offset = 17
    lookup = {i: f"v{i}" for i in range(N)}

    def local(chunk):
        return chunk.assign(v=chunk["a"].map(lookup), w=chunk["a"] + offset)

    df = base_frame(N)
    got = framepar.map_chunks(df, local, backend=backend, chunk_rows=7, workers=2)
    tm.assert_frame_equal(got, local(df))


def test_report_has_one_row_per_chunk_in_order(backend):
    df = indexed("string", N)
    run = framepar.run(df, add_column, backend=backend, chunk_rows=7, workers=2)
    report = run.report
    assert run.ok
    assert report["chunk"].tolist() == list(range(len(report)))
    assert report["start"].tolist() == list(range(0, N, 7))
    assert report["stop"].tolist() == [min(s + 7, N) for s in range(0, N, 7)]
    assert report["rows"].sum() == N
    assert report["first_label"].tolist() == [df.index[s] for s in range(0, N, 7)]
    assert report["last_label"].tolist() == [df.index[min(s + 7, N) - 1] for s in range(0, N, 7)]
    assert set(report["status"]) == {"ok"}
    assert (report["attempts"] == 1).all()
    assert (report["seconds"] >= 0).all()
    assert report["worker"].str.len().gt(0).all()
    assert report["error_type"].isna().all()


def test_caller_frame_is_not_modified_by_a_mutating_function(backend):
    df = base_frame(N)
    before = df.copy(deep=True)

    def mutate(chunk):
        chunk["a"] = -1
        chunk.iloc[0, 1] = 1e9
        return chunk

    framepar.map_chunks(df, mutate, backend=backend, chunk_rows=7, workers=2)
    tm.assert_frame_equal(df, before)
