"""framepar as a contender in ../shared/peerbench (see its README).

The module itself is the ``framepar`` contender with default settings (what a
user gets without tuning); ``peerbench_adapter:framepar_process`` is the same
forced onto worker processes. From the project root::

    python ../shared/peerbench/run.py --pythonpath benchmarks \
        --extra peerbench_adapter --extra peerbench_adapter:framepar_process -w W1,W2,W3,W4,W5

``peerbench_adapter:framepar_core`` is the default ``map_chunks`` call alone: on
W1 the module itself goes through the accessor (``run_rowwise``), this one
through the core with the whole-chunk function.
``peerbench_adapter:framepar_arrow`` forces worker processes and the Arrow
shared-memory input file (what warm pools and non-fork platforms use).
W1 also goes through the pandas accessor (``run_rowwise``: a row function
with ``df.framepar.apply(row_fn, axis=1)``) and W5 through
``df.framepar.groupby(key).apply(fn)`` (``run_groupby``).
W6 (file in, file out) goes through ``run_file``: ``framepar.map_file`` with
default settings, the same streaming pipeline as ``framepar run``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pandas as pd

NAME = "framepar"
API = {
    "run": "framepar.map_chunks(df, fn, workers=n) (backend='auto')",
    "run_rowwise": "df.assign(col=df.framepar.apply(row_fn, axis=1, workers=n))",
    "run_groupby": "df.framepar.groupby(key).apply(fn, workers=n)",
    "run_file": "framepar.map_file(in_path, fn, out_path, workers=n) (streaming, defaults)",
}


def load() -> None:
    import framepar

    global VERSION
    VERSION = framepar.__version__


def run(df: pd.DataFrame, fn: Any, n_workers: int) -> pd.DataFrame:
    import framepar

    return framepar.map_chunks(df, fn, workers=n_workers, progress=False)


def run_rowwise(df: pd.DataFrame, row_fn: Any, col: str, n_workers: int) -> pd.DataFrame:
    import framepar  # noqa: F401  (registers df.framepar)

    return df.assign(**{col: df.framepar.apply(row_fn, axis=1, workers=n_workers, progress=False)})


def run_groupby(df: pd.DataFrame, key: str, fn: Any, n_workers: int) -> Any:
    import framepar  # noqa: F401

    return df.framepar.groupby(key).apply(fn, workers=n_workers, progress=False)


def run_file(in_path: str, out_path: str, fn: Any, n_workers: int) -> None:
    import framepar

    framepar.map_file(in_path, fn, out_path, workers=n_workers, progress=False).raise_for_errors()


def _run_process(df: pd.DataFrame, fn: Any, n_workers: int) -> pd.DataFrame:
    import framepar

    return framepar.map_chunks(df, fn, workers=n_workers, backend="process", progress=False)


def _run_arrow(df: pd.DataFrame, fn: Any, n_workers: int) -> pd.DataFrame:
    import framepar

    return framepar.map_chunks(df, fn, workers=n_workers, backend="process", transport="arrow", progress=False)


CONTENDERS = {
    "framepar_core": SimpleNamespace(
        NAME="framepar_core",
        load=load,
        run=run,
        API={"run": "framepar.map_chunks(df, fn, workers=n) (backend='auto', no row-wise entry)"},
    ),
    "framepar_process": SimpleNamespace(
        NAME="framepar_process",
        load=load,
        run=_run_process,
        API={"run": "framepar.map_chunks(df, fn, workers=n, backend='process')"},
    ),
    "framepar_arrow": SimpleNamespace(
        NAME="framepar_arrow",
        load=load,
        run=_run_arrow,
        API={"run": "framepar.map_chunks(df, fn, workers=n, backend='process', transport='arrow')"},
    ),
}
