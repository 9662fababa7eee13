"""transport=: what the function sees, what comes back, and the files in between.

Every transport must hand the function exactly the chunk the serial call
would see and give back what plain pandas computes; the shared files must be
private, and gone after the run whatever happened.
"""

from __future__ import annotations

import errno
import glob
import os
import signal
import stat
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pandas as pd
import pandas.testing as tm
import pytest
from frames import PANDAS_3

import framepar
from framepar import collect, core, framecodec, shm, transport
from framepar.exceptions import SharedMemoryFallbackWarning

TRANSPORTS = ["pickle", "arrow", "memmap", "auto"]
N = 60


def rich_frame(n: int = N) -> pd.DataFrame:
    """One column of every kind the transports must carry (or fall back on)."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "f": rng.standard_normal(n),
            "i": np.arange(n, dtype=np.int64),
            "u8": np.arange(n, dtype=np.uint8),
            "b": np.arange(n) % 3 == 0,
            "dt": pd.date_range("2024-01-01", periods=n, freq="h"),
            "tz": pd.date_range("2024-03-30", periods=n, freq="h", tz="Europe/Paris"),
            "td": pd.to_timedelta(np.arange(n), unit="s"),
            "cat": pd.Categorical([["x", "y", "z"][i % 3] for i in range(n)]),
            "nullable": pd.array([None if i % 7 == 0 else i for i in range(n)], dtype="Int64"),
            "s": pd.Series([f"w{i % 5}" for i in range(n)], dtype="str" if PANDAS_3 else object),
            "objstr": pd.Series([f"o{i}" for i in range(n)], dtype=object),
            "mixed": pd.Series([i if i % 2 else str(i) for i in range(n)], dtype=object),
            "pystr": pd.Series([f"p{i}" for i in range(n)], dtype="string[python]"),
        }
    )
    df.loc[3, "dt"] = pd.NaT
    df.loc[5, "f"] = np.nan
    df.attrs["source"] = "test"
    return df


INDEXES = {
    "range": lambda n: pd.RangeIndex(n),
    "offset_range": lambda n: pd.RangeIndex(100, 100 + 2 * n, 2, name="r"),
    "int": lambda n: pd.Index(np.arange(n)[::-1] * 3, name="k"),
    "datetime_tz": lambda n: pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC", name="when"),
    "string": lambda n: pd.Index([f"r{i}" for i in range(n)]),
    "multi": lambda n: pd.MultiIndex.from_arrays([np.arange(n) % 4, [f"k{i}" for i in range(n)]], names=["a", "b"]),
}


def identity_copy(chunk: pd.DataFrame) -> pd.DataFrame:
    return chunk.copy()


def add_columns(chunk: pd.DataFrame) -> pd.DataFrame:
    return chunk.assign(g=chunk["f"] * 2 + chunk["i"], h=chunk["s"].str.upper())


def plus_one(chunk: pd.DataFrame) -> pd.DataFrame:
    return chunk.assign(g=chunk["f"] + 1)


def my_entries() -> list[str]:
    """This process's framepar files and directories, anywhere they may be."""
    found = []
    for base in shm.default_bases():
        found += glob.glob(os.path.join(base, f"framepar-{os.getpid()}-*"))
    return found


@pytest.fixture(autouse=True)
def _nothing_left_behind():
    yield
    assert my_entries() == []


@pytest.mark.parametrize("tr", TRANSPORTS)
@pytest.mark.parametrize("index", list(INDEXES))
def test_function_sees_the_serial_chunk_and_result_round_trips(tr, index):
    df = rich_frame().set_axis(INDEXES[index](N))
    run = framepar.run(df, identity_copy, backend="process", workers=2, chunk_rows=25,
                       transport=tr, combine=list)
    assert run.ok
    for piece, (start, stop) in zip(run.result, zip(run.report["start"], run.report["stop"], strict=True),
                                    strict=True):
        expected = df.iloc[start:stop]
        tm.assert_frame_equal(piece, expected)
        assert piece.attrs == expected.attrs
    if index in ("range", "multi"):
        got = framepar.map_chunks(df, identity_copy, backend="process", workers=2, chunk_rows=25, transport=tr)
        tm.assert_frame_equal(got, df)


@pytest.mark.parametrize("tr", TRANSPORTS)
def test_series_and_duplicate_columns_round_trip(tr):
    df = rich_frame()
    ser = df["f"].rename(("a", 1))
    tm.assert_series_equal(
        framepar.map_chunks(ser, lambda s: s * 2, backend="process", workers=2, chunk_rows=25, transport=tr),
        ser * 2,
    )
    dup = df[["f", "i", "f"]]
    tm.assert_frame_equal(
        framepar.map_chunks(dup, identity_copy, backend="process", workers=2, chunk_rows=25, transport=tr), dup
    )


@pytest.mark.parametrize("tr", ["arrow", "memmap"])
def test_results_come_back_through_files_and_buffers(tr):
    # pandas 2 strings are object columns, which never go into buffers
    df = rich_frame(2000)[["f", "i", "dt", "s"] if PANDAS_3 else ["f", "i", "dt"]]
    func = add_columns if PANDAS_3 else plus_one
    run = framepar.run(df, func, backend="process", workers=2, chunk_rows=300, transport=tr)
    tm.assert_frame_equal(run.result, func(df))
    ways = set(run.report["transport"])
    assert ways <= {f"{tr}/shared", f"{tr}/buffer"}
    assert f"{tr}/buffer" in ways  # after the first results, straight into the buffers
    assert (run.report["bytes_moved"] > 0).all()


def test_results_that_do_not_fit_the_buffers_fall_back():
    df = rich_frame(2000)[["f", "i"]]

    def uneven(chunk: pd.DataFrame) -> pd.DataFrame:
        # The first chunk sets the schema; a later one changes dtype and rows.
        if chunk.index[0] >= 1000:
            return chunk.iloc[::2].astype({"i": "float64"})
        return chunk

    run = framepar.run(df, uneven, backend="process", workers=2, chunk_rows=300, transport="arrow")
    expected = pd.concat([uneven(df.iloc[a:a + 300]) for a in range(0, 2000, 300)])
    tm.assert_frame_equal(run.result, expected)


def test_partial_results_with_buffers_when_a_chunk_fails():
    df = rich_frame(2000)[["f", "i"]]

    def fail_one(chunk: pd.DataFrame) -> pd.DataFrame:
        if chunk.index[0] == 900:
            raise ValueError("bad chunk")
        return chunk.assign(g=chunk["f"] + 1)

    with pytest.warns(framepar.ChunkFailureWarning):
        got = framepar.map_chunks(df, fail_one, backend="process", workers=2, chunk_rows=300,
                                  transport="arrow", errors="skip")
    keep = df.drop(df.index[900:1200])
    tm.assert_frame_equal(got, keep.assign(g=keep["f"] + 1))


def mutate(chunk: pd.DataFrame) -> pd.DataFrame:
    chunk.iloc[0, 0] = 1e9
    chunk["i"] *= 2
    chunk.loc[chunk.index[-1], "s"] = "changed"
    return chunk


@pytest.mark.parametrize(
    ("tr", "backend"),
    [(t, "process") for t in TRANSPORTS] + [("auto", "auto"), ("auto", "serial"), ("auto", "thread")],
)
def test_callers_frame_is_never_modified(tr, backend):
    df = rich_frame(3000)[["f", "i", "s", "objstr"]]
    before = df.copy(deep=True)
    got = framepar.map_chunks(df, mutate, backend=backend, workers=2, chunk_rows=700, transport=tr)
    tm.assert_frame_equal(df, before)
    expected = pd.concat([mutate(before.iloc[a:a + 700].copy()) for a in range(0, 3000, 700)])
    tm.assert_frame_equal(got, expected)


@pytest.mark.parametrize("tr", TRANSPORTS)
def test_mutating_the_result_leaves_the_input_alone(tr, monkeypatch):
    monkeypatch.setattr(transport, "INPUT_THRESHOLD_BYTES", 0)
    df = rich_frame(3000)[["f", "i", "s"]]
    before = df.copy(deep=True)
    got = framepar.map_chunks(df, plus_one, backend="process", workers=2, chunk_rows=700, transport=tr)
    got.iloc[0, 0] = -5.0
    got["i"] += 1
    tm.assert_frame_equal(df, before)


def test_auto_concat_reuses_passed_through_columns():
    df = pd.DataFrame({"a": np.arange(100_000.0), "b": np.ones(100_000)})
    parts = [df.iloc[:1000].assign(c=1.0), df.iloc[1000:].assign(c=2.0)]
    got = collect.concat_results(parts, source=df)
    tm.assert_frame_equal(got, pd.concat(parts))
    if PANDAS_3:
        assert np.shares_memory(got["a"].to_numpy(), df["a"].to_numpy())
    got.iloc[0, 0] = -1.0
    assert df.iloc[0, 0] == 0.0


def test_columnwise_concat_matches_pandas():
    df = rich_frame()
    parts = [df.iloc[:10], df.iloc[10:35], df.iloc[35:]]
    tm.assert_frame_equal(collect.concat_columns(parts), pd.concat(parts))
    # differing dtypes: left to pd.concat, which widens as the whole call would
    assert collect.concat_columns([df.iloc[:5], df.iloc[5:].astype({"i": "float64"})]) is None


def test_report_says_how_each_chunk_travelled():
    df = rich_frame(3000)[["f", "i"]]
    run = framepar.run(df, identity_copy, backend="serial", chunk_rows=1000)
    assert list(run.report["transport"]) == ["none"] * 3
    assert list(run.report["bytes_moved"]) == [0] * 3
    run = framepar.run(df, identity_copy, backend="process", workers=2, chunk_rows=1000, transport="pickle")
    assert set(run.report["transport"]) == {"pickle/pickle"}
    assert (run.report["bytes_moved"] >= df.iloc[:1000].memory_usage().sum()).all()


def test_unknown_transport_is_rejected():
    with pytest.raises(framepar.InvalidArgumentError, match="transport"):
        framepar.map_chunks(rich_frame(), identity_copy, transport="zerocopy")


def test_executor_maps_large_inputs_from_an_arrow_file(monkeypatch):
    monkeypatch.setattr(transport, "INPUT_THRESHOLD_BYTES", 0)
    df = rich_frame(2000)[["f", "i", "s"]]
    with framepar.Executor(workers=2) as ex:
        run = ex.run(df, plus_one, chunk_rows=500)
        assert all(t.startswith("arrow/") for t in run.report["transport"])
        tm.assert_frame_equal(run.result, plus_one(df))
        assert my_entries() == []


# -- the files: permissions, cleanup, full shared memory, stale sweep -------------


def list_workspace(chunk: pd.DataFrame) -> pd.DataFrame:
    owner = os.getppid()
    modes = []
    for base in shm.default_bases():
        for d in glob.glob(os.path.join(base, f"framepar-{owner}-*")):
            modes.append(("dir", stat.S_IMODE(os.stat(d).st_mode)))
            for f in os.listdir(d):
                modes.append(("file", stat.S_IMODE(os.stat(os.path.join(d, f)).st_mode)))
    return pd.DataFrame(modes, columns=["kind", "mode"])


def test_files_and_directories_are_owner_only():
    df = rich_frame(2000)[["f", "i"]]
    seen = framepar.map_chunks(df, list_workspace, backend="process", workers=2, chunk_rows=400,
                               transport="arrow", start_method="fork")
    assert set(seen.loc[seen["kind"] == "dir", "mode"]) == {0o700}
    assert set(seen.loc[seen["kind"] == "file", "mode"]) == {0o600}
    assert (seen["kind"] == "file").any()


def crash_on_second(chunk: pd.DataFrame) -> pd.DataFrame:
    if chunk.index[0] == 400:
        os._exit(3)
    return chunk.assign(g=1.0)


def raise_on_second(chunk: pd.DataFrame) -> pd.DataFrame:
    if chunk.index[0] == 400:
        raise KeyError("boom")
    return chunk.assign(g=1.0)


@pytest.mark.parametrize("tr", ["arrow", "memmap", "auto"])
def test_files_are_removed_after_failure_and_crash(tr):
    df = rich_frame(2000)[["f", "i"]]
    with pytest.raises(KeyError):
        framepar.map_chunks(df, raise_on_second, backend="process", workers=2, chunk_rows=400, transport=tr)
    assert my_entries() == []
    with pytest.raises(framepar.WorkerCrashedError):
        framepar.map_chunks(df, crash_on_second, backend="process", workers=2, chunk_rows=400, transport=tr)
    assert my_entries() == []


def test_files_are_removed_on_keyboard_interrupt(monkeypatch):
    calls = []
    real = core._receive

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            assert my_entries()  # the run's files exist while it runs
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(core, "_receive", interrupted)
    df = rich_frame(2000)[["f", "i"]]
    with pytest.raises(KeyboardInterrupt):
        framepar.map_chunks(df, identity_copy, backend="process", workers=2, chunk_rows=400, transport="arrow")
    assert my_entries() == []


def test_full_shared_memory_falls_back_to_disk_with_a_warning(monkeypatch):
    monkeypatch.setattr(shm, "has_room", lambda path, nbytes: not path.startswith(shm.SHM_DIR))
    df = rich_frame(2000)[["f", "i", "s"]]
    with pytest.warns(SharedMemoryFallbackWarning, match="no room"):
        run = framepar.run(df, plus_one, backend="process", workers=2, chunk_rows=400, transport="arrow")
    tm.assert_frame_equal(run.result, plus_one(df))


def test_shared_memory_filling_up_during_a_write_falls_back(monkeypatch):
    real = framecodec.write

    def enospc_in_shm(table, directory, stem):
        if directory.startswith(shm.SHM_DIR):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(table, directory, stem)

    monkeypatch.setattr(framecodec, "write", enospc_in_shm)
    df = rich_frame(2000)[["f", "i"]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = framepar.run(df, identity_copy, backend="process", workers=2, chunk_rows=400,
                           transport="arrow", start_method="fork")
    assert any(issubclass(w.category, SharedMemoryFallbackWarning) for w in caught)
    tm.assert_frame_equal(run.result, df)


def test_tiny_tmpfs_never_gets_written_past_its_size(monkeypatch, tmp_path):
    # A fake shared-memory directory that reports almost no free space.
    fake = tmp_path / "shm"
    fake.mkdir()
    monkeypatch.setattr(shm, "SHM_DIR", str(fake))
    real = shm.has_room
    monkeypatch.setattr(shm, "has_room", lambda path, nbytes: False if path.startswith(str(fake)) else real(path, nbytes))
    df = rich_frame(2000)[["f", "i"]]
    with pytest.warns(SharedMemoryFallbackWarning):
        got = framepar.map_chunks(df, identity_copy, backend="process", workers=2, chunk_rows=400, transport="arrow")
    tm.assert_frame_equal(got, df)
    leftovers = [p for d in fake.iterdir() for p in d.iterdir()]
    assert leftovers == []


def test_pick_dir_prefers_shared_memory_only_when_it_has_room(monkeypatch, tmp_path):
    monkeypatch.setattr(shm, "has_room", lambda path, nbytes: nbytes < 100)
    assert shm.pick_dir(str(tmp_path / "a"), str(tmp_path / "b"), 10) == str(tmp_path / "a")
    with pytest.warns(SharedMemoryFallbackWarning):
        assert shm.pick_dir(str(tmp_path / "a"), str(tmp_path / "b"), 1000) == str(tmp_path / "b")
    assert shm.pick_dir(None, str(tmp_path / "b"), 10) == str(tmp_path / "b")


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_entries_of_dead_processes_are_swept(tmp_path):
    base = str(tmp_path)
    dead = os.path.join(base, f"framepar-{dead_pid()}-{'a' * 16}")
    os.mkdir(dead, 0o700)
    open(os.path.join(dead, "input.arrow"), "wb").close()
    alive = os.path.join(base, f"framepar-{os.getppid()}-{'b' * 16}")
    os.mkdir(alive, 0o700)
    unrelated = os.path.join(base, "framepar-notours")
    os.mkdir(unrelated)
    removed = shm.sweep((base,))
    assert removed == [dead]
    assert not os.path.exists(dead) and os.path.exists(alive) and os.path.exists(unrelated)


def test_a_run_sweeps_what_a_killed_run_left(monkeypatch):
    # A whole process killed mid-run leaves its workspace; the next run removes it.
    code = (
        "import os, signal, pandas as pd, numpy as np, framepar\n"
        "df = pd.DataFrame({'a': np.arange(4000.0)})\n"
        "def die(c):\n"
        "    os.kill(os.getppid(), signal.SIGKILL)\n"
        "    return c\n"
        "framepar.map_chunks(df, die, backend='process', workers=2, transport='arrow', chunk_rows=1000)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    left = [p for base in shm.default_bases() for p in glob.glob(os.path.join(base, f"framepar-{proc.pid}-*"))]
    assert left  # what a killed process leaves behind ...
    framepar.map_chunks(rich_frame()[["f"]], identity_copy, backend="process", workers=2, transport="arrow")
    assert not any(os.path.exists(p) for p in left)  # ... the next run removes


def test_workspace_names_are_unpredictable_and_exclusive():
    a = shm.Workspace.create(use_shm=False)
    b = shm.Workspace.create(use_shm=False)
    try:
        assert a.disk != b.disk
        assert os.path.basename(a.disk).startswith(f"framepar-{os.getpid()}-")
        assert os.path.dirname(a.disk) == tempfile.gettempdir()
        fd = shm.create_file(a.disk, "x")
        os.close(fd)
        with pytest.raises(FileExistsError):
            shm.create_file(a.disk, "x")
    finally:
        a.close()
        b.close()


def test_result_buffers_adopt_worker_columns(monkeypatch):
    # The final frame's new columns are the buffer file's memory: no concat copy.
    monkeypatch.setattr(transport, "INPUT_THRESHOLD_BYTES", 0)
    df = pd.DataFrame({"a": np.arange(40_000.0), "b": np.arange(40_000)})
    run = framepar.run(df, lambda c: c.assign(c=c["a"] * 2), backend="process", workers=2, transport="auto")
    tm.assert_frame_equal(run.result, df.assign(c=df["a"] * 2))
    assert "buffer" in "".join(run.report["transport"])
    assert _backed_by_a_map(run.result["c"].to_numpy())
    # a plain concatenation would have allocated ordinary memory instead
    assert not _backed_by_a_map(pd.concat([df.iloc[:10], df.iloc[10:]])["a"].to_numpy())


def _backed_by_a_map(values: np.ndarray) -> bool:
    import mmap

    base = values
    while base is not None:
        if isinstance(base, mmap.mmap):
            return True
        base = getattr(base, "base", None) if not isinstance(base, memoryview) else base.obj
    return False


def times_two(chunk: pd.DataFrame) -> pd.Series:
    return chunk["f"] * 2


def every_third(chunk: pd.DataFrame) -> pd.DataFrame:
    return chunk[chunk["i"] % 3 == 0]


def reset(chunk: pd.DataFrame) -> pd.DataFrame:
    return chunk.reset_index(drop=True)


@pytest.mark.parametrize("tr", ["arrow", "memmap"])
def test_edge_shapes_through_files(tr):
    df = rich_frame(3000)[["f", "i", "s"]]
    kw = {"backend": "process", "workers": 2, "transport": tr, "chunk_rows": 1000}
    tm.assert_frame_equal(framepar.map_chunks(df.iloc[:0], plus_one, **kw), plus_one(df.iloc[:0]))
    tm.assert_frame_equal(framepar.map_chunks(df[[]], identity_copy, **kw), df[[]])
    tm.assert_series_equal(framepar.map_chunks(df, times_two, **kw), times_two(df))
    tm.assert_frame_equal(framepar.map_chunks(df, every_third, **kw), every_third(df))
    assert framepar.map_chunks(df, lambda c: c["f"].sum(), combine=sum, **kw) == pytest.approx(df["f"].sum())
    expected = pd.concat([reset(df.iloc[a:a + 1000]) for a in range(0, 3000, 1000)])
    tm.assert_frame_equal(framepar.map_chunks(df, reset, **kw), expected)
