"""backend="dask" beside plain pandas and the process backend, in one run.

    python benchmarks/bench_dask.py [--rows N] [--repeat K]

Times, on the same frame and function (a CPU-bound row function, like
peerbench's W1): plain pandas; framepar's process backend; framepar on a local
Dask cluster started by the call (cold: cluster start-up included); and on an
already running cluster through ``framepar.Executor`` (warm). It also times
the per-chunk overhead on the warm cluster with many tiny chunks. Prints a
markdown table with each median's ratio to plain pandas measured in this same run.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

import framepar


def row_function(chunk: pd.DataFrame) -> pd.DataFrame:
    # Python-level work per row, as users' apply(axis=1) code does.
    score = chunk.apply(lambda r: math.sqrt(abs(r["a"] * r["b"])) + math.sin(r["a"]), axis=1)
    return chunk.assign(score=score)


def median_of(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=args.rows), "b": rng.normal(size=args.rows)})
    w = args.workers

    rows: list[tuple[str, float]] = []
    rows.append(("plain pandas", median_of(args.repeat, lambda: row_function(df))))
    rows.append(("framepar process", median_of(
        args.repeat, lambda: framepar.map_chunks(df, row_function, backend="process", workers=w, progress=False))))
    rows.append(("framepar dask, cold (starts a LocalCluster)", median_of(
        1, lambda: framepar.map_chunks(df, row_function, backend="dask", workers=w, progress=False))))
    with framepar.Executor(backend="dask", workers=w) as ex:
        ex.map_chunks(df.iloc[:100], row_function, progress=False)  # connect and warm up
        rows.append(("framepar dask, warm (Executor)", median_of(
            args.repeat, lambda: ex.map_chunks(df, row_function, progress=False))))
        tiny = df.iloc[:200]
        per_chunk = median_of(args.repeat, lambda: ex.map_chunks(tiny, lambda c: c, chunk_rows=1, progress=False))
    base = rows[0][1]
    print(f"{args.rows:,} rows, {w} workers, median of {args.repeat}\n")
    print("| run | seconds | vs plain pandas |")
    print("|---|---:|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} | {base / seconds:.2f}x |")
    print(f"\ndask per-chunk overhead (200 one-row chunks, warm): {per_chunk / 200 * 1000:.1f} ms")

if __name__ == "__main__":
    main()
