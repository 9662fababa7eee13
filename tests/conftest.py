"""Shared fixtures: the backends every behaviour is checked against."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# The machine running the tests is shared and noisy: no per-example deadline.
settings.register_profile("framepar", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("framepar")

# Every backend must give plain pandas' answer; "auto" covers the in-process
# first chunk followed by worker processes.
BACKENDS = ["serial", "thread", "process", "auto"]


# Behaviours of worker processes, clusters and the command line do not depend
# on the pandas version: CI runs them once (under pandas 3) and everything else
# under both pandas 3 and 2.2 (see .ci/run).
PROCESS_LEVEL_MODULES = {"test_fault_tolerance.py", "test_dask.py", "test_cli_subprocess.py"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in PROCESS_LEVEL_MODULES:
            item.add_marker(pytest.mark.process_level)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _no_progress_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    # Keep test output readable; tests of the bar itself pass progress=True.
    monkeypatch.setenv("TQDM_DISABLE", "1")


def worker_children() -> set[int]:
    """PIDs of this test process's live children (worker processes)."""
    psutil = pytest.importorskip("psutil")
    me = psutil.Process(os.getpid())
    return {p.pid for p in me.children(recursive=True) if p.is_running() and p.status() != psutil.STATUS_ZOMBIE}
