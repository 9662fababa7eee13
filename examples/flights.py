"""Delay features for every NYC flight of 2013, computed on every core.

The function works on a chunk of rows and returns the chunk with new columns;
framepar runs it over data/flights.parquet and prints the per-chunk report.

    python examples/flights.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def delay_features(flights: pd.DataFrame) -> pd.DataFrame:
    """Speed, gain in the air and a delay class for each flight."""
    hours = flights["air_time"] / 60
    return flights.assign(
        speed_mph=flights["distance"] / hours,
        gain_min=flights["dep_delay"] - flights["arr_delay"],
        delay_class=pd.cut(
            flights["arr_delay"],
            bins=[-np.inf, 0, 15, 60, np.inf],
            labels=["early", "on time", "late", "very late"],
        ),
        route=flights["origin"] + "-" + flights["dest"],
    )


def main() -> None:
    import framepar

    path = Path(__file__).resolve().parent.parent / "data" / "flights.parquet"
    flights = pd.read_parquet(path)
    run = framepar.run(flights, delay_features, backend="process", progress=True)
    run.raise_for_errors()
    pd.testing.assert_frame_equal(run.result, delay_features(flights))  # same as plain pandas
    print(run.report[["chunk", "rows", "status", "seconds", "worker"]].to_string(index=False))
    print(f"\n{len(run.result):,} flights, {run.report['status'].eq('ok').sum()} chunks ok ({run.reason})")
    print(run.result.groupby("delay_class", observed=True)["speed_mph"].describe().round(1))


if __name__ == "__main__":
    main()
