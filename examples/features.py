"""Example functions for ``framepar run`` on the flights data in ``data/``."""

from __future__ import annotations

import pandas as pd


def add_speed(flights: pd.DataFrame) -> pd.DataFrame:
    """Average speed in miles per hour, and whether the flight arrived more than 15 minutes late."""
    return flights.assign(
        speed=flights["distance"] / flights["air_time"] * 60,
        late=flights["arr_delay"] > 15,
    )
