"""Executor: warm workers across calls, clean shutdown."""

from __future__ import annotations

import os

import pandas.testing as tm
import pytest
from conftest import worker_children
from frames import add_column, base_frame, raise_on_row_13

import framepar


def pid_of(chunk):
    return chunk.assign(pid=os.getpid())


def test_workers_stay_warm_across_calls_and_stop_on_exit():
    before = worker_children()
    df = base_frame(40)
    with framepar.Executor(workers=2) as ex:
        first = set(ex.map_chunks(df, pid_of, chunk_rows=5)["pid"])
        second = set(ex.map_chunks(df, pid_of, chunk_rows=5)["pid"])
        assert first == second and os.getpid() not in first
        assert first <= worker_children()
        tm.assert_frame_equal(ex.map_chunks(df, add_column, chunk_rows=7), add_column(df))
    assert worker_children() == before


def test_executor_is_usable_after_a_failure():
    df = base_frame(40)
    with framepar.Executor(workers=2) as ex:
        with pytest.raises(ValueError):
            ex.map_chunks(df, raise_on_row_13, chunk_rows=5)
        run = ex.run(df, raise_on_row_13, chunk_rows=5, errors="collect")
        assert run.report["status"].tolist().count("error") == 1
        tm.assert_frame_equal(ex.map_chunks(df, add_column, chunk_rows=7), add_column(df))


@pytest.mark.parametrize("backend", ["thread", "serial", "auto"])
def test_other_executor_backends(backend):
    df = base_frame(40)
    with framepar.Executor(workers=2, backend=backend) as ex:
        tm.assert_frame_equal(ex.map_chunks(df, add_column, chunk_rows=7), add_column(df))


def test_shut_down_executor_refuses_work():
    ex = framepar.Executor(workers=1)
    ex.shutdown()
    ex.shutdown()  # idempotent
    with pytest.raises(RuntimeError, match="shut down"):
        ex.map_chunks(base_frame(5), add_column)


def test_bad_executor_options():
    with pytest.raises(ValueError, match="Executor backend"):
        framepar.Executor(backend="gpu")
    with pytest.raises(ValueError, match="workers"):
        framepar.Executor(workers=0)
    with pytest.raises(ValueError, match="max_tasks_per_child"):
        framepar.Executor(max_tasks_per_child=0)


def test_calls_without_executor_leave_no_processes():
    before = worker_children()
    framepar.map_chunks(base_frame(40), add_column, backend="process", chunk_rows=5)
    assert worker_children() == before
