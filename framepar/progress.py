"""Progress bar: tqdm.auto, so it renders in terminals and notebooks alike."""

from __future__ import annotations

import warnings
from typing import Any

from tqdm import TqdmWarning

with warnings.catch_warnings():
    # In a notebook without ipywidgets, tqdm.auto warns on import and falls back
    # to the text bar, which serves framepar well: no warning on `import framepar`.
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm

# With progress=None a bar appears only once a run has lasted this long.
SHOW_AFTER_SECONDS = 2.0


class _Bar(tqdm):  # type: ignore[type-arg, misc]
    # tqdm's monitor thread would make the next run's parent multi-threaded,
    # which rules out the fast fork start; the bar refreshes on updates anyway.
    monitor_interval = 0


class Progress:
    """Rows done, chunks done, throughput and ETA for one run."""

    def __init__(self, total_rows: int, total_chunks: int, enabled: bool | None, desc: str = "framepar") -> None:
        self.total_chunks = total_chunks
        self.chunks_done = 0
        self._bar: Any = None
        if enabled is False:
            return
        self._bar = _Bar(
            total=total_rows,
            unit="rows",
            unit_scale=True,
            desc=desc,
            delay=0 if enabled else SHOW_AFTER_SECONDS,
            leave=bool(enabled),
            dynamic_ncols=True,
        )
        self._bar.set_postfix_str(f"chunks 0/{total_chunks}", refresh=False)

    def set_total_chunks(self, total_chunks: int) -> None:
        self.total_chunks = total_chunks

    def advance(self, rows: int) -> None:
        self.chunks_done += 1
        if self._bar is not None:
            self._bar.set_postfix_str(f"chunks {self.chunks_done}/{self.total_chunks}", refresh=False)
            self._bar.update(rows)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
