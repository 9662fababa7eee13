"""Example functions for ``framepar run`` on the flights data in ``data/``."""

from __future__ import annotations

import pandas as pd


def add_speed(flights: pd.DataFrame) -> pd.DataFrame:
    """Average speed in miles per hour, and whether the flight arrived more than 15 minutes late."""
    return flights.assign(
        speed=flights["distance"] / flights["air_time"] * 60,
        late=flights["arr_delay"] > 15,
    )


def delay_vs_tail_median(flights: pd.DataFrame) -> pd.DataFrame:
    """Each flight's arrival delay against its aircraft's median: needs every flight of a
    tail number in the same chunk (``framepar run ... --by tailnum``)."""
    median = flights.groupby("tailnum", dropna=False)["arr_delay"].transform("median")
    return flights.assign(delay_vs_tail=flights["arr_delay"] - median)
