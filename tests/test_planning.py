"""The planner is pure: property tests over sizes and options."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from framepar import planning


def covers(ranges, n, offset=0):
    assert ranges[0][0] == offset and ranges[-1][1] == offset + n
    for (a, b), (c, _) in itertools.pairwise(ranges):
        assert b == c and a < b


@given(st.integers(1, 10**7), st.integers(1, 64), st.integers(0, 10**6))
def test_default_plan_covers_every_row_once(n, workers, offset):
    ranges = planning.plan_ranges(n, workers=workers, offset=offset)
    covers(ranges, n, offset)
    sizes = [b - a for a, b in ranges]
    if workers > 1 and len(sizes) > 2:
        # Guided: never growing (but for the last chunk, which absorbs a sliver),
        # and about 6 * workers chunks at most, whatever the input's size.
        assert all(x >= y for x, y in itertools.pairwise(sizes[:-1]))
        assert sizes[-1] <= sizes[0]
    assert len(ranges) <= 7 * workers + 2


@given(st.integers(1, 10**5), st.integers(1, 10**4))
def test_fixed_chunk_rows(n, chunk_rows):
    ranges = planning.plan_ranges(n, workers=2, chunk_rows=chunk_rows)
    covers(ranges, n)
    assert all(b - a == chunk_rows for a, b in ranges[:-1])
    assert 0 < ranges[-1][1] - ranges[-1][0] <= chunk_rows


@given(st.integers(1, 10**5), st.integers(1, 200))
def test_n_chunks_sizes_differ_by_at_most_one(n, k):
    ranges = planning.plan_ranges(n, workers=2, n_chunks=k)
    covers(ranges, n)
    sizes = {b - a for a, b in ranges}
    assert len(ranges) == min(n, k) and max(sizes) - min(sizes) <= 1


def test_empty_input_is_one_empty_chunk():
    assert planning.plan_ranges(0, workers=4) == [(0, 0)]


@given(st.integers(1, 10**8), st.integers(1, 64))
def test_probe_is_small_but_not_noise(n, workers):
    rows = planning.probe_rows(n, workers)
    assert 1 <= rows <= n
    assert rows == n or rows >= 256


def test_choice_prefers_processes_for_expensive_work():
    est = planning.choose_execution(probe_seconds=0.1, probe_rows=1000, rest_rows=100_000, rest_chunks=8,
                                    workers=2, start_seconds=0.03, moved_bytes_per_row=100)
    assert est.use_processes and est.parallel_seconds < est.serial_seconds


def test_choice_stays_in_process_when_moving_data_costs_more():
    est = planning.choose_execution(probe_seconds=0.001, probe_rows=100_000, rest_rows=10_000_000,
                                    rest_chunks=8, workers=2, start_seconds=0.03, moved_bytes_per_row=100)
    assert not est.use_processes and "in-process" in est.reason


def test_one_worker_never_chooses_processes():
    est = planning.choose_execution(probe_seconds=10, probe_rows=10, rest_rows=10_000, rest_chunks=8,
                                    workers=1, start_seconds=0, moved_bytes_per_row=0)
    assert not est.use_processes
