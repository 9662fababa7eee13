"""The ``framepar`` command line, in-process through typer's CliRunner.

Outputs are compared with plain pandas applying the same function to the
same file read whole.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path

import cli_funcs
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from framepar.cli import app

FUNCS = Path(cli_funcs.__file__).resolve()
DATA = Path(__file__).resolve().parent.parent / "data"
runner = CliRunner()
CHUNKS = ("--chunk-rows", "100")  # the ``numbers`` file: chunk k starts at row 100*k


def spec(name: str) -> str:
    return f"{FUNCS}:{name}"


def invoke(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def flights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 12,000 real flights as Parquet with 4 row groups."""
    path = tmp_path_factory.mktemp("in") / "flights.parquet"
    df = pd.read_parquet(DATA / "flights.parquet").iloc[:12_000]
    df.to_parquet(path, index=False, row_group_size=3_000)
    return path


@pytest.fixture()
def numbers(tmp_path: Path) -> Path:
    """1,000 rows with 10 row groups of 100: chunk k starts at row 100*k."""
    path = tmp_path / "numbers.parquet"
    pd.DataFrame({"x": np.arange(1000, dtype="int64"), "g": np.arange(1000) // 7}).to_parquet(
        path, index=False, row_group_size=100
    )
    return path


def read_any(path: Path) -> pd.DataFrame:
    name = path.name
    if name.endswith(".parquet"):
        return pd.read_parquet(path)
    if name.endswith(".arrow"):
        return pd.read_feather(path)
    if ".csv" in name:
        return pd.read_csv(path)
    return pd.read_json(path, lines=True)


def roundtrip(expected: pd.DataFrame, fmt: str) -> pd.DataFrame:
    """What plain pandas gets back after writing ``expected`` in ``fmt`` and reading it."""
    expected = expected.reset_index(drop=True)
    if fmt == "csv":
        return pd.read_csv(io.StringIO(expected.to_csv(index=False)))
    if fmt == "jsonl":
        return pd.read_json(io.StringIO(expected.to_json(orient="records", lines=True, date_format="iso")), lines=True)
    return expected


@pytest.mark.parametrize("suffix", ["parquet", "arrow", "csv", "csv.gz", "jsonl"])
def test_parquet_to_every_output_format(flights: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"out.{suffix}"
    code, text = invoke("run", flights, "--func", spec("add_speed"), "-o", out, "--workers", "2",
                        "--no-progress")
    assert code == 0, text
    expected = cli_funcs.add_speed(pd.read_parquet(flights))
    fmt = "csv" if "csv" in suffix else suffix
    pd.testing.assert_frame_equal(read_any(out), roundtrip(expected, fmt))
    if suffix == "csv.gz":
        with gzip.open(out, "rt") as fh:
            assert fh.readline().startswith("year,month,day")


def _write_input(df: pd.DataFrame, tmp_path: Path, kind: str) -> Path:
    if kind == "csv":
        path = tmp_path / "in.csv"
        df.to_csv(path, index=False)
    elif kind == "csv.gz":
        path = tmp_path / "in.csv.gz"
        df.to_csv(path, index=False, compression="gzip")
    elif kind == "jsonl":
        path = tmp_path / "in.jsonl"
        df.to_json(path, orient="records", lines=True)
    elif kind == "arrow":
        path = tmp_path / "in.arrow"
        table = pa.Table.from_pandas(df, preserve_index=False)
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
            for batch in table.to_batches(max_chunksize=700):
                w.write_batch(batch)
    else:  # a directory of Parquet files
        path = tmp_path / "in_dir"
        path.mkdir()
        for i, start in enumerate(range(0, len(df), 1500)):
            df.iloc[start : start + 1500].to_parquet(path / f"part.{i}.parquet", index=False)
    return path


def _read_input(path: Path, kind: str) -> pd.DataFrame:
    if kind in ("csv", "csv.gz"):
        return pd.read_csv(path)
    if kind == "jsonl":
        return pd.read_json(path, lines=True)
    if kind == "arrow":
        return pd.read_feather(path)
    return pd.read_parquet(path)


@pytest.mark.parametrize("kind", ["csv", "csv.gz", "jsonl", "arrow", "parquet_dir"])
def test_every_input_format(flights: Path, tmp_path: Path, kind: str) -> None:
    df = pd.read_parquet(flights).iloc[:4000].drop(columns=["time_hour"])
    path = _write_input(df, tmp_path, kind)
    out = tmp_path / "out.parquet"
    code, text = invoke("run", path, "-f", spec("late_flag"), "-o", out, "--workers", "2",
                        "--chunk-rows", "900", "--no-progress")
    assert code == 0, text
    expected = cli_funcs.late_flag(_read_input(path, kind)).reset_index(drop=True)
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected)


def test_real_csv_sample_matches_pandas(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    code, text = invoke("run", DATA / "flights_sample.csv", "-f", spec("add_speed"), "-o", out,
                        "--chunk-rows", "700", "--workers", "2", "--no-progress")
    assert code == 0, text
    expected = cli_funcs.add_speed(pd.read_csv(DATA / "flights_sample.csv"))
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected)


def test_csv_types_are_inferred_for_the_whole_file(tmp_path: Path) -> None:
    # The first chunks see only integers and digit strings; later ones a
    # missing value and letters. Whole-file pandas makes float64 and text.
    n = 3000
    ids = [f"{i:05d}" for i in range(n)]
    ids[2500] = "x-1"
    values = [str(i) for i in range(n)]
    values[2800] = ""
    quoted = ['"a\nb"' if i == 1234 else f'"{i}, ok"' for i in range(n)]
    lines = ["id,value,text"] + [f"{a},{b},{c}" for a, b, c in zip(ids, values, quoted, strict=True)]
    path = tmp_path / "typed.csv"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.parquet"
    code, text = invoke("run", path, "-f", f"{FUNCS}:double_value_or_copy", "-o", out,
                        "--chunk-rows", "500", "--workers", "2", "--no-progress")
    # the function is missing: exit 2 before any work, one line
    assert code == 2 and "no function 'double_value_or_copy'" in text
    code, text = invoke("run", path, "-f", "pandas:DataFrame.copy", "-o", out, "--no-progress")
    assert code == 2
    shutil.copy(FUNCS, tmp_path / "funcs_copy.py")
    with open(tmp_path / "funcs_copy.py", "a") as fh:
        fh.write("\n\ndef identity(df):\n    return df\n")
    code, text = invoke("run", path, "-f", f"{tmp_path / 'funcs_copy.py'}:identity", "-o", out,
                        "--chunk-rows", "500", "--workers", "2", "--no-progress")
    assert code == 0, text
    got = pd.read_parquet(out)
    expected = pd.read_csv(path)
    assert got["value"].dtype == "float64"
    pd.testing.assert_frame_equal(got, expected)


def test_all_null_first_chunk_keeps_the_parquet_schema(numbers: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    code, text = invoke("run", numbers, "-f", spec("null_note_first"), "-o", out, "--workers", "2", *CHUNKS,
                        "--no-progress")
    assert code == 0, text
    got = pd.read_parquet(out)
    df = pd.read_parquet(numbers)
    expected = pd.concat([cli_funcs.null_note_first(df.iloc[i : i + 100]) for i in range(0, 1000, 100)])
    assert pq.read_schema(out).field("note").type in (pa.string(), pa.large_string())
    assert got["note"].isna().tolist() == expected["note"].isna().tolist()
    assert got["note"].dropna().tolist() == expected["note"].dropna().tolist()
    pd.testing.assert_series_equal(got["maybe"], expected["maybe"].reset_index(drop=True), check_dtype=False)
    assert got["maybe"].dtype == expected["maybe"].dtype == "float64"


def test_errors_raise_leaves_no_output(numbers: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    code, text = invoke("run", numbers, "-f", spec("fail_on_chunk_two"), "-o", out, "--workers", "2", *CHUNKS,
                        "--no-progress")
    assert code == 1
    assert "ValueError: bad rows starting at 200" in text and "no output written" in text
    assert len(text.strip().splitlines()) == 1
    assert not out.exists()
    assert os.listdir(tmp_path) == ["numbers.parquet"]  # no temp file, no state


def test_errors_skip_writes_good_chunks_and_report(numbers: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    report = tmp_path / "report.json"
    code, text = invoke("run", numbers, "-f", spec("fail_on_chunk_two"), "-o", out, "--errors", "skip", *CHUNKS,
                        "--report", report, "--workers", "2", "--no-progress")
    assert code == 1, text
    df = pd.read_parquet(numbers)
    good = df[(df["x"] // 100) != 2]
    expected = roundtrip(cli_funcs.double_x(good), "csv")
    pd.testing.assert_frame_equal(pd.read_csv(out), expected)
    rep = pd.read_json(report)
    assert rep["status"].tolist() == ["ok"] * 2 + ["error"] + ["ok"] * 7
    assert rep.loc[2, "error_type"] == "ValueError" and rep.loc[2, "start"] == 200


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_report_formats(numbers: Path, tmp_path: Path, suffix: str) -> None:
    report = tmp_path / f"report{suffix}"
    code, _ = invoke("run", numbers, "-f", spec("double_x"), "-o", tmp_path / "o.jsonl",
                     "--report", report, "--chunk-rows", "250", "--no-progress")
    assert code == 0
    rep = pd.read_csv(report) if suffix == ".csv" else pd.read_parquet(report)
    # whole row groups of 100 rows, merged while they fit in 250
    assert rep["rows"].tolist() == [200] * 5 and (rep["status"] == "ok").all()


def test_args_are_passed_as_keywords(flights: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    code, text = invoke("run", flights, "-f", spec("add_speed"), "-o", out, "--arg", "factor=1.5",
                        "--no-progress")
    assert code == 0, text
    expected = cli_funcs.add_speed(pd.read_parquet(flights), factor=1.5)
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected)


def test_by_keeps_groups_whole(flights: Path, tmp_path: Path) -> None:
    sorted_path = tmp_path / "by_carrier.parquet"
    pd.read_parquet(flights).sort_values("carrier", kind="stable").to_parquet(
        sorted_path, index=False, row_group_size=1000
    )
    out = tmp_path / "out.parquet"
    code, text = invoke("run", sorted_path, "-f", spec("per_group"), "-o", out, "--by", "carrier",
                        "--chunk-rows", "1500", "--workers", "2", "--no-progress")
    assert code == 0, text
    whole = cli_funcs.per_group(pd.read_parquet(sorted_path))
    pd.testing.assert_frame_equal(pd.read_parquet(out), whole)


def test_by_scattered_groups_match_groupby(flights: Path, tmp_path: Path) -> None:
    # The flights file is in date order: every carrier's rows are all over it.
    out = tmp_path / "out.parquet"
    report = tmp_path / "report.csv"
    code, text = invoke("run", flights, "-f", spec("per_group"), "-o", out, "--by", "carrier",
                        "--chunk-rows", "2500", "--workers", "2", "--report", report, "--no-progress")
    assert code == 0, text
    df = pd.read_parquet(flights)
    expected = df.groupby("carrier", as_index=False, sort=True).agg(n=("distance", "size"),
                                                                     total=("distance", "sum"))
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected)
    rep = pd.read_csv(report)
    assert len(rep) > 2 and rep["source"].str.contains("partitioned").all()
    assert rep["rows"].sum() == len(df)
    assert sorted(os.listdir(tmp_path)) == ["out.parquet", "report.csv"]  # spill removed


def scattered(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """Rows of 27 string keys in random order, one key much bigger than a chunk, some missing."""
    rng = np.random.default_rng(seed)
    keys = np.array([f"key{i:02d}" for i in range(26)] + ["big"] * 30, dtype=object)[rng.integers(0, 56, n)]
    keys[rng.random(n) < 0.05] = None
    return pd.DataFrame({"k": keys, "v": rng.integers(0, 1000, n), "w": rng.random(n)})


def expected_rows(whole: pd.DataFrame) -> pd.DataFrame:
    """group_rows on the whole file, in the documented output order (groupby's, sort=True)."""
    out = cli_funcs.group_rows(whole).sort_values("k", kind="stable", na_position="last")
    return out.reset_index(drop=True)


@pytest.mark.parametrize("kind", ["csv", "csv.gz", "jsonl", "parquet", "arrow"])
def test_by_every_input_gives_whole_groups_in_groupby_order(tmp_path: Path, kind: str) -> None:
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    if kind == "parquet":
        path = src_dir / "in.parquet"
        scattered().to_parquet(path, index=False, row_group_size=700)
    else:
        path = _write_input(scattered(), src_dir, kind)
    out = tmp_path / "out.parquet"
    code, text = invoke("run", path, "-f", spec("group_rows"), "-o", out, "--by", "k", "--chunk-rows", "400",
                        "--workers", "2", "--no-progress")
    assert code == 0, text
    whole = _read_input(path, kind)
    got = pd.read_parquet(out)
    pd.testing.assert_frame_equal(got, expected_rows(whole))
    # every group whole: its size in the chunk is its size in the file
    sizes = whole["k"].value_counts(dropna=False)
    assert (got["n"].to_numpy() == got["k"].map(sizes).fillna(sizes[sizes.index.isna()].sum())).all()
    assert sorted(os.listdir(tmp_path)) == ["out.parquet", "src"]  # no spill, no state left


def test_by_numeric_keys_with_nan_and_a_huge_group(tmp_path: Path) -> None:
    df = scattered()
    df["k"] = df["k"].map(lambda s: None if not isinstance(s, str) else (1.5 if s == "big" else float(s[3:])))
    path = tmp_path / "in.csv"
    df.to_csv(path, index=False)
    report = tmp_path / "report.json"
    code, text = invoke("run", path, "-f", spec("group_summary"), "-o", tmp_path / "out.jsonl", "--by", "k",
                        "--chunk-rows", "300", "--report", report, "--workers", "2", "--no-progress")
    assert code == 0, text
    whole = pd.read_csv(path)
    expected = roundtrip(cli_funcs.group_summary(whole, sort=True), "jsonl")
    pd.testing.assert_frame_equal(pd.read_json(tmp_path / "out.jsonl", lines=True), expected)
    rep = pd.read_json(report)
    big = int((whole["k"] == 1.5).sum())
    assert big > 300 and big in rep["rows"].tolist()  # bigger than a chunk, still one chunk
    assert rep["source"].str.contains("missing").any()


def test_by_on_threads_keeps_each_threads_spill_apart(tmp_path: Path) -> None:
    path = _write_input(scattered(), tmp_path, "jsonl")
    out = tmp_path / "out.parquet"
    code, text = invoke("run", path, "-f", spec("group_rows"), "-o", out, "--by", "k", "--chunk-rows", "300",
                        "--workers", "2", "--backend", "thread", "--no-progress")
    assert code == 0, text
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected_rows(pd.read_json(path, lines=True)))


def test_spill_reader_drops_a_record_cut_short(tmp_path: Path) -> None:
    from framepar.io.partition import read_pieces

    spill = tmp_path / "w.pkl"
    with open(spill, "ab") as fh:
        pickle.dump((0, pd.DataFrame({"a": [1, 2]})), fh, protocol=5)
        blob = pickle.dumps((1, pd.DataFrame({"a": range(1000)})), protocol=5)
        fh.write(blob[: len(blob) // 2])  # a worker killed while writing
    assert [k for k, _ in read_pieces(str(spill))] == [0]


def test_by_failed_run_leaves_no_spill(tmp_path: Path) -> None:
    path = _write_input(scattered(), tmp_path, "csv")
    code, text = invoke("run", path, "-f", spec("fail_on_group"), "--arg", "bad=key07", "-o",
                        tmp_path / "out.parquet", "--by", "k", "--chunk-rows", "400", "--workers", "2",
                        "--no-progress")
    assert code == 1 and "bad group key07" in text
    assert os.listdir(tmp_path) == ["in.csv"]


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_by_unknown_column_exits_2_before_any_work(tmp_path: Path, kind: str) -> None:
    path = _write_input(scattered(300), tmp_path, kind) if kind != "parquet" else tmp_path / "in.parquet"
    if kind == "parquet":
        scattered(300).to_parquet(path, index=False)
    code, text = invoke("run", path, "-f", spec("crash"), "-o", tmp_path / "out.parquet", "--by", "nope",
                        "--no-progress")
    assert code == 2, text
    assert "--by nope: no such column; the columns are k, v, w" in text
    assert len(text.strip().splitlines()) == 1
    assert os.listdir(tmp_path) == [path.name]


def _interrupting_funcs(tmp_path: Path) -> Path:
    """A module whose ``f`` stops the run (as Ctrl-C would) at row 300, until ``_going()``."""
    funcs = tmp_path / "funcs.py"
    funcs.write_text(
        "import os\n"
        "def f(df):\n"
        "    if len(df) and df.index[0] == 300 and not os.environ.get('FP_TEST_GO'):\n"
        "        raise KeyboardInterrupt\n"
        "    return df.assign(y=df['x'] * 2)\n"
    )
    return funcs


@contextlib.contextmanager
def _going() -> Iterator[None]:
    """Let the functions that stop a first run (``FP_TEST_GO``) run through."""
    os.environ["FP_TEST_GO"] = "1"
    try:
        yield
    finally:
        del os.environ["FP_TEST_GO"]

def test_by_interrupted_run_resumes(tmp_path: Path) -> None:
    path = _write_input(scattered(), tmp_path, "csv")
    out = tmp_path / "out.parquet"
    args = ["run", path, "-f", spec("summary_until_interrupt"), "--arg", "stop=key13", "-o", out,
            "--by", "k", "--chunk-rows", "400", "--backend", "serial", "--no-progress"]
    code, text = invoke(*args)
    assert code == 130 and "--resume" in text
    state = tmp_path / ".out.parquet.framepar"
    assert not out.exists() and not list(state.glob("spill-*"))
    settled = len((state / "done.jsonl").read_text().splitlines())
    assert settled >= 2
    report = tmp_path / "report.csv"
    with _going():
        code, text = invoke(*args, "--resume", "--report", report)
    assert code == 0, text
    expected = cli_funcs.group_summary(pd.read_csv(path), sort=True)
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected)
    assert int(pd.read_csv(report)["reused"].sum()) == settled
    assert sorted(os.listdir(tmp_path)) == ["in.csv", "out.parquet", "report.csv"]
    # Another chunk size is another partition: refused.
    code, text = invoke(*args[:-1], "--chunk-rows", "500", "--resume")
    assert code == 2 and "nothing to resume" in text


def test_inspect_by_shows_the_partition(tmp_path: Path, flights: Path) -> None:
    path = _write_input(scattered(), tmp_path, "csv")
    code, text = invoke("inspect", path, "--by", "k", "--chunk-rows", "400", "--workers", "2")
    assert code == 0, text
    assert "28 groups, scattered in the file; a first pass will sort the rows" in text
    assert "k = 'big' (1 group, partitioned)" in text and "'key24' to missing (3 groups" in text
    sorted_path = tmp_path / "sorted.parquet"
    pd.read_parquet(flights).sort_values("carrier").to_parquet(sorted_path, row_group_size=2000)
    code, text = invoke("inspect", sorted_path, "--by", "carrier")
    assert code == 0 and "each group's rows are together in the file" in text
    code, text = invoke("inspect", path, "--by", "nope")
    assert code == 2 and "no such column" in text


@pytest.mark.parametrize("how", ["slash", "format"])
def test_parquet_directory_output(numbers: Path, tmp_path: Path, how: str) -> None:
    single = tmp_path / "single.parquet"
    code, text = invoke("run", numbers, "-f", spec("double_x"), "-o", single, *CHUNKS, "--no-progress")
    assert code == 0, text
    target = tmp_path / "out"
    where = [f"{target}/"] if how == "slash" else [target, "--output-format", "parquet-dir"]
    for _ in range(2):  # the second run replaces the first's directory
        code, text = invoke("run", numbers, "-f", spec("double_x"), "-o", *where, *CHUNKS, "--workers", "2",
                            "--no-progress")
        assert code == 0, text
    names = os.listdir(target)
    assert sorted(names) == [f"part-{i:05d}.parquet" for i in range(10)]
    pd.testing.assert_frame_equal(pd.read_parquet(target), pd.read_parquet(single))
    assert sorted(os.listdir(tmp_path)) == ["numbers.parquet", "out", "single.parquet"]


def test_parquet_directory_output_refusals(numbers: Path, tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    code, text = invoke("run", numbers, "-f", spec("double_x"), "-o", f"{busy}/", "--no-progress")
    assert code == 2 and "holds other files (notes.txt)" in text
    assert os.listdir(busy) == ["notes.txt"]
    code, text = invoke("run", numbers, "-f", spec("double_x"), "-o", f"{tmp_path}/o/", "--output-format",
                        "csv", "--no-progress")
    assert code == 2 and "a directory of Parquet files" in text
    code, text = invoke("run", numbers, "-f", spec("fail_on_chunk_two"), "-o", f"{tmp_path}/o/", *CHUNKS,
                        "--no-progress")
    assert code == 1 and not (tmp_path / "o").exists()
    assert sorted(os.listdir(tmp_path)) == ["busy", "numbers.parquet"]


def test_parquet_directory_output_resumes(numbers: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    funcs = _interrupting_funcs(tmp_path)
    args = ["run", numbers, "-f", f"{funcs}:f", "-o", f"{out}/", *CHUNKS, "--backend", "serial", "--no-progress"]
    code, _ = invoke(*args)
    assert code == 130 and not out.exists()
    partial = tmp_path / ".out.framepar" / "output.partial"
    assert sorted(os.listdir(partial)) == [f"part-{i:05d}.parquet" for i in range(3)]
    as_file = [*args[:5], out, "--output-format", "parquet", *args[6:], "--resume"]
    code, text = invoke(*as_file)  # one file is another output than a directory
    assert code == 2 and "output format differs" in text
    with _going():
        code, text = invoke(*args, "--resume")
    assert code == 0 and "3 reused" in text, text
    pd.testing.assert_frame_equal(pd.read_parquet(out), cli_funcs.double_x(pd.read_parquet(numbers)))
    assert sorted(os.listdir(tmp_path)) == ["funcs.py", "numbers.parquet", "out"]


def test_result_must_be_a_frame(numbers: Path, tmp_path: Path) -> None:
    code, text = invoke("run", numbers, "-f", spec("not_a_frame"), "-o", tmp_path / "o.parquet",
                        "--no-progress", "--backend", "serial")
    assert code == 1 and "ChunkResultTypeError" in text


def test_crashed_worker_is_a_failed_chunk(numbers: Path, tmp_path: Path) -> None:
    code, text = invoke("run", numbers, "-f", spec("crash"), "-o", tmp_path / "o.parquet",
                        "--workers", "2", "--backend", "process", "--no-progress", *CHUNKS)
    assert code == 1 and "crashed" in text
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-f", "no_colon_here"], "expected module:function"),
        (["-f", "surely_not_a_module_xyz:f"], "no module named 'surely_not_a_module_xyz'"),
        (["-f", "missing/file.py:f"], "does not exist"),
        (["-f", f"{FUNCS}:nope"], "has no function 'nope'"),
        (["-f", f"{FUNCS}:NOT_CALLABLE"], "not a function"),
        (["-f", f"{FUNCS}:double_x", "--errors", "collect"], "--errors must be raise or skip"),
        (["-f", f"{FUNCS}:double_x", "--report", "r.txt"], "use a .csv, .json or .parquet"),
        (["-f", f"{FUNCS}:double_x", "--output-format", "xlsx"], "unknown format 'xlsx'"),
        (["-f", f"{FUNCS}:double_x", "--workers", "0"], "workers must be >= 1"),
        (["-f", f"{FUNCS}:double_x", "--arg", "novalue"], "expected NAME=VALUE"),
    ],
)
def test_usage_errors_exit_2_with_one_line(numbers: Path, tmp_path: Path, args: list[str], message: str) -> None:
    os.chdir(tmp_path)
    code, text = invoke("run", numbers, "-o", tmp_path / "o.parquet", "--no-progress", *args)
    assert code == 2, text
    assert message in text and len(text.strip().splitlines()) == 1 and "Traceback" not in text
    assert not (tmp_path / "o.parquet").exists()


def test_input_and_output_problems_exit_2(numbers: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1" + os.urandom(200))
    cases = [
        ([tmp_path / "missing.parquet", "-o", tmp_path / "o.parquet"], "does not exist"),
        ([corrupt, "-o", tmp_path / "o.parquet"], "cannot read"),
        ([numbers, "-o", tmp_path / "nodir" / "o.parquet"], "does not exist; create it first"),
        ([numbers, "-o", numbers], "is the input file"),
        ([numbers, "-o", tmp_path], "is a directory"),
        ([numbers, "-o", tmp_path / "o.xyz"], "cannot tell the output format"),
        ([tmp_path / "data.bin", "-o", tmp_path / "o.parquet"], "does not exist"),
    ]
    for args, message in cases:
        code, text = invoke("run", *args, "-f", spec("double_x"), "--no-progress")
        assert code == 2, (args, text)
        assert message in text and len(text.strip().splitlines()) == 1, (args, text)


def test_output_inside_input_directory_is_refused(flights: Path, tmp_path: Path) -> None:
    d = tmp_path / "dataset"
    d.mkdir()
    shutil.copy(flights, d / "a.parquet")
    code, text = invoke("run", d, "-f", spec("add_speed"), "-o", d / "out.parquet", "--no-progress")
    assert code == 2 and "inside the input directory" in text


def test_interrupted_run_resumes_only_missing_chunks(numbers: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    funcs = tmp_path / "funcs.py"
    shutil.copy(FUNCS, funcs)
    code, text = invoke("run", numbers, "-f", f"{funcs}:interrupt_at_300", "-o", out, *CHUNKS,
                        "--backend", "serial", "--no-progress")
    assert code == 130 and "--resume" in text
    assert not out.exists()
    state = tmp_path / ".out.parquet.framepar"
    assert (state / "manifest.json").exists()
    # Another function, or a changed input: refused.
    code, text = invoke("run", numbers, "-f", f"{funcs}:double_x", "-o", out, "--resume", "--no-progress", *CHUNKS)
    assert code == 2 and "function changed" in text
    funcs.write_text(funcs.read_text().replace("== 300", "== 12345"))
    code, text = invoke("run", numbers, "-f", f"{funcs}:interrupt_at_300", "-o", out, *CHUNKS, "--resume",
                        "--no-progress")
    assert code == 2 and "function changed" in text
    funcs.write_text(funcs.read_text().replace("== 12345", "== 300"))
    os.utime(numbers, ns=(1, 1))
    code, text = invoke("run", numbers, "-f", f"{funcs}:interrupt_at_300", "-o", out, *CHUNKS, "--resume",
                        "--no-progress")
    assert code == 2 and "input file changed" in text


@pytest.mark.parametrize("suffix", ["parquet", "arrow", "csv", "jsonl"])
def test_resume_completes_with_reused_chunks(numbers: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"out.{suffix}"
    funcs = _interrupting_funcs(tmp_path)
    code, _ = invoke("run", numbers, "-f", f"{funcs}:f", "-o", out, "--backend", "serial", "--no-progress",
                     *CHUNKS)
    assert code == 130 and not out.exists()
    report = tmp_path / "r.csv"
    with _going():
        code, text = invoke("run", numbers, "-f", f"{funcs}:f", "-o", out, "--resume", "--report",
                            report, "--backend", "serial", "--no-progress", *CHUNKS)
    assert code == 0, text
    rep = pd.read_csv(report)
    assert rep["reused"].tolist() == [True] * 3 + [False] * 7
    expected = roundtrip(cli_funcs.double_x(pd.read_parquet(numbers)), suffix)
    pd.testing.assert_frame_equal(read_any(out), expected)
    assert not (tmp_path / f".out.{suffix}.framepar").exists()


def test_resume_without_a_previous_run_is_refused(numbers: Path, tmp_path: Path) -> None:
    code, text = invoke("run", numbers, "-f", spec("double_x"), "-o", tmp_path / "o.csv", "--resume")
    assert code == 2 and "nothing to resume" in text


def test_inspect(flights: Path) -> None:
    code, text = invoke("inspect", flights, "--workers", "2")
    assert code == 0, text
    assert "rows:       12,000" in text and "4 row groups" in text
    assert "time_hour" in text and "chunk plan: 4 chunks for 2 workers" in text


def test_inspect_missing_file(tmp_path: Path) -> None:
    code, text = invoke("inspect", tmp_path / "nope.csv")
    assert code == 2 and "does not exist" in text


def test_readme_example(tmp_path: Path) -> None:
    """The README's command, with the output moved to a temporary directory."""
    import importlib.util

    example = DATA.parent / "examples" / "features.py"
    out = tmp_path / "speed.parquet"
    code, text = invoke("run", DATA / "flights_sample.csv", "--func", f"{example}:add_speed",
                        "--output", out, "--no-progress")
    assert code == 0, text
    loaded = importlib.util.spec_from_file_location("readme_features", example)
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    expected = module.add_speed(pd.read_csv(DATA / "flights_sample.csv"))
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected)
