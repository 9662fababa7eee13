"""How failures surface: raise, collect, skip, and what the report says."""

from __future__ import annotations

import warnings

import pandas as pd
import pandas.testing as tm
import pytest
from frames import NeedsArgs, base_frame, raise_on_row_13, raise_unrebuildable

import framepar

N = 50


def good_part(df: pd.DataFrame, chunk_rows: int, bad_row: int) -> pd.DataFrame:
    """What the chunks that do not hold ``bad_row`` produce (pandas computes it)."""
    start = bad_row // chunk_rows * chunk_rows
    return df.drop(df.index[start : start + chunk_rows])


def test_raise_reraises_the_original_type_with_a_note(backend):
    df = base_frame(N)
    with pytest.raises(ValueError, match="row 13 is bad") as info:
        framepar.map_chunks(df, raise_on_row_13, backend=backend, chunk_rows=7, workers=2)
    exc = info.value
    notes = "\n".join(getattr(exc, "__notes__", []))
    assert "chunk 1 (rows 7:14, labels 7..13)" in notes
    report = exc.framepar_report
    assert report.loc[1, "status"] == "error"
    assert report.loc[1, "error_type"] == "ValueError"
    assert "row 13 is bad" in report.loc[1, "traceback"]
    assert "raise_on_row_13" in report.loc[1, "traceback"]


def test_raise_from_a_worker_attaches_its_traceback_as_cause():
    df = base_frame(N)
    with pytest.raises(ValueError) as info:
        framepar.map_chunks(df, raise_on_row_13, backend="process", chunk_rows=7, workers=2)
    cause = info.value.__cause__
    assert cause is not None and "raise_on_row_13" in str(cause)


def test_serial_backend_keeps_the_real_traceback():
    df = base_frame(N)
    with pytest.raises(ValueError) as info:
        framepar.map_chunks(df, raise_on_row_13, backend="serial", chunk_rows=7)
    frames = [f.name for f in info.traceback]
    assert "raise_on_row_13" in frames


def test_raise_stops_dispatching_and_cancels_the_rest():
    df = base_frame(N)
    run = framepar.run(df, raise_on_row_13, backend="serial", chunk_rows=7)
    assert not run.ok
    statuses = run.report["status"].tolist()
    assert statuses[:2] == ["ok", "error"]
    assert set(statuses[2:]) == {"cancelled"}


def test_collect_raises_an_exception_group_with_partial_and_report(backend):
    df = base_frame(N)
    with pytest.raises(framepar.ChunksFailed) as info:
        framepar.map_chunks(df, raise_on_row_13, backend=backend, chunk_rows=7, workers=2, errors="collect")
    group = info.value
    assert isinstance(group, ExceptionGroup)
    assert [type(e) for e in group.exceptions] == [ValueError]
    tm.assert_frame_equal(group.partial, good_part(df, 7, 13))
    assert group.report["status"].tolist().count("ok") == len(group.report) - 1


def test_except_star_catches_the_chunk_exception_type():
    df = base_frame(N)
    caught = []
    try:
        framepar.map_chunks(df, raise_on_row_13, backend="process", chunk_rows=7, errors="collect")
    except* ValueError as group:
        caught.extend(group.exceptions)
    assert len(caught) == 1 and "row 13" in str(caught[0])


def test_skip_warns_and_returns_the_good_chunks(backend):
    df = base_frame(N)
    with pytest.warns(framepar.ChunkFailureWarning, match="1 of 8 chunks failed"):
        got = framepar.map_chunks(df, raise_on_row_13, backend=backend, chunk_rows=7, workers=2, errors="skip")
    tm.assert_frame_equal(got, good_part(df, 7, 13))


def test_run_never_raises_and_can_raise_later(backend):
    df = base_frame(N)
    run = framepar.run(df, raise_on_row_13, backend=backend, chunk_rows=7, workers=2, errors="collect")
    assert not run.ok
    tm.assert_frame_equal(run.result, good_part(df, 7, 13))
    assert len(run.failed) == 1
    with pytest.raises(framepar.ChunksFailed):
        run.raise_for_errors()


def test_run_ok_raise_for_errors_is_silent():
    run = framepar.run(base_frame(N), lambda c: c, backend="serial")
    assert run.ok
    run.raise_for_errors()
    assert "ok" in repr(run)


def test_exception_that_cannot_be_rebuilt_keeps_type_message_and_traceback():
    df = base_frame(N)
    with pytest.raises(framepar.RemoteExceptionError) as info:
        framepar.map_chunks(df, raise_unrebuildable, backend="process", chunk_rows=7)
    err = info.value
    assert isinstance(err, framepar.ChunkError)
    assert err.error_type.endswith("NeedsArgs")
    assert "needs 1 and 2" in err.error_message
    assert "raise_unrebuildable" in err.traceback
    assert err.chunk == 1 and err.start == 7 and err.stop == 14
    assert err.report is not None and err.report.loc[1, "status"] == "error"


def test_in_process_base_exception_is_reported_not_propagated(backend):
    def exits(chunk):
        if (chunk["a"] == 13).any():
            raise SystemExit(4)
        return chunk

    df = base_frame(N)
    run = framepar.run(df, exits, backend=backend, chunk_rows=7, workers=2, errors="collect")
    row = run.report.loc[1]
    assert row["status"] == "error" and row["error_type"] == "SystemExit"
    with pytest.raises(framepar.ChunksFailed) as info:
        run.raise_for_errors()
    assert isinstance(info.value.exceptions[0], framepar.RemoteExceptionError)


def test_a_non_frame_result_is_a_type_error_naming_the_chunk(backend):
    with pytest.raises(TypeError, match=r"chunk \d+ \(rows \d+:\d+\) returned builtins.int"):
        framepar.map_chunks(base_frame(N), lambda c: 1, backend=backend, chunk_rows=7, workers=2)


def test_worker_crash_is_a_chunk_error_with_the_exit_code():
    import os

    def die(chunk):
        if (chunk["a"] == 13).any():
            os._exit(3)
        return chunk

    df = base_frame(N)
    with pytest.raises(framepar.WorkerCrashedError, match="exited with code 3") as info:
        framepar.map_chunks(df, die, backend="process", chunk_rows=7)
    assert info.value.chunk == 1 and info.value.status == "crashed"


def test_no_warning_on_success():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        framepar.map_chunks(base_frame(N), lambda c: c, backend="process", chunk_rows=7)


def test_neediargs_sanity():
    # The fixture exception really cannot be rebuilt from its pickle.
    import pickle

    with pytest.raises(TypeError):
        pickle.loads(pickle.dumps(NeedsArgs(1, 2)))
