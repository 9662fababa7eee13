"""Time the transports on W2-like data: a wide frame and a cheap vectorised function.

The data (8 float64, 1 int64 and 1 string column, 10M rows by default, about
860 MiB, the same shape as peerbench's W2) are built once and cached as a
pickle; every measurement then runs in a fresh Python process that loads it
(untimed) and times one call, pool start-up included. Prints a markdown table
with the median wall time and the ratio against serial pandas measured in the
same run.

    python benchmarks/bench_transport.py                  # 10M rows, 3 repeats
    python benchmarks/bench_transport.py --rows 2000000 -r 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap

CASES = {
    # name: (call, description)
    "serial": ("wide_fn(df)", "plain pandas, one call"),
    "auto": ("framepar.map_chunks(df, wide_fn, progress=False)", "framepar defaults"),
    "process": ("framepar.map_chunks(df, wide_fn, backend='process', progress=False)",
                "backend='process', transport='auto' (fork: inherited input, result buffers)"),
    "process-arrow": ("framepar.map_chunks(df, wide_fn, backend='process', transport='arrow', progress=False)",
                      "backend='process', input as an Arrow file in /dev/shm"),
    "process-memmap": ("framepar.map_chunks(df, wide_fn, backend='process', transport='memmap', progress=False)",
                       "backend='process', Arrow file on disk, memory-mapped"),
    "process-pickle": ("framepar.map_chunks(df, wide_fn, backend='process', transport='pickle', progress=False)",
                       "backend='process', chunks and results pickled through pipes"),
}

BUILD = textwrap.dedent(
    r'''
    import pickle, sys
    import numpy as np, pandas as pd
    rows, path = int(sys.argv[1]), sys.argv[2]
    rng = np.random.default_rng(2)
    cols = {f"f{i}": rng.standard_normal(rows) for i in range(8)}
    cols["id"] = np.arange(rows, dtype=np.int64)
    alphabet = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)
    vocab = alphabet[rng.integers(0, len(alphabet), size=(100_000, 10))].view("S10").ravel().astype("U10")
    strings = vocab[rng.integers(0, len(vocab), rows)]
    cols["s"] = pd.array(strings, dtype="str") if int(pd.__version__[0]) >= 3 else strings.astype(object)
    with open(path, "wb") as f:
        pickle.dump(pd.DataFrame(cols), f, protocol=5)
    '''
)

CHILD = textwrap.dedent(
    r'''
    import json, pickle, sys, time
    import numpy as np, pandas as pd
    import framepar

    path, call = sys.argv[1], sys.argv[2]

    def wide_fn(chunk):
        return chunk.assign(
            g0=chunk["f0"] * chunk["f1"] + chunk["f2"],
            g1=np.sqrt(np.abs(chunk["f3"])) - chunk["f4"] * 0.5,
            g2=(chunk["id"] % 7) * chunk["f5"] + chunk["f6"] - chunk["f7"],
        )

    with open(path, "rb") as f:
        df = pickle.load(f)
    t0 = time.perf_counter()
    out = eval(call)
    seconds = time.perf_counter() - t0
    expected = wide_fn(df)
    pd.testing.assert_frame_equal(out, expected)
    print(json.dumps({"seconds": seconds}))
    '''
)


def measure(path: str, call: str) -> float:
    proc = subprocess.run([sys.executable, "-c", CHILD, path, call], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"measurement failed: {call}\n{proc.stderr[-2000:]}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("-r", "--repeats", type=int, default=3)
    parser.add_argument("-c", "--cases", default=",".join(CASES), help="comma-separated subset of " + ",".join(CASES))
    args = parser.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    if "serial" not in cases:
        cases.insert(0, "serial")
    path = os.path.join(tempfile.gettempdir(), f"framepar-bench-wide-{args.rows}.pkl")
    if not os.path.exists(path):
        print(f"building {args.rows:,} rows -> {path}", file=sys.stderr)
        subprocess.run([sys.executable, "-c", BUILD, str(args.rows), path], check=True)
    times: dict[str, list[float]] = {c: [] for c in cases}
    for r in range(args.repeats):
        for case in cases:  # interleaved, so that machine noise hits every case alike
            times[case].append(measure(path, CASES[case][0]))
            print(f"repeat {r + 1}: {case} {times[case][-1]:.3f} s", file=sys.stderr)
    serial = statistics.median(times["serial"])
    print(f"\nW2-like: {args.rows:,} rows, median of {args.repeats}, fresh process per measurement\n")
    print("| case | median s | x serial | what |")
    print("|---|---:|---:|---|")
    for case in cases:
        med = statistics.median(times[case])
        print(f"| {case} | {med:.3f} | {med / serial:.2f} | {CASES[case][1]} |")


if __name__ == "__main__":
    main()
