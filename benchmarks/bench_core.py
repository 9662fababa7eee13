"""Time framepar against serial pandas on the core workloads, cold start included.

Each measurement runs in a fresh Python process (imports untimed, pool
start-up timed), like a user's script would. Prints a markdown table with the
median wall time and the speedup against serial pandas measured in the same
run.

    python benchmarks/bench_core.py               # all workloads, 3 repeats
    python benchmarks/bench_core.py -w rowwise -r 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import textwrap

WORKLOADS = {
    # name: (rows, description)
    "rowwise": (300_000, "pure-Python row function via apply(axis=1), 300k rows"),
    "strings": (2_000_000, "regex extract + lower + len on ~40-char text, 2M rows"),
    "tiny": (1_000, "1k rows, one vectorised column"),
}

CHILD = textwrap.dedent(
    r'''
    import json, re, sys, time
    import numpy as np, pandas as pd
    import framepar

    name, how, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = np.random.default_rng(0)

    def row_fn(row):
        a, b, x, y = int(row["a"]), int(row["b"]), row["x"], row["y"]
        acc = 0.0
        for k in range(1, 25):
            acc += ((a * k) % b) * x - y / k
        return acc

    def rowwise(chunk):
        return chunk.assign(score=chunk.apply(row_fn, axis=1))

    PATTERN = r"^([a-z]+)\.([a-z0-9]+)@([a-z]+)\.(com|org|net) .*qty=(\d+)"

    def strings(chunk):
        low = chunk["text"].str.lower()
        out = low.str.extract(PATTERN, expand=True)
        out.columns = ["first", "last", "domain", "tld", "qty"]
        return out.assign(length=chunk["text"].str.len(), lower=low)

    def tiny(chunk):
        return chunk.assign(c=chunk["a"] + chunk["b"])

    if name == "rowwise":
        df = pd.DataFrame({"a": rng.integers(0, 1000, rows), "b": rng.integers(1, 50, rows),
                           "x": rng.random(rows), "y": rng.standard_normal(rows)})
        fn = rowwise
    elif name == "strings":
        first = np.array(["alice", "bob", "carol", "dave"])[rng.integers(0, 4, rows)]
        text = pd.Series(first).str.cat([pd.Series(rng.integers(0, 999, rows).astype(str))], sep=".")
        text = text + "@Example.com OK qty=" + pd.Series(rng.integers(0, 9999, rows).astype(str))
        df = pd.DataFrame({"text": text.astype("str" if pd.__version__ >= "3" else object)})
        fn = strings
    else:
        df = pd.DataFrame({"a": rng.integers(0, 100, rows), "b": rng.random(rows)})
        fn = tiny

    t0 = time.perf_counter()
    if how == "serial":
        out = fn(df)
    else:
        out = framepar.map_chunks(df, fn, backend=how, progress=False)
    seconds = time.perf_counter() - t0
    pd.testing.assert_frame_equal(out, fn(df))
    print(json.dumps({"seconds": seconds}))
    '''
)


def measure(name: str, how: str, rows: int) -> float:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, name, how, str(rows)], capture_output=True, text=True, check=True
    )
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-w", "--workloads", default=",".join(WORKLOADS))
    parser.add_argument("-r", "--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| workload | contender | median s | speedup vs serial | extra ms vs serial |")
    print("|---|---|---|---|---|")
    for name in args.workloads.split(","):
        rows = WORKLOADS[name][0]
        times: dict[str, list[float]] = {"serial": [], "auto": [], "process": []}
        for _ in range(args.repeats):  # interleaved, so drift hits every contender alike
            for how in times:
                times[how].append(measure(name, how, rows))
        base = statistics.median(times["serial"])
        for how, values in times.items():
            med = statistics.median(values)
            label = "pandas (serial)" if how == "serial" else f"framepar backend={how}"
            print(f"| {name} | {label} | {med:.3f} | {base / med:.2f}x | {1000 * (med - base):+.1f} |")


if __name__ == "__main__":
    main()
