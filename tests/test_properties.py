"""Property tests: random frames and chunkings give plain pandas' answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as tm
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.pandas import column, data_frames, range_indexes

import framepar

frames = data_frames(
    columns=[
        column("i", dtype=np.int64),
        column("f", dtype=float),
        column("t", elements=st.text(max_size=5)),
        column("flag", dtype=bool),
    ],
    index=range_indexes(min_size=0, max_size=60),
)


def row_local(chunk: pd.DataFrame) -> pd.DataFrame:
    return chunk.assign(g=chunk["i"] % 5 + chunk["f"].fillna(0), n=chunk["t"].str.len())


def filtering(chunk: pd.DataFrame) -> pd.DataFrame:
    return chunk[chunk["flag"]]


@pytest.mark.parametrize("backend", ["serial", "thread", "process"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(df=frames, chunk_rows=st.integers(1, 70), shuffle=st.booleans(), func=st.sampled_from([row_local, filtering]))
def test_random_frames_and_chunkings(backend, df, chunk_rows, shuffle, func):
    if shuffle:
        df = df.sample(frac=1, random_state=0)
    got = framepar.map_chunks(df, func, backend=backend, chunk_rows=chunk_rows, workers=2)
    tm.assert_frame_equal(got, func(df))
