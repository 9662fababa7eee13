"""The progress bar shows rows and chunks done, and can be forced on or off."""

from __future__ import annotations

import re

import pytest
from frames import add_column, base_frame

import framepar


@pytest.fixture
def bars_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TQDM_DISABLE", raising=False)


def test_forced_bar_reports_rows_and_chunks(bars_allowed, capsys, backend):
    framepar.map_chunks(base_frame(50), add_column, backend=backend, chunk_rows=7, progress=True, workers=2)
    err = capsys.readouterr().err
    assert re.search(r"50(\.0)?/50(\.0)?", err) and "chunks 8/8" in err and "rows/s" in err


def test_no_bar_when_disabled(bars_allowed, capsys):
    framepar.map_chunks(base_frame(50), add_column, backend="process", chunk_rows=7, progress=False)
    assert capsys.readouterr().err == ""


def test_default_bar_stays_hidden_for_quick_runs(bars_allowed, capsys):
    framepar.map_chunks(base_frame(50), add_column, backend="serial", chunk_rows=7)
    assert capsys.readouterr().err == ""
