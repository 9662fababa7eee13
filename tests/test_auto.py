"""backend="auto": in-process when parallelism cannot pay off, processes when
it can, the function called once per row either way, the choice reported."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pandas.testing as tm
from frames import add_column, base_frame

import framepar


def test_tiny_input_runs_in_process_and_says_why():
    df = base_frame(200)
    run = framepar.run(df, add_column, workers=2)
    assert run.backend == "serial"
    assert "in-process" in run.reason and "too small" in run.reason
    assert run.report.attrs["reason"] == run.reason
    assert set(run.report["backend"]) == {"serial"}
    tm.assert_frame_equal(run.result, add_column(df))


def test_decision_after_the_first_chunk_is_reported_and_followed():
    # Which way a cheap function goes depends on this machine's timing (the
    # decision itself is tested in test_planning); the run must follow it.
    df = pd.DataFrame({"a": np.arange(200_000), "b": np.ones(200_000)})
    run = framepar.run(df, lambda c: c.assign(c=c["a"] + c["b"]), workers=2)
    assert run.report.loc[0, "backend"] == "serial"
    if run.reason.startswith("in-process"):
        assert set(run.report["backend"]) == {"serial"}
        assert len(run.report) == 2  # the measured first chunk, then the rest in one call
    else:
        assert run.reason.startswith("worker processes")
        assert set(run.report["backend"].iloc[1:]) == {"process"}
    tm.assert_frame_equal(run.result, df.assign(c=df["a"] + df["b"]))


def slow_rows(chunk: pd.DataFrame, log: str) -> pd.DataFrame:
    with open(log, "a") as f:
        f.write(f"{chunk['a'].iloc[0]},{len(chunk)}\n")
    time.sleep(0.0005 * len(chunk))
    return chunk.assign(c=chunk["a"] * 3)


def test_expensive_function_goes_to_processes_calling_each_row_once(tmp_path: Path):
    df = pd.DataFrame({"a": np.arange(6_000)})
    log = str(tmp_path / "calls.csv")
    run = framepar.run(df, slow_rows, workers=2, log=log)
    assert run.ok
    assert run.report.loc[0, "backend"] == "serial"
    assert set(run.report["backend"].iloc[1:]) == {"process"}
    assert run.reason.startswith("worker processes")
    assert run.backend == "serial+process"
    calls = pd.read_csv(log, names=["first", "rows"])
    assert calls["rows"].sum() == len(df)  # no sampling runs, no row twice
    assert sorted(calls["first"]) == run.report["start"].tolist()
    tm.assert_frame_equal(run.result, df.assign(c=df["a"] * 3))


def test_one_cpu_means_in_process(tmp_path: Path):
    df = base_frame(5_000)
    run = framepar.run(df, add_column, workers=1)
    assert run.backend == "serial" and "one CPU" in run.reason


def test_workers_default_is_the_affinity_mask():
    from framepar.core import available_cpus

    assert available_cpus() == len(os.sched_getaffinity(0))
