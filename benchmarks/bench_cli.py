"""Time and peak memory of streaming a big Parquet file: pandas vs framepar.

Runs, each in a fresh process whose whole process tree is sampled for RSS
and PSS (psutil / ``/proc/PID/smaps_rollup``):

* ``pandas``: ``read_parquet`` -> function -> ``to_parquet`` (the baseline);
* ``map_file``: ``framepar.map_file`` with default settings;
* ``cli``: ``python -m framepar run`` with default settings;
* ``cli x2``: the same on a file twice as long (made once, by copying the
  row groups, under /tmp), to see whether memory grows with the file.

The function is peerbench's W6 one (3 vectorised columns added). Prints a
table with the ratios against the pandas baseline measured in the same run::

    python benchmarks/bench_cli.py                         # W6 file, 2 workers
    python benchmarks/bench_cli.py --repeats 3 --workers 2

``--by``: instead, group-aware streaming of a file whose groups are scattered
(made once under /tmp: random keys, so every chunk holds every group):
``framepar run --by key`` against pandas reading the whole file, calling
:func:`group_fn` (a per-group transform) and writing the result::

    python benchmarks/bench_cli.py --by --rows 2000000 --keys 50000 --format csv
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

PEERBENCH = Path(os.environ.get("PEERBENCH", Path(__file__).resolve().parents[2] / "shared" / "peerbench"))
ROOT = Path(__file__).resolve().parents[1]
W6 = Path("/tmp/peerbench-data/w6_input_v1.parquet")


def make_doubled(src: Path, dst: Path) -> Path:
    """``src``'s rows twice, written row group by row group (bounded memory)."""
    if dst.exists():
        return dst
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(src)
    tmp = dst.with_suffix(".tmp")
    with pq.ParquetWriter(tmp, pf.schema_arrow) as writer:
        for _ in range(2):
            for g in range(pf.num_row_groups):
                writer.write_table(pf.read_row_group(g))
    os.replace(tmp, dst)
    return dst


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def measure(cmd: list[str], env: dict[str, str], poll: float = 0.05) -> tuple[float, int, int, int]:
    """Wall seconds, peak RSS sum, peak PSS sum (bytes) and exit code of ``cmd``'s tree."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(proc.pid)
    peak_rss = peak_pss = 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        rss = pss = 0
        for p in tree:
            try:
                rss += p.memory_info().rss
            except psutil.Error:
                continue
            pss += _pss(p.pid)
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        time.sleep(poll)
    seconds = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode:
        print(f"  command failed ({proc.returncode}): {' '.join(cmd)}\n{err}", file=sys.stderr)
    return seconds, peak_rss, peak_pss, proc.returncode


PANDAS = (
    "import sys; sys.path.insert(0, {pb!r}); import pandas as pd; from workloads import wide_fn; "
    "wide_fn(pd.read_parquet({src!r})).to_parquet({dst!r}, index=False)"
)
MAP_FILE = (
    "import sys; sys.path.insert(0, {pb!r}); import framepar; from workloads import wide_fn; "
    "framepar.map_file({src!r}, wide_fn, {dst!r}, workers={w}, progress=False).raise_for_errors()"
)


def group_fn(df: Any) -> Any:
    """Each value against its group's mean and its rank in the group (needs whole groups)."""
    g = df.groupby("key", dropna=False)["value"]
    return df.assign(centred=df["value"] - g.transform("mean"), rank=g.rank(method="first"))


def make_scattered(path: Path, rows: int, keys: int) -> Path:
    if path.exists():
        return path
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "key": np.char.add("k", rng.integers(0, keys, rows).astype(str)),
        "value": rng.normal(size=rows),
        "count": rng.integers(0, 1000, rows),
    })
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".csv":
        df.to_csv(tmp, index=False)
    else:
        df.to_parquet(tmp, index=False, row_group_size=250_000)
    os.replace(tmp, path)
    return path


PANDAS_BY = (
    "import sys; sys.path.insert(0, {here!r}); import pandas as pd; from bench_cli import group_fn; "
    "df = pd.read_csv({src!r}) if {src!r}.endswith('.csv') else pd.read_parquet({src!r}); "
    "group_fn(df).to_parquet({dst!r}, index=False)"
)


def main_by(args: argparse.Namespace, env: dict[str, str]) -> None:
    base = Path("/tmp/framepar-bench")
    base.mkdir(parents=True, exist_ok=True)
    src = make_scattered(base / f"scattered_{args.rows}_{args.keys}.{args.format}", args.rows, args.keys)
    dst = str(base / "by_out.parquet")
    here = str(Path(__file__).resolve().parent)
    cases = {
        "pandas": [sys.executable, "-c", PANDAS_BY.format(here=here, src=str(src), dst=dst)],
        "cli --by": [sys.executable, "-m", "framepar", "run", str(src), "-f", f"{__file__}:group_fn",
                     "-o", dst, "--by", "key", "--workers", str(args.workers), "--no-progress"],
    }
    results: dict[str, list[tuple[float, int, int, int]]] = {k: [] for k in cases}
    for rep in range(args.repeats):
        for name, cmd in cases.items():
            results[name].append(measure(cmd, env))
            Path(dst).unlink(missing_ok=True)
            r = results[name][-1]
            print(f"rep {rep} {name:9s} {r[0]:7.2f} s  pss {r[2] / 2**20:7.0f} MiB", file=sys.stderr)

    def med(name: str, i: int) -> float:
        return statistics.median(r[i] for r in results[name])

    print(f"\n{src.name}: {args.rows:,} rows, {args.keys:,} scattered keys, workers={args.workers}, "
          f"repeats={args.repeats} (medians)\n")
    print("| case | seconds | vs pandas | peak PSS sum (MiB) | PSS vs pandas |")
    print("|---|---:|---:|---:|---:|")
    for name in cases:
        t, pss = med(name, 0), med(name, 2)
        print(f"| {name} | {t:.2f} | {med('pandas', 0) / t:.2f}x | {pss / 2**20:.0f} | "
              f"{pss / med('pandas', 2):.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", type=Path, default=W6)
    ap.add_argument("--doubled", type=Path, default=Path("/tmp/framepar-bench/w6_doubled.parquet"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--skip-doubled", action="store_true")
    ap.add_argument("--by", action="store_true", help="group-aware run on scattered keys instead")
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--keys", type=int, default=50_000)
    ap.add_argument("--format", choices=("csv", "parquet"), default="parquet")
    args = ap.parse_args()
    if args.by:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        main_by(args, env)
        return
    if not args.input.exists():
        sys.exit(f"{args.input} is missing: run peerbench's W6 once to build it")
    args.doubled.parent.mkdir(parents=True, exist_ok=True)
    if not args.skip_doubled:
        make_doubled(args.input, args.doubled)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    py = sys.executable
    out_dir = Path(tempfile.mkdtemp(prefix="framepar-bench-", dir=args.doubled.parent))
    dst = str(out_dir / "out.parquet")
    pb = str(PEERBENCH)
    spec = f"{PEERBENCH / 'workloads.py'}:wide_fn"
    cases = {
        "pandas": [py, "-c", PANDAS.format(pb=pb, src=str(args.input), dst=dst)],
        "map_file": [py, "-c", MAP_FILE.format(pb=pb, src=str(args.input), dst=dst, w=args.workers)],
        "cli": [py, "-m", "framepar", "run", str(args.input), "-f", spec, "-o", dst,
                "--workers", str(args.workers), "--no-progress"],
    }
    if not args.skip_doubled:
        cases["cli x2"] = [py, "-m", "framepar", "run", str(args.doubled), "-f", spec, "-o", dst,
                           "--workers", str(args.workers), "--no-progress"]
    results: dict[str, list[tuple[float, int, int, int]]] = {k: [] for k in cases}
    for rep in range(args.repeats):
        for name, cmd in cases.items():  # interleaved, so drift spreads evenly
            results[name].append(measure(cmd, env))
            Path(dst).unlink(missing_ok=True)
            r = results[name][-1]
            print(f"rep {rep} {name:9s} {r[0]:7.2f} s  rss {r[1] / 2**20:7.0f} MiB  pss {r[2] / 2**20:7.0f} MiB",
                  file=sys.stderr)
    out_dir.rmdir()

    def med(name: str, i: int) -> float:
        return statistics.median(r[i] for r in results[name])

    base_t = med("pandas", 0)
    print(f"\ninput {args.input} ({args.input.stat().st_size / 2**30:.2f} GiB), workers={args.workers}, "
          f"repeats={args.repeats} (medians)\n")
    print("| case | seconds | speed-up vs pandas | peak RSS sum (MiB) | peak PSS sum (MiB) | PSS vs pandas |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in cases:
        t, rss, pss = med(name, 0), med(name, 1), med(name, 2)
        print(f"| {name} | {t:.2f} | {base_t / t:.2f}x | {rss / 2**20:.0f} | {pss / 2**20:.0f} | "
              f"{pss / med('pandas', 2):.2f} |")
    if "cli x2" in cases:
        growth = med("cli x2", 2) / med("cli", 2) - 1
        print(f"\npeak PSS growth when the file doubles (cli x2 vs cli): {growth * 100:+.1f}%")


if __name__ == "__main__":
    main()
