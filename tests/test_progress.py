"""The progress bar shows rows and chunks done, and can be forced on or off."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from frames import add_column, base_frame

import framepar


def group_sizes(chunk: pd.DataFrame) -> pd.DataFrame:
    return chunk.groupby("k", as_index=False).size()


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


def test_partition_pass_of_a_file_has_its_own_bar(bars_allowed, capsys, tmp_path):
    # Scattered keys in a CSV: --by first spills the rows into buckets, a pass
    # over the whole input that gets a bar of its own before the main one.
    src = tmp_path / "in.csv"
    pd.DataFrame({"k": np.arange(300) % 7, "x": np.arange(300)}).to_csv(src, index=False)
    framepar.map_file(src, group_sizes, tmp_path / "out.csv", by="k", chunk_rows=60, workers=2,
                      progress=True).raise_for_errors()
    err = capsys.readouterr().err
    assert re.search(r"framepar: partitioning: 100%[^\r\n]*300(\.0)?/300(\.0)?[^\r\n]*chunks 5/5", err), err
