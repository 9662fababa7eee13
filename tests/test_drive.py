"""core.drive: chunks come back final and in input order, with a bounded window."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest

from framepar.backends.serial import SerialBackend
from framepar.backends.thread import ThreadBackend
from framepar.core import Options, _State, drive, execute
from framepar.job import ChunkJob
from framepar.planning import ChunkSpec


@dataclass(frozen=True)
class Sleepy:
    """A source whose chunk takes longer the earlier it is (finishes out of order)."""

    index: int
    total: int

    def load(self) -> pd.DataFrame:
        time.sleep(0.01 * (self.total - self.index))
        return pd.DataFrame({"x": [self.index]})


def _specs(n: int, taken: list[int]) -> Iterator[ChunkSpec]:
    for i in range(n):
        taken.append(i)
        yield ChunkSpec(i, i, i + 1)


@pytest.mark.parametrize("backend", [SerialBackend(), ThreadBackend(3)])
@pytest.mark.parametrize("window", [1, 2, 5, None])
def test_ordered_and_bounded(backend: Any, window: int | None) -> None:
    n = 12
    state = _State(Options())
    backend.start_job(ChunkJob(lambda df: df.assign(y=df["x"] * 2), (), {}, True), None)
    taken: list[int] = []
    seen = []
    for rec in drive(backend, _specs(n, taken), lambda s: Sleepy(s.index, n), state, window=window):
        seen.append(rec.spec.index)
        if window is not None:
            assert len(taken) - len(seen) < window  # taken but not yet handed out
        assert rec.status == "ok"
        result = state.results.pop(rec.spec.index)
        assert result["y"].tolist() == [rec.spec.index * 2]
    backend.shutdown()
    assert seen == list(range(n))


def test_retry_keeps_order() -> None:
    attempts: dict[int, int] = {}

    def flaky(df: pd.DataFrame) -> pd.DataFrame:
        i = int(df["x"].iloc[0])
        attempts[i] = attempts.get(i, 0) + 1
        if i == 3 and attempts[i] == 1:
            raise ValueError("first attempt")
        return df

    state = _State(Options(retries=1))
    backend = ThreadBackend(2)
    backend.start_job(ChunkJob(flaky, (), {}, True), None)
    seen = [r.spec.index for r in drive(backend, _specs(6, []), lambda s: Sleepy(s.index, 6), state, window=2)]
    backend.shutdown()
    assert seen == list(range(6)) and attempts[3] == 2
    assert state.records[3].attempts == 2 and state.records[3].status == "ok"


def test_execute_still_matches_pandas() -> None:
    df = pd.DataFrame({"x": range(5000)})
    run = execute(df, lambda c: c.assign(y=c["x"] + 1), (), {}, Options(backend="thread", workers=2, chunk_rows=700))
    pd.testing.assert_frame_equal(run.result, df.assign(y=df["x"] + 1))
    assert run.report["chunk"].tolist() == list(range(8))
