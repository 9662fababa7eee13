"""Frames the pandas-twin tests share: each kind of column pandas' own tests cover."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

N = 23


def frames() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(7)
    keys = ["x", "y", "z", "w"]
    numeric = pd.DataFrame({
        "k": rng.integers(0, 5, N),
        "a": rng.integers(0, 100, N),
        "b": rng.random(N),
    })
    strings = pd.DataFrame({
        "k": [keys[i % 4] for i in range(N)],
        "s": [f"w{i % 5}" * (1 + i % 3) for i in range(N)],
        "a": np.arange(N),
    })
    with_nan = pd.DataFrame({
        "k": [np.nan if i % 6 == 0 else float(i % 3) for i in range(N)],
        "a": [np.nan if i % 4 == 0 else float(i) for i in range(N)],
        "s": [None if i % 5 == 0 else f"v{i}" for i in range(N)],
    })
    categorical = pd.DataFrame({
        "k": pd.Categorical([keys[i % 3] for i in range(N)], categories=keys),
        "a": np.arange(N, dtype=np.int64),
        "b": rng.random(N),
    })
    datetime = pd.DataFrame(
        {
            "k": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 4, N), unit="D"),
            "t": pd.date_range("2024-03-01", periods=N, freq="h", tz="UTC"),
            "a": rng.random(N),
        },
        index=pd.date_range("2020-01-01", periods=N, freq="D"),
    )
    multi = pd.DataFrame(
        {"k": rng.integers(0, 3, N), "a": rng.random(N), "b": rng.integers(0, 9, N)},
        index=pd.MultiIndex.from_arrays(
            [[f"g{i % 4}" for i in range(N)], np.arange(N)], names=["outer", "inner"]
        ),
    )
    messy_index = numeric.set_axis([5, 3, 3, 1, 9, 0, 2, 2, 7, 8, 11, 4, 6, 10, 12, 13, 14, 15,
                                    16, 17, 18, 19, 20][:N], axis=0)
    return {
        "numeric": numeric,
        "strings": strings,
        "nan": with_nan,
        "categorical": categorical,
        "datetime": datetime,
        "multiindex": multi,
        "messy_index": messy_index,
        "empty": numeric.iloc[:0],
    }


def assert_twin(pandas_call: Any, framepar_call: Any) -> None:
    """The framepar call returns what the pandas call returns, or raises the
    same exception type when pandas raises."""
    try:
        expected = pandas_call()
    except Exception as exc:  # pandas refuses: so must we, with the same type
        try:
            framepar_call()
        except Exception as ours:
            assert type(ours) is type(exc), (ours, exc)
            return
        raise AssertionError(f"pandas raised {exc!r}, framepar did not") from None
    assert_same(framepar_call(), expected)


def assert_same(got: Any, expected: Any) -> None:
    """pandas' own equality check, strict about dtypes, index and names."""
    assert type(got) is type(expected), (type(got), type(expected))
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(got, expected)
    elif isinstance(expected, pd.Series):
        pd.testing.assert_series_equal(got, expected)
    else:
        assert got == expected
