"""The real command line, run as a separate process on real files.

``python -m framepar`` is run with PYTHONPATH set to this checkout (the
``framepar`` script on PATH may belong to another install); a separate test
checks that the console-script entry point resolves to the same ``main``.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import cli_funcs
import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
FUNCS = Path(cli_funcs.__file__).resolve()


def env(extra_path: str | None = None) -> dict[str, str]:
    paths = [str(ROOT)] + ([extra_path] if extra_path else [])
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths))


def framepar(*args: str | Path, cwd: Path | None = None, extra_path: str | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "framepar", *map(str, args)],
        capture_output=True, text=True, env=env(extra_path), cwd=cwd, timeout=timeout,
    )


def test_console_script_entry_point_resolves() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["framepar"] == "framepar.cli:main"
    module, _, attr = scripts["framepar"].partition(":")
    main = getattr(importlib.import_module(module), attr)
    assert callable(main)
    for ep in entry_points(group="console_scripts"):
        if ep.name == "framepar":  # an installed copy must name the same function
            assert ep.value == scripts["framepar"]
    # What the generated script does: import main and call it.
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from framepar.cli import main; sys.argv = ['framepar', 'run', '--help']; main()"],
        capture_output=True, text=True, env=env(), timeout=60,
    )
    assert done.returncode == 0 and "--resume" in done.stdout


def test_csv_sample_to_parquet(tmp_path: Path) -> None:
    out = tmp_path / "speed.parquet"
    done = framepar("run", DATA / "flights_sample.csv", "--func", f"{FUNCS}:add_speed", "--output", out,
                    "--chunk-rows", "1200", "--workers", "2", "--no-progress")
    assert done.returncode == 0, done.stderr
    expected = cli_funcs.add_speed(pd.read_csv(DATA / "flights_sample.csv"))
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected)


def test_parquet_to_gzipped_csv(tmp_path: Path) -> None:
    src = tmp_path / "flights.parquet"
    pd.read_parquet(DATA / "flights.parquet").iloc[:20_000].to_parquet(src, index=False, row_group_size=5_000)
    out = tmp_path / "late.csv.gz"
    done = framepar("run", src, "-f", f"{FUNCS}:late_flag", "-o", out, "--workers", "2", "--no-progress")
    assert done.returncode == 0, done.stderr
    expected = cli_funcs.late_flag(pd.read_parquet(src))
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(pd.io.common.StringIO(expected.to_csv(index=False))))


def test_failed_chunk_exit_1_one_line_no_output(tmp_path: Path) -> None:
    src = tmp_path / "numbers.parquet"
    pd.DataFrame({"x": np.arange(500)}).to_parquet(src, index=False, row_group_size=100)
    out = tmp_path / "out.parquet"
    done = framepar("run", src, "-f", f"{FUNCS}:fail_on_chunk_two", "-o", out, "--chunk-rows", "100",
                    "--workers", "2", "--no-progress")
    assert done.returncode == 1
    assert "ValueError: bad rows starting at 200" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert sorted(os.listdir(tmp_path)) == ["numbers.parquet"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_bytes(b"PAR1 this is not parquet PAR1"), "cannot read"),
    ],
)
def test_bad_input_exit_2_one_line(tmp_path: Path, make: object, message: str) -> None:
    src = tmp_path / "in.parquet"
    make(src)  # type: ignore[operator]
    done = framepar("run", src, "-f", f"{FUNCS}:double_x", "-o", tmp_path / "o.parquet", "--no-progress")
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_spec_does_not_let_the_current_directory_shadow_modules(tmp_path: Path) -> None:
    installed = tmp_path / "site"
    installed.mkdir()
    (installed / "shadowed_features.py").write_text("def f(df):\n    return df.assign(src='installed')\n")
    cwd = tmp_path / "work"
    cwd.mkdir()
    (cwd / "shadowed_features.py").write_text("def f(df):\n    return df.assign(src='local')\n")
    src = cwd / "in.csv"
    pd.DataFrame({"x": range(10)}).to_csv(src, index=False)
    done = framepar("run", "in.csv", "-f", "shadowed_features:f", "-o", "a.csv", "--no-progress",
                    cwd=cwd, extra_path=str(installed))
    assert done.returncode == 0, done.stderr
    assert set(pd.read_csv(cwd / "a.csv")["src"]) == {"installed"}
    done = framepar("run", "in.csv", "-f", "./shadowed_features.py:f", "-o", "b.csv", "--no-progress",
                    cwd=cwd, extra_path=str(installed))
    assert done.returncode == 0, done.stderr
    assert set(pd.read_csv(cwd / "b.csv")["src"]) == {"local"}
    done = framepar("run", "in.csv", "-f", "shadowed_features:f", "-o", "c.csv", "--no-progress", cwd=cwd)
    assert done.returncode == 2 and "./shadowed_features.py:f" in done.stderr


def _wait_for(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def test_sigkill_leaves_no_output_and_resume_completes(tmp_path: Path) -> None:
    src = tmp_path / "numbers.parquet"
    df = pd.DataFrame({"x": np.arange(1200, dtype="int64")})
    df.to_parquet(src, index=False, row_group_size=100)
    out = tmp_path / "out.parquet"
    calls = tmp_path / "calls.log"
    args = [sys.executable, "-m", "framepar", "run", str(src), "-f", f"{FUNCS}:slow_double", "-o", str(out),
            "--chunk-rows", "100", "--workers", "2", "--arg", "seconds=0.4", "--arg", f"log={calls}",
            "--no-progress"]
    proc = subprocess.Popen(args, env=env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done_log = tmp_path / ".out.parquet.framepar" / "done.jsonl"
    try:
        _wait_for(lambda: done_log.exists() and len(done_log.read_text().splitlines()) >= 3, 60)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the parent and its workers, mid-run
        proc.wait(30)
    settled = len(done_log.read_text().splitlines())
    assert 3 <= settled < 12
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.parquet.framepar", "calls.log", "numbers.parquet"]

    calls.unlink()
    report = tmp_path / "report.csv"
    done = subprocess.run([*args, "--resume", "--report", str(report)], env=env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(out), cli_funcs.double_x(df))
    rep = pd.read_csv(report)
    reused = int(rep["reused"].sum())
    assert reused >= settled and (rep["status"] == "ok").all()
    computed = calls.read_text().split()
    assert len(computed) == 12 - reused  # only the chunks the killed run had not finished
    assert sorted(int(c) for c in computed) == sorted(rep.loc[~rep["reused"], "start"].tolist())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calls.log", "numbers.parquet", "out.parquet",
                                                            "report.csv"]


def test_by_csv_to_directory_killed_then_resumed(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    keys = np.array([f"g{i}" for i in range(40)], dtype=object)[rng.integers(0, 40, 2400)]
    keys[rng.random(2400) < 0.03] = None
    src = tmp_path / "in.csv.gz"
    pd.DataFrame({"k": keys, "v": rng.integers(0, 100, 2400)}).to_csv(src, index=False)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "framepar", "run", str(src), "-f", f"{FUNCS}:slow_summary", "-o", f"{out}/",
            "--by", "k", "--chunk-rows", "300", "--workers", "2", "--arg", "seconds=0.25", "--no-progress"]
    proc = subprocess.Popen(args, env=env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / ".out.framepar"
    try:
        _wait_for(lambda: (state / "done.jsonl").exists()
                  and len((state / "done.jsonl").read_text().splitlines()) >= 2, 60)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.framepar", "in.csv.gz"]
    done = subprocess.run([*args, "--resume"], env=env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "reused from the interrupted run" in done.stderr
    expected = cli_funcs.group_summary(pd.read_csv(src), sort=True)
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv.gz", "out"]  # spill and state gone


def test_resume_refused_after_input_changed(tmp_path: Path) -> None:
    src = tmp_path / "numbers.parquet"
    pd.DataFrame({"x": np.arange(1000)}).to_parquet(src, index=False, row_group_size=100)
    out = tmp_path / "out.csv"
    args = ["run", src, "-f", f"{FUNCS}:interrupt_at_300", "-o", out, "--chunk-rows", "100",
            "--backend", "serial", "--no-progress"]
    first = framepar(*args)
    assert first.returncode == 130 and "--resume" in first.stderr
    pd.DataFrame({"x": np.arange(1000) + 1}).to_parquet(src, index=False, row_group_size=100)
    again = framepar(*args, "--resume")
    assert again.returncode == 2 and "input file changed" in again.stderr
    assert not out.exists()


def test_inspect_real_file() -> None:
    done = framepar("inspect", DATA / "flights.parquet", "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert "rows:       336,776" in done.stdout and "7 row groups" in done.stdout
    assert "chunk plan: 7 chunks" in done.stdout
