"""Frames and functions the shared backend tests run; the expected answer is
always computed by plain pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd

PANDAS_3 = int(pd.__version__.split(".")[0]) >= 3


def base_frame(n: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": np.arange(n, dtype=np.int64),
            "b": rng.standard_normal(n),
            "s": pd.Series([f"w{i % 7}" for i in range(n)], dtype="str" if PANDAS_3 else object),
            "o": pd.Series([f"o{i % 5}" for i in range(n)], dtype=object),
        }
    )


def indexed(kind: str, n: int = 50) -> pd.DataFrame:
    df = base_frame(n)
    if kind == "range":
        return df
    if kind == "duplicated":
        return df.set_axis([i // 3 for i in range(n)])
    if kind == "non_monotonic":
        return df.set_axis(np.random.default_rng(1).permutation(n) * 10)
    if kind == "datetime":
        return df.set_axis(pd.date_range("2024-01-01", periods=n, freq="h", tz="Europe/Paris"))
    if kind == "multi":
        return df.set_axis(pd.MultiIndex.from_arrays([[i % 4 for i in range(n)], [f"k{i}" for i in range(n)]]))
    if kind == "string":
        return df.set_axis([f"r{i}" for i in range(n)])
    raise ValueError(kind)


INDEX_KINDS = ["range", "duplicated", "non_monotonic", "datetime", "multi", "string"]


def add_column(chunk: pd.DataFrame) -> pd.DataFrame:
    return chunk.assign(c=chunk["a"] * 2 + chunk["b"], u=chunk["s"].str.upper())


def keep_every_third(chunk: pd.DataFrame) -> pd.DataFrame:
    return chunk[chunk["a"] % 3 == 0]


def drop_all_but_high(chunk: pd.DataFrame) -> pd.DataFrame:
    # Most chunks return zero rows.
    return chunk[chunk["a"] >= 45]


def reset(chunk: pd.DataFrame) -> pd.DataFrame:
    return chunk.reset_index(drop=True)


def nan_in_one_place(chunk: pd.DataFrame) -> pd.DataFrame:
    # Only the chunk holding a == 5 gets a NaN (and so a float column).
    return chunk.assign(x=chunk["a"].where(chunk["a"] != 5))


def categorize(chunk: pd.DataFrame) -> pd.DataFrame:
    # Each chunk sees its own categories; the whole frame sees all of them.
    return chunk.assign(cat=chunk["o"].astype("category"), cat2=chunk["s"].astype("category"))


def to_series(chunk: pd.DataFrame) -> pd.Series:
    return (chunk["a"] + chunk["b"]).rename("sum")


def series_double(s: pd.Series) -> pd.Series:
    return s * 2


def chunk_sum(chunk: pd.DataFrame) -> int:
    return int(chunk["a"].sum())


def raise_on_row_13(chunk: pd.DataFrame) -> pd.DataFrame:
    if (chunk["a"] == 13).any():
        raise ValueError("row 13 is bad")
    return chunk


class NeedsArgs(Exception):
    """An exception class that pickles but cannot be unpickled (required args)."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"needs {a} and {b}")


def raise_unrebuildable(chunk: pd.DataFrame) -> pd.DataFrame:
    if (chunk["a"] == 13).any():
        raise NeedsArgs(1, 2)
    return chunk


def scaled(chunk: pd.DataFrame, factor: float, *, offset: float = 0.0) -> pd.DataFrame:
    return chunk.assign(c=chunk["b"] * factor + offset)
