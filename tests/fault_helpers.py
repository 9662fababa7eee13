"""Chunk functions that fail on purpose, and probes for processes and files.

Used by ``test_fault_tolerance.py``. The functions live in an importable
module (not in the test module) so that spawned workers can import them
without importing pytest.

:func:`scripted` is one chunk function whose behaviour per chunk is given by
a *plan*: ``{label: behaviour}``; a chunk behaves as the plan says for the
first of its index labels that the plan names. Every call is recorded in a
per-label file under ``state_dir``, so a test can count how often a chunk
really ran (across worker processes) and make a failure happen only on the
first attempt.
"""

from __future__ import annotations

import ctypes
import faulthandler
import os
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from framepar.backends._worker import HEADER

SHM_DIR = "/dev/shm"


def transform(chunk: pd.DataFrame) -> pd.DataFrame:
    """The 'real work' every good chunk does; tests compare it with plain pandas."""
    return chunk.assign(c=chunk["a"] * 2 + chunk["b"])


def make_frame(n_rows: int = 40) -> pd.DataFrame:
    """A frame with a non-monotonic string index (labels differ from positions)."""
    labels = [f"id{(i * 7) % n_rows:03d}" for i in range(n_rows)]
    return pd.DataFrame(
        {"a": range(n_rows), "b": [i / 4 for i in range(n_rows)]}, index=pd.Index(labels, name="key")
    )


class NeedsArgs(Exception):
    """An exception the parent cannot rebuild: pickle calls cls(message) only."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"code {code}: {detail}")
        self.code = code


class CustomStop(BaseException):
    """A BaseException that is neither Exception nor SystemExit."""


def _die(how: str) -> None:
    if how == "exit3":
        os._exit(3)
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "segv":
        faulthandler.disable()  # pytest's handler would print a dump in the test output
        ctypes.string_at(0)  # a real segmentation fault
    if how in ("half-reply", "stall-reply"):
        # Write the start of a reply on the worker's pipe (a length header
        # promising a megabyte, then a few bytes) and die, or stop there for
        # good: what a worker killed, or frozen, in the middle of sending a
        # large result leaves behind.
        import multiprocessing

        conn = multiprocessing.current_process()._args[0]  # type: ignore[attr-defined]
        os.write(conn.fileno(), HEADER.pack(1 << 20) + b"\x80\x05partial")
        if how == "stall-reply":
            _spin()
        os._exit(5)
    raise AssertionError(f"unknown way to die: {how}")


def _spin() -> None:
    # A loop that no signal but SIGKILL stops.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        pass


def _record_call(state_dir: str | None, label: Any) -> int:
    """Append this call to the label's file; return how many calls there were."""
    if state_dir is None:
        return 1
    path = Path(state_dir) / f"calls-{label}"
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    return len(path.read_text().splitlines())


def calls(state_dir: str | Path, label: Any) -> int:
    """How many times the chunk holding ``label`` ran."""
    path = Path(state_dir) / f"calls-{label}"
    return len(path.read_text().splitlines()) if path.exists() else 0


def scripted(
    chunk: pd.DataFrame,
    plan: Mapping[Any, str],
    state_dir: str | None = None,
    pause: float = 0.0,
) -> pd.DataFrame:
    """``transform(chunk)``, unless the plan says this chunk must fail.

    Behaviours: ``exit3``, ``sigkill``, ``segv``, ``half-reply`` (the worker
    dies), ``stall-reply`` (hangs half-way through its reply), ``raise`` (ValueError), ``spin`` (hangs, ignoring SIGTERM),
    ``needs-args``, ``sysexit``, ``custom-base``, ``unpicklable-result``;
    ``flaky-<behaviour>`` fails that way on the first attempt only;
    ``slow`` sleeps ``pause`` again; ``partner@X`` runs for half a second and
    ``after@X-<behaviour>`` first waits until chunk ``partner@X`` is running
    (on its first attempt), so that it fails while another worker is busy,
    deterministically.
    """
    time.sleep(pause)
    label = next((lab for lab in chunk.index if lab in plan), None)
    if label is None:
        return transform(chunk)
    n_call = _record_call(state_dir, label)
    how = plan[label]
    if how.startswith("partner@"):
        assert state_dir is not None
        Path(state_dir, f"{how}-running").touch()
        time.sleep(0.5)
        Path(state_dir, f"{how}-done").touch()
        return transform(chunk)
    if how.startswith("after@"):
        name, how = how[len("after@"):].split("-", 1)
        if n_call == 1:
            _wait_for_partner(state_dir, name)
    if how.startswith("flaky-"):
        if n_call > 1:
            return transform(chunk)
        how = how[len("flaky-"):]
    if how in ("exit3", "sigkill", "segv", "half-reply", "stall-reply"):
        _die(how)
    if how == "raise":
        raise ValueError(f"bad row {label}")
    if how == "keyerror":
        raise KeyError(label)
    if how == "spin":
        _spin()
    if how == "needs-args":
        raise NeedsArgs(7, f"no good at {label}")
    if how == "sysexit":
        sys.exit(4)
    if how == "custom-base":
        raise CustomStop(f"custom stop at {label}")
    if how == "unpicklable-result":
        return transform(chunk).assign(lock=[threading.Lock() for _ in range(len(chunk))])
    if how == "slow":
        time.sleep(pause)
        return transform(chunk)
    raise AssertionError(f"unknown behaviour {how!r}")


def _wait_for_partner(state_dir: str | None, name: str) -> None:
    """Return once chunk ``partner@name`` is running (and still is)."""
    assert state_dir is not None
    running = Path(state_dir, f"partner@{name}-running")
    deadline = time.monotonic() + 30
    while not running.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    if Path(state_dir, f"partner@{name}-done").exists() or not running.exists():
        os._exit(99)  # the partner was not running: the test's premise failed


def fail_on_rows(chunk: pd.DataFrame, bad: Iterable[Any], how: str = "raise") -> pd.DataFrame:
    """Fails (``raise`` or ``exit3``) when the chunk holds any of the ``bad`` labels."""
    hit = [lab for lab in chunk.index if lab in set(bad)]
    if hit:
        if how == "exit3":
            os._exit(3)
        raise ValueError(f"cannot handle rows {hit}")
    return transform(chunk)


def fail_on_pair(chunk: pd.DataFrame, pair: tuple[Any, Any]) -> pd.DataFrame:
    """Fails only when both labels of ``pair`` are in the same chunk."""
    if pair[0] in chunk.index and pair[1] in chunk.index:
        raise KeyError(f"{pair[0]} and {pair[1]} together")
    return transform(chunk)


def sleep_then_fail(chunk: pd.DataFrame, bad: Any, seconds: float) -> pd.DataFrame:
    """Every chunk takes ``seconds``; the one holding ``bad`` then raises."""
    time.sleep(seconds)
    if bad in chunk.index:
        raise ValueError(f"row {bad} is bad")
    return transform(chunk)


# -- processes and files ---------------------------------------------------------

_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def _is_mp_helper(proc: psutil.Process) -> bool:
    # The resource tracker and the forkserver are per-interpreter singletons
    # of multiprocessing itself, shared by every pool; they are not workers.
    # Workers the forkserver forks carry its command line, but are its children.
    try:
        cmdline = " ".join(proc.cmdline())
        parent = proc.parent()
        parent_cmdline = " ".join(parent.cmdline()) if parent is not None else ""
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return any(h in cmdline for h in _HELPERS) and not any(h in parent_cmdline for h in _HELPERS)


def descendants(pid: int | None = None) -> set[int]:
    """Pids of the (recursive) children of ``pid`` except multiprocessing's helpers.

    Zombies count: an exited worker nobody reaped is a leak too.
    """
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return set()
    return {p.pid for p in children if not _is_mp_helper(p)}


def gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie of a dead parent counts as exited)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pids: Iterable[int], seconds: float) -> set[int]:
    """Wait up to ``seconds`` for ``pids`` to exit; return those still running."""
    left = set(pids)
    deadline = time.monotonic() + seconds
    while left and time.monotonic() < deadline:
        left = {p for p in left if not gone(p)}
        if left:
            time.sleep(0.05)
    return {p for p in left if not gone(p)}


def framepar_files(dirs: Iterable[str] | None = None) -> set[str]:
    """Paths named ``framepar*`` under the temp and shared-memory directories."""
    out: set[str] = set()
    for d in dirs if dirs is not None else (tempfile.gettempdir(), SHM_DIR):
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            continue
        out |= {os.path.join(d, n) for n in names if n.startswith("framepar")}
    return out


_PID_IN_NAME = re.compile(r"^framepar-(\d+)-")


def foreign(path: str, ours: Iterable[int] = ()) -> bool:
    """A file named for a process other than this one and ``ours`` (its workers).

    framepar names what a run leaves in shared directories after the pid of
    the process that made it; entries of other processes (other test runs on
    the same machine, live or dead) are not this test's leftovers.
    """
    m = _PID_IN_NAME.match(os.path.basename(path))
    return m is not None and int(m.group(1)) not in {os.getpid(), *ours}


def worker_pids(report: pd.DataFrame) -> set[int]:
    """The worker pids named in a report's ``worker`` column ("pid 1234")."""
    pids = set()
    for text in report["worker"].dropna():
        m = re.search(r"pid (\d+)", str(text))
        if m:
            pids.add(int(m.group(1)))
    return pids


def dead_pid() -> int:
    """The pid of a process that has exited (for stale-file names)."""
    proc = psutil.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
