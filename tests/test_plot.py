"""Run.plot(): one bar per started chunk, on its worker's row, coloured by status."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

import framepar
from framepar.plot import INSTALL_HINT, STATUS_COLORS, plot_run

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

BAD = {3, 7}  # chunks whose rows make the function fail


def fail_on_some(chunk: pd.DataFrame) -> pd.DataFrame:
    if chunk["k"].isin([300, 700]).any():
        raise ValueError(f"bad rows in {chunk['k'].iloc[0]}..{chunk['k'].iloc[-1]}")
    return chunk.assign(y=chunk["k"] * 2)


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def failed_run() -> framepar.Run:
    # 10 chunks of 100 rows; chunks 3 and 7 fail. Two threads so two worker rows.
    df = pd.DataFrame({"k": np.arange(1_000)})
    return framepar.run(df, fail_on_some, backend="thread", workers=2, chunk_rows=100, errors="collect")


def bars(ax: plt.Axes) -> list[mpl.patches.Rectangle]:
    (container,) = ax.containers
    return list(container.patches)


def test_one_bar_per_chunk_coloured_by_status(failed_run: framepar.Run) -> None:
    report = failed_run.report
    assert set(report.loc[report["status"] == "error", "chunk"]) == BAD
    ax = failed_run.plot()
    drawn = bars(ax)
    assert len(drawn) == len(report) == 10
    for bar, status in zip(drawn, report["status"], strict=True):
        assert bar.get_facecolor() == to_rgba(STATUS_COLORS[status])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["ok (8)", "error (2)"]


def test_bars_sit_on_their_worker_row_and_span_the_chunk(failed_run: framepar.Run) -> None:
    report = failed_run.report
    ax = plot_run(failed_run)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(labels) == sorted(report["worker"].unique())
    assert len(labels) == 2
    span = float((report["started_at"] + report["seconds"]).max())
    for bar, row in zip(bars(ax), report.itertuples(), strict=True):
        y_centre = bar.get_y() + bar.get_height() / 2
        assert labels[round(y_centre)] == row.worker
        assert bar.get_x() == pytest.approx(row.started_at)
        # Narrow chunks are widened so that they stay visible, never shortened.
        assert bar.get_width() == pytest.approx(max(row.seconds, span * 0.004))


def test_failed_chunks_are_visible_and_numbered(failed_run: framepar.Run) -> None:
    ax = failed_run.plot(annotate=True)
    texts = {t.get_text() for t in ax.texts}
    assert texts == {str(c) for c in failed_run.report["chunk"]}
    red = [b for b in bars(ax) if b.get_facecolor() == to_rgba(STATUS_COLORS["error"])]
    assert len(red) == 2 and all(b.get_width() > 0 for b in red)


def test_draws_on_the_given_axes_and_accepts_a_report(failed_run: framepar.Run) -> None:
    _, ax = plt.subplots()
    assert plot_run(failed_run.report, ax=ax, title="mine", annotate=False) is ax
    assert ax.get_title() == "mine"
    assert len(bars(ax)) == 10 and not ax.texts


def test_chunks_that_never_started_are_counted_not_drawn() -> None:
    # errors="raise" stops at the first failure: later chunks end cancelled, and
    # those no worker took have no start time.
    df = pd.DataFrame({"k": np.arange(1_000)})
    run = framepar.run(df, fail_on_some, backend="serial", chunk_rows=100, errors="raise")
    report = run.report
    not_started = int(report["started_at"].isna().sum())
    assert not_started > 0
    ax = run.plot()
    assert len(bars(ax)) == len(report) - not_started
    legend = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert f"{not_started} not started" in legend


def test_serial_run_has_one_worker_row() -> None:
    df = pd.DataFrame({"k": np.arange(500)})
    run = framepar.run(df, lambda c: c * 2, backend="serial", chunk_rows=100)
    assert run.ok
    ax = run.plot()
    workers = list(run.report["worker"].unique())
    assert len(workers) == 1
    assert [t.get_text() for t in ax.get_yticklabels()] == workers
    assert len(bars(ax)) == 5


def test_rejects_something_that_is_not_a_report() -> None:
    with pytest.raises(ValueError, match="missing columns"):
        plot_run(pd.DataFrame({"a": [1]}))


def test_missing_matplotlib_names_the_extra(
    failed_run: framepar.Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A None entry in sys.modules makes the import fail as if it were not installed.
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r'pip install "framepar\[plot\]"') as info:
        failed_run.plot()
    assert str(info.value) == INSTALL_HINT


def test_chunk_numbers_only_while_they_fit() -> None:
    df = pd.DataFrame({"k": np.arange(100)})
    few = framepar.run(df, lambda c: c * 2, backend="serial", chunk_rows=10)  # 10 chunks
    many = framepar.run(df, lambda c: c * 2, backend="serial", chunk_rows=2)  # 50 chunks
    assert len(few.plot().texts) == 10
    assert len(many.plot().texts) == 0
    assert len(bars(many.plot())) == 50
