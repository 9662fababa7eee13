"""Row windows across chunk boundaries: the core's overlap= and df.framepar.rolling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas_frames import assert_same, frames

import framepar
from framepar.job import ChunkResultTypeError

FRAMES = frames()
PLANS = [("serial", 1), ("serial", 7), ("process", 4)]


@pytest.fixture(params=PLANS, ids=[f"{b}-{n}" for b, n in PLANS])
def plan(request: pytest.FixtureRequest) -> dict:
    backend, chunk_rows = request.param
    return {"backend": backend, "chunk_rows": chunk_rows, "workers": 2, "progress": False}


def _spread(a: np.ndarray) -> float:
    return float(np.nanmax(a) - np.nanmin(a)) if len(a) else np.nan


@pytest.mark.parametrize("window", [1, 2, 5, 30])
@pytest.mark.parametrize("center", [False, True])
def test_rolling_apply_equals_pandas_across_chunks(window: int, center: bool, plan: dict) -> None:
    s = FRAMES["nan"]["a"]
    kw = {"window": window, "center": center, "min_periods": 1}
    assert_same(s.framepar.rolling(**kw).apply(_spread, raw=True, **plan),
                s.rolling(**kw).apply(_spread, raw=True))


@pytest.mark.parametrize("frame", ["numeric", "datetime", "multiindex", "messy_index", "empty"])
def test_frame_rolling_apply_equals_pandas(frame: str, plan: dict) -> None:
    df = FRAMES[frame].select_dtypes("number")
    f = lambda w: w.iloc[-1] - w.iloc[0]  # noqa: E731
    assert_same(df.framepar.rolling(3).apply(f, **plan), df.rolling(3).apply(f))
    for closed in ("left", "both", "neither"):
        assert_same(df.framepar.rolling(4, closed=closed, min_periods=1).apply(_spread, raw=True, **plan),
                    df.rolling(4, closed=closed, min_periods=1).apply(_spread, raw=True))


def test_rolling_apply_args_and_kwargs(plan: dict) -> None:
    s = FRAMES["numeric"]["b"]

    def f(a: np.ndarray, scale: float, shift: float = 0) -> float:
        return float(a.sum() * scale + shift)

    assert_same(s.framepar.rolling(3).apply(f, raw=True, args=(2.0,), kwargs={"shift": 1.0}, **plan),
                s.rolling(3).apply(f, raw=True, args=(2.0,), kwargs={"shift": 1.0}))


def test_map_chunks_overlap_hands_neighbour_rows_and_trims_them(plan: dict) -> None:
    df = FRAMES["numeric"]
    seen: list[int] = []

    def f(c: pd.DataFrame) -> pd.DataFrame:
        seen.append(len(c))
        return c.rolling(3).sum()

    got = framepar.map_chunks(df, f, overlap=2, **plan)
    assert_same(got, df.rolling(3).sum())
    both = framepar.map_chunks(df, lambda c: c.rolling(5, center=True).max(), overlap=(2, 2), **plan)
    assert_same(both, df.rolling(5, center=True).max())
    if plan["backend"] == "serial":
        assert max(seen) == plan["chunk_rows"] + 2  # context rows were really handed over


def test_overlap_report_keeps_each_chunks_own_rows() -> None:
    df = FRAMES["numeric"]
    run = framepar.run(df, lambda c: c, overlap=(3, 1), chunk_rows=5, backend="serial")
    assert run.report["rows"].tolist() == [5, 5, 5, 5, 3]
    assert run.report["start"].tolist() == [0, 5, 10, 15, 20]
    assert_same(run.result, df)


def test_overlap_needs_a_row_aligned_result() -> None:
    df = FRAMES["numeric"]
    with pytest.raises(ChunkResultTypeError, match="one row per input row"):
        framepar.map_chunks(df, lambda c: c.head(1), overlap=1, chunk_rows=5, backend="serial")


@pytest.mark.parametrize("bad", [-1, (1,), (1, -2), 1.5, "2", True])
def test_bad_overlap_is_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="overlap"):
        framepar.map_chunks(FRAMES["numeric"], lambda c: c, overlap=bad)


def test_time_based_and_stepped_windows_are_rejected() -> None:
    df = FRAMES["datetime"]
    with pytest.raises(TypeError, match="number of rows"):
        df.framepar.rolling("2D")
    with pytest.raises(ValueError, match="step"):
        df.framepar.rolling(3, step=2)


def test_exception_in_window_function_keeps_its_type(plan: dict) -> None:
    s = FRAMES["numeric"]["a"]

    def f(a: np.ndarray) -> float:
        if a[-1] > 90:
            raise ZeroDivisionError("big")
        return 0.0

    with pytest.raises(ZeroDivisionError):
        s.rolling(2).apply(f, raw=True)
    with pytest.raises(ZeroDivisionError):
        s.framepar.rolling(2).apply(f, raw=True, **plan)
