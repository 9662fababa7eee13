"""backend="dask" against a real scheduler and two worker processes on 127.0.0.1.

The cluster (``dask scheduler`` + two ``dask worker`` processes, one thread
each) is started once for the module and stopped at its end. Results are
compared with plain pandas computing the same thing.
"""

from __future__ import annotations

import contextlib
import copyreg
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

# Not imported here: importing distributed makes every exception class defined
# so far picklable (it installs tblib's reducers process-wide), which would
# change what other test modules see. It is imported by the fixtures below and
# that side effect is undone when this module's tests end.
if importlib.util.find_spec("distributed") is None:
    pytest.skip('the dask extra is not installed (pip install "framepar[dask]")', allow_module_level=True)
pytest.importorskip("psutil", reason="the tests' cluster is stopped with psutil (the test extra)")

import cloudpickle
import psutil

import framepar
from framepar.backends import make_backend
from framepar.report import REPORT_COLUMNS

if TYPE_CHECKING:
    import distributed

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
START_TIMEOUT = 60.0


# -- the cluster -------------------------------------------------------------------


class Cluster:
    def __init__(self, address: str, client: distributed.Client) -> None:
        self.address = address
        self.client = client

    def worker_pids(self) -> dict[str, int]:
        return dict(self.client.run(os.getpid))

    def wait_for_two_workers(self) -> None:
        # A killed worker is restarted by its nanny; later tests want both back.
        self.client.wait_for_workers(2, timeout=START_TIMEOUT)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # Workers import this checkout's framepar, and this module's functions by name.
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(TESTS), env.get("PYTHONPATH", "")])
    # The default (3) would make the scheduler re-run a chunk whose worker died;
    # leave it at the default to check that framepar does not depend on it.
    env.pop("DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES", None)
    return env


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Kill the cluster's processes and every process they started (the nannies' workers).

    A test cluster holds nothing worth a graceful shutdown, which takes seconds.
    """
    doomed: list[psutil.Process] = []
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            parent = psutil.Process(p.pid)
            doomed += [*parent.children(recursive=True), parent]
    for proc in doomed:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(doomed, timeout=10)
    for p in procs:
        p.wait(10)


@pytest.fixture(scope="module", autouse=True)
def _undo_exception_pickling_patch() -> Iterator[None]:
    before = dict(copyreg.dispatch_table)
    yield
    for cls in list(copyreg.dispatch_table):
        if cls not in before and isinstance(cls, type) and issubclass(cls, BaseException):
            del copyreg.dispatch_table[cls]


@pytest.fixture
def dask_backend() -> Any:
    import framepar.backends.dask

    return framepar.backends.dask


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("dask")
    scheduler_file = tmp / "scheduler.json"
    dask_cli = [str(Path(sys.executable).with_name("dask"))]
    if not Path(dask_cli[0]).exists():
        pytest.skip("the dask command is not installed next to this Python")
    env = _env()
    procs: list[subprocess.Popen[bytes]] = []
    log = open(tmp / "cluster.log", "wb")  # noqa: SIM115 - closed at teardown
    try:
        procs.append(subprocess.Popen(
            [*dask_cli, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(scheduler_file)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        ))
        deadline = time.monotonic() + START_TIMEOUT
        while not scheduler_file.exists() or not scheduler_file.read_text().strip():
            if time.monotonic() > deadline or procs[0].poll() is not None:
                raise RuntimeError("the Dask scheduler did not start; see " + str(tmp / "cluster.log"))
            time.sleep(0.05)
        address = json.loads(scheduler_file.read_text())["address"]
        for i in range(2):
            procs.append(subprocess.Popen(
                [*dask_cli, "worker", "--scheduler-file", str(scheduler_file), "--nworkers", "1",
                 "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard", "--name", f"w{i}"],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            ))
        import distributed

        client = distributed.Client(address, timeout=START_TIMEOUT, set_as_default=False)
        try:
            client.wait_for_workers(2, timeout=START_TIMEOUT)
            yield Cluster(address, client)
        finally:
            client.close()
    finally:
        _stop(procs)
        log.close()


@pytest.fixture(scope="module")
def executor(cluster: Cluster) -> Iterator[framepar.Executor]:
    with framepar.Executor(backend="dask", address=cluster.address) as ex:
        yield ex


@pytest.fixture
def healthy(cluster: Cluster) -> Cluster:
    cluster.wait_for_two_workers()
    return cluster


# -- data and functions (module level: workers import them by name) ---------------


def make_frame(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {"x": rng.integers(0, 100, n), "y": rng.normal(size=n), "s": [f"r{i}" for i in range(n)]},
        index=pd.Index(rng.permutation(n) * 3, name="key"),  # non-monotonic labels
    )


def add_and_filter(df: pd.DataFrame) -> pd.DataFrame:
    out = df.assign(z=df["x"] * df["y"])
    return out[out["x"] % 3 != 0]


def double_series(s: pd.Series) -> pd.Series:
    return s * 2


class ChunkValueError(ValueError):
    pass


def fail_on_big(df: pd.DataFrame, limit: int) -> pd.DataFrame:
    if (df["x"] > limit).any():
        raise ChunkValueError(f"x above {limit}")
    return df


class NeedsTwoArgs(Exception):
    def __init__(self, a: int, b: int) -> None:  # cannot be rebuilt from args alone
        super().__init__(f"{a}-{b}")


def raise_unrebuildable(df: pd.DataFrame) -> pd.DataFrame:
    raise NeedsTwoArgs(1, 2)


def fail_once(df: pd.DataFrame, marks: str) -> pd.DataFrame:
    mark = Path(marks) / f"seen-{df.index[0]}"
    if not mark.exists():
        mark.touch()
        raise OSError("first attempt fails")
    return df


def sleep_in_one_chunk(df: pd.DataFrame, marks: str, label: int, seconds: float) -> pd.DataFrame:
    """The chunk starting at ``label`` records its pid and sleeps, on its first attempt only."""
    mark = Path(marks) / "started"
    if df.index[0] == label and not mark.exists():
        mark.write_text(str(os.getpid()))
        time.sleep(seconds)
    return df.assign(pid_free=df["x"] + 1)


# -- the shared backend suite, run against the cluster --------------------------------

import test_backends_shared as shared  # noqa: E402

# Every test of the shared suite runs here too, with this module's ``backend``
# fixture (below) in place of conftest's: backend="dask" on the cluster above.
globals().update({name: obj for name, obj in vars(shared).items() if name.startswith("test_")})


ONE_ROW_CHUNK_KINDS = ("range", "multi")


@pytest.fixture
def backend(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    callspec = getattr(request.node, "callspec", None)
    params = callspec.params if callspec is not None else {}
    if params.get("chunk_rows") == 1 and params.get("kind", "range") not in ONE_ROW_CHUNK_KINDS:
        # Fifty one-row tasks per case: kept to two index kinds so that this
        # module stays fast (labels and ordering are the core's, checked for
        # every kind with the other backends and the other chunkings here).
        pytest.skip(f"one-row chunks on Dask are checked for {ONE_ROW_CHUNK_KINDS} only")
    # The cluster's client is the current one, as in a user's session with a Client.
    with cluster.client.as_current():
        yield "dask"


# -- more checks on results --------------------------------------------------------------


@pytest.mark.parametrize("chunk_rows", [1, 7, 40])
def test_dataframe_results_equal_pandas(cluster: Cluster, chunk_rows: int) -> None:
    df = make_frame()
    got = framepar.map_chunks(df, add_and_filter, backend="dask", address=cluster.address,
                              chunk_rows=chunk_rows, progress=False)
    pd.testing.assert_frame_equal(got, add_and_filter(df))


@pytest.mark.parametrize("n_chunks", [1, 3, 40])
def test_series_results_equal_pandas(executor: framepar.Executor, n_chunks: int) -> None:
    s = make_frame()["y"]
    got = executor.map_chunks(s, double_series, n_chunks=n_chunks, progress=False)
    pd.testing.assert_series_equal(got, double_series(s))


def test_combine_and_args(executor: framepar.Executor) -> None:
    df = make_frame()
    total = executor.map_chunks(df, lambda c, col: int(c[col].sum()), "x", chunk_rows=9,
                                combine=sum, progress=False)
    assert total == int(df["x"].sum())


def test_report_columns_and_workers(cluster: Cluster, executor: framepar.Executor) -> None:
    df = make_frame()
    run = executor.run(df, add_and_filter, chunk_rows=7, progress=False)
    assert run.ok and run.backend == "dask"
    report = run.report
    assert list(report.columns)[: len(REPORT_COLUMNS)] == REPORT_COLUMNS
    assert report["transport"].str.startswith("pickle").all()  # never this machine's shared memory
    assert report["chunk"].tolist() == list(range(len(report)))
    assert report["rows"].sum() == len(df)
    assert (report["status"] == "ok").all() and (report["attempts"] == 1).all()
    assert set(report["worker"]) <= set(cluster.client.nthreads())
    assert set(report["backend"]) == {"dask"}
    assert executor.workers == 2  # the cluster's threads


# -- errors -----------------------------------------------------------------------------


def test_errors_raise_original_type_with_traceback(cluster: Cluster) -> None:
    df = make_frame()
    with pytest.raises(ChunkValueError, match="x above 90") as info:
        framepar.map_chunks(df, fail_on_big, 90, backend="dask", address=cluster.address,
                            chunk_rows=5, progress=False)
    exc = info.value
    assert "fail_on_big" in str(exc.__cause__)  # the worker's traceback text
    assert any("chunk" in note and "tcp://127.0.0.1" in note for note in exc.__notes__)


def test_errors_collect(executor: framepar.Executor) -> None:
    df = make_frame()
    with pytest.raises(framepar.ChunksFailed) as info:
        executor.map_chunks(df, fail_on_big, 90, chunk_rows=5, errors="collect", progress=False)
    group = info.value
    assert all(isinstance(e, ChunkValueError) for e in group.exceptions)
    ok_chunks = [df.iloc[i : i + 5] for i in range(0, len(df), 5) if not (df["x"].iloc[i : i + 5] > 90).any()]
    pd.testing.assert_frame_equal(group.partial, pd.concat(ok_chunks))
    assert group.report is not None
    failed = group.report[group.report["status"] == "error"]
    assert len(failed) == len(group.exceptions)
    assert failed["traceback"].str.contains("fail_on_big").all()


def test_errors_skip(executor: framepar.Executor) -> None:
    df = make_frame()
    with pytest.warns(framepar.ChunkFailureWarning):
        got = executor.map_chunks(df, fail_on_big, 90, chunk_rows=5, errors="skip", progress=False)
    ok_chunks = [df.iloc[i : i + 5] for i in range(0, len(df), 5) if not (df["x"].iloc[i : i + 5] > 90).any()]
    pd.testing.assert_frame_equal(got, pd.concat(ok_chunks))


def test_unrebuildable_exception_keeps_type_name_and_traceback(executor: framepar.Executor) -> None:
    run = executor.run(make_frame(), raise_unrebuildable, n_chunks=2, errors="collect", progress=False)
    assert not run.ok
    assert all(isinstance(e, framepar.RemoteExceptionError) for e in run.errors)
    assert set(run.report["error_type"]) == {f"{NeedsTwoArgs.__module__}.NeedsTwoArgs"}
    assert run.report["traceback"].str.contains("raise_unrebuildable").all()


def test_retries(executor: framepar.Executor, tmp_path: Path) -> None:
    df = make_frame()
    run = executor.run(df, fail_once, str(tmp_path), chunk_rows=10, retries=1, progress=False)
    assert run.ok
    pd.testing.assert_frame_equal(run.result, df)
    assert (run.report["attempts"] == 2).all()


@pytest.mark.parametrize("scatter", [True, False], ids=["scattered", "inline"])
def test_retry_does_not_pickle_the_chunk_again(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, dask_backend: Any, scatter: bool
) -> None:
    import distributed

    class Payload:
        pickled = 0

        def __reduce__(self) -> Any:
            Payload.pickled += 1
            return (int, (0,))

    monkeypatch.setattr(dask_backend, "SCATTER_MIN_BYTES", 0 if scatter else 1 << 30)
    backend = make_backend("dask", 0, client=cluster.client)
    try:
        job = cloudpickle.dumps(lambda payload: 1 / payload)
        backend.start_job(lambda p: None, job)
        outcomes = []
        held = []
        for _ in range(2):  # the same chunk, submitted again as a retry would be
            backend.submit(0, Payload())
            held.append(backend._payloads[0])
            while backend.in_flight():
                outcomes += backend.wait()
        assert held[0] is held[1]
        assert isinstance(held[0], distributed.Future) == scatter
        assert [o.status for o in outcomes] == ["error", "error"]
        assert all(isinstance(o.error.exception, ZeroDivisionError) for o in outcomes if o.error)
        assert Payload.pickled == 1
        backend.end_job()
    finally:
        backend.shutdown()
    assert cluster.client.status == "running"  # a client it did not create stays open


# -- a worker killed mid-chunk, and a chunk past its timeout ------------------------------


def _kill_when_started(marks: Path, done: threading.Event) -> None:
    mark = marks / "started"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and not done.is_set():
        if mark.exists() and mark.read_text():
            time.sleep(0.5)  # well into the chunk
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(mark.read_text()), signal.SIGKILL)
            return
        time.sleep(0.02)


def _run_with_kill(cluster: Cluster, df: pd.DataFrame, marks: Path, **options: Any) -> framepar.Run:
    done = threading.Event()
    killer = threading.Thread(target=_kill_when_started, args=(marks, done))
    killer.start()
    try:
        return framepar.run(df, sleep_in_one_chunk, str(marks), int(df.index[10]), 30.0,
                            backend="dask", address=cluster.address, chunk_rows=10, progress=False,
                            **options)
    finally:
        done.set()
        killer.join()


def test_killed_worker_is_crashed_for_that_chunk_only(healthy: Cluster, tmp_path: Path) -> None:
    df = make_frame()
    run = _run_with_kill(healthy, df, tmp_path, errors="collect")
    report = run.report
    assert report["status"].tolist() == ["ok", "crashed", "ok", "ok"]
    crashed = report.iloc[1]
    assert crashed["worker"].startswith("tcp://127.0.0.1:")
    assert crashed["attempts"] == 1
    assert isinstance(run.errors[0], framepar.WorkerCrashedError)
    expected = df.assign(pid_free=df["x"] + 1)
    pd.testing.assert_frame_equal(run.result, pd.concat([expected.iloc[:10], expected.iloc[20:]]))


@pytest.mark.parametrize("scatter", [True, False], ids=["scattered", "inline"])
def test_killed_worker_chunk_is_retried(
    healthy: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dask_backend: Any, scatter: bool
) -> None:
    # Scattered rows die with the worker that held them: the retry sends them again.
    monkeypatch.setattr(dask_backend, "SCATTER_MIN_BYTES", 0 if scatter else 1 << 30)
    df = make_frame()
    run = _run_with_kill(healthy, df, tmp_path, retries=1)
    assert run.ok, run.report
    assert run.report["attempts"].tolist() == [1, 2, 1, 1]
    pd.testing.assert_frame_equal(run.result, df.assign(pid_free=df["x"] + 1))


def test_timeout_reports_and_restarts_the_worker(healthy: Cluster, tmp_path: Path) -> None:
    df = make_frame()
    before = healthy.worker_pids()
    started = time.monotonic()
    run = framepar.run(df, sleep_in_one_chunk, str(tmp_path), int(df.index[10]), 120.0,
                       backend="dask", address=healthy.address, chunk_rows=10, timeout=5,
                       errors="collect", progress=False)
    assert time.monotonic() - started < 60  # far less than the chunk's 120 s sleep
    assert run.report["status"].tolist() == ["ok", "timeout", "ok", "ok"]
    assert isinstance(run.errors[0], framepar.ChunkTimeoutError)
    sleeper = int((tmp_path / "started").read_text())
    # The stuck chunk was stopped: its worker process is gone (restarted by the nanny).
    healthy.wait_for_two_workers()
    assert sleeper in before.values()
    assert sleeper not in healthy.worker_pids().values()


# -- a file through the command line, on the cluster ------------------------------------------


def test_cli_runs_a_parquet_file_on_the_cluster(cluster: Cluster, tmp_path: Path) -> None:
    """``framepar run --backend dask --scheduler``: workers read their own row groups."""
    import cli_funcs

    src = tmp_path / "flights.parquet"  # a real file cut to keep this test short: 4 row groups
    pd.read_parquet(REPO / "data" / "flights.parquet").iloc[:20_000].to_parquet(
        src, index=False, row_group_size=5_000
    )
    out, report = tmp_path / "speed.parquet", tmp_path / "report.csv"
    done = subprocess.run(
        [sys.executable, "-m", "framepar", "run", str(src), "--func", f"{cli_funcs.__file__}:add_speed",
         "--output", str(out), "--backend", "dask", "--scheduler", cluster.address,
         "--report", str(report), "--no-progress"],
        capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=240,
    )
    assert done.returncode == 0, done.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(out), cli_funcs.add_speed(pd.read_parquet(src)))
    rep = pd.read_csv(report)
    assert (rep["status"] == "ok").all() and rep["backend"].eq("dask").all()
    assert set(rep["worker"]) <= set(cluster.client.nthreads())
    assert rep["source"].str.contains("row group").all(), rep["source"]  # a recipe, not rows


def test_cli_scheduler_needs_the_dask_backend(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from framepar.cli import app

    result = CliRunner().invoke(app, [
        "run", str(REPO / "data" / "flights.parquet"), "--func", "cli_funcs:add_speed",
        "--output", str(tmp_path / "o.parquet"), "--backend", "process", "--scheduler", "tcp://127.0.0.1:9",
    ])
    assert result.exit_code == 2
    assert "--scheduler" in result.output and "--backend dask" in result.output
    assert not (tmp_path / "o.parquet").exists()


# -- which cluster ---------------------------------------------------------------------------


def test_uses_the_current_client(cluster: Cluster) -> None:
    import distributed

    df = make_frame()
    with distributed.Client(cluster.address, set_as_default=True) as client:
        run = framepar.run(df, add_and_filter, backend="dask", n_chunks=4, progress=False)
        assert client.status == "running"  # framepar did not close it
    assert run.ok
    pd.testing.assert_frame_equal(run.result, add_and_filter(df))
    assert set(run.report["worker"]) <= set(cluster.client.nthreads())


def test_accessor_takes_the_address(cluster: Cluster) -> None:
    df = make_frame()
    got = df.framepar.apply(lambda r: r["x"] * r["y"], axis=1, backend="dask",
                            address=cluster.address, n_chunks=3, progress=False)
    pd.testing.assert_series_equal(got, df.apply(lambda r: r["x"] * r["y"], axis=1))


def test_address_from_environment(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAMEPAR_DASK_ADDRESS", cluster.address)
    df = make_frame()
    run = framepar.run(df, add_and_filter, backend="dask", n_chunks=3, progress=False)
    assert run.ok
    assert set(run.report["worker"]) <= set(cluster.client.nthreads())


def test_address_needs_the_dask_backend() -> None:
    with pytest.raises(framepar.InvalidArgumentError, match="backend='dask'"):
        framepar.map_chunks(make_frame(), add_and_filter, backend="process", address="tcp://127.0.0.1:1")


@pytest.mark.parametrize("transport", ["arrow", "memmap"])
def test_local_only_transports_are_refused_before_connecting(transport: str) -> None:
    with pytest.raises(framepar.InvalidArgumentError, match="Dask workers elsewhere cannot read"):
        framepar.map_chunks(make_frame(), add_and_filter, backend="dask", transport=transport,
                            address="tcp://127.0.0.1:9")  # never contacted


def test_local_cluster_is_started_and_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    import distributed

    monkeypatch.delenv("FRAMEPAR_DASK_ADDRESS", raising=False)
    with pytest.raises(ValueError):
        distributed.default_client()  # nothing current: framepar must start its own
    def children() -> set[int]:
        # multiprocessing's resource tracker is started once and lives as long as we do.
        return {p.pid for p in psutil.Process().children(recursive=True)
                if "resource_tracker" not in " ".join(p.cmdline())}

    before = children()
    df = make_frame()
    run = framepar.run(df, add_and_filter, backend="dask", workers=1, chunk_rows=10, progress=False)
    assert run.ok
    pd.testing.assert_frame_equal(run.result, add_and_filter(df))
    assert run.report["worker"].str.startswith("tcp://127.0.0.1:").all()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = children() - before
        if not left:
            break
        time.sleep(0.1)
    assert not left, "the local cluster's processes outlived the run"


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    monkeypatch.delitem(sys.modules, "framepar.backends.dask", raising=False)
    with pytest.raises(ImportError, match=r'pip install "framepar\[dask\]"'):
        framepar.map_chunks(make_frame(), add_and_filter, backend="dask")
    with pytest.raises(ImportError, match=r'pip install "framepar\[dask\]"'):
        framepar.Executor(backend="dask")


def test_unreachable_scheduler_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, dask_backend: Any) -> None:
    monkeypatch.setattr(dask_backend, "CONNECT_TIMEOUT_SECONDS", 1.0)
    with warnings.catch_warnings(), pytest.raises(ConnectionError, match="could not reach the Dask scheduler"):
        warnings.simplefilter("ignore")
        framepar.map_chunks(make_frame(), add_and_filter, backend="dask", address="tcp://127.0.0.1:9")
