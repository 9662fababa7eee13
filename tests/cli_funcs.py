"""Functions the CLI tests run, named by path (path/to/cli_funcs.py:NAME)."""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd


def add_speed(df: pd.DataFrame, factor: float = 60.0) -> pd.DataFrame:
    return df.assign(speed=df["distance"] / df["air_time"] * factor)


def late_flag(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(late=df["arr_delay"] > 15, route=df["origin"] + "-" + df["dest"])


def fail_on_chunk_two(df: pd.DataFrame) -> pd.DataFrame:
    if len(df) and df.index[0] // 100 == 2:
        raise ValueError(f"bad rows starting at {df.index[0]}")
    return df.assign(y=df["x"] * 2)


def double_x(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(y=df["x"] * 2)


def slow_double(df: pd.DataFrame, seconds: float = 0.4, log: str = "") -> pd.DataFrame:
    if log:
        with open(log, "a") as fh:
            fh.write(f"{df.index[0] if len(df) else -1}\n")
    time.sleep(seconds)
    return df.assign(y=df["x"] * 2)


def interrupt_at_300(df: pd.DataFrame) -> pd.DataFrame:
    if len(df) and df.index[0] == 300:
        raise KeyboardInterrupt
    return df.assign(y=df["x"] * 2)


def null_note_first(df: pd.DataFrame) -> pd.DataFrame:
    # All-null in the first chunk (object column of None), text afterwards.
    note = [None] * len(df) if df.index[0] < 100 else [f"n{i}" for i in df.index]
    miss = np.where(df.index % 50 == 0, np.nan, df["x"]) if df.index[0] >= 200 else df["x"]
    return df.assign(note=pd.Series(note, index=df.index, dtype=object), maybe=miss)


def per_group(df: pd.DataFrame, key: str = "carrier") -> pd.DataFrame:
    return df.groupby(key, as_index=False, sort=False).agg(n=("distance", "size"), total=("distance", "sum"))


def group_rows(df: pd.DataFrame, key: str = "k") -> pd.DataFrame:
    """Per row: its index label, its group's size and its position in the group.

    Sizes equal to the whole file's show the chunk held whole groups; positions
    show the rows of a group kept their input order."""
    g = df.groupby(key, sort=False, dropna=False)["v"]
    return df.assign(row=df.index, n=g.transform("size"), pos=g.cumcount())


def group_summary(df: pd.DataFrame, key: str = "k", sort: bool = False) -> pd.DataFrame:
    g = df.assign(row=df.index).groupby(key, sort=sort, dropna=False)
    return g.agg(n=("v", "size"), total=("v", "sum"), first_row=("row", "first"),
                 last_row=("row", "last")).reset_index()


def slow_summary(df: pd.DataFrame, key: str = "k", seconds: float = 0.3) -> pd.DataFrame:
    time.sleep(seconds)
    return group_summary(df, key)


def summary_until_interrupt(df: pd.DataFrame, key: str = "k", stop: str = "") -> pd.DataFrame:
    """Ctrl-C on the chunk holding the group ``stop`` unless FP_TEST_GO is set."""
    if stop and not os.environ.get("FP_TEST_GO") and (df[key] == stop).any():
        raise KeyboardInterrupt
    return group_summary(df, key)


def fail_on_group(df: pd.DataFrame, key: str = "k", bad: str = "") -> pd.DataFrame:
    if (df[key] == bad).any():
        raise ValueError(f"bad group {bad}")
    return group_summary(df, key)


def crash(df: pd.DataFrame) -> pd.DataFrame:
    os._exit(3)


def not_a_frame(df: pd.DataFrame) -> int:
    return len(df)


NOT_CALLABLE = 42
