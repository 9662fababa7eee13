"""Chunk planning: pure functions from sizes and options to row ranges.

Nothing here touches data or processes, so the planner can be tested with
property tests. A plan is an ordered list of :class:`ChunkSpec`; chunk ``i``
covers positional rows ``[start, stop)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# Below this many rows per chunk the per-chunk overhead (a message each way,
# a result to concatenate) starts to dominate typical functions.
MIN_ROWS_PER_CHUNK = 1024
# Chunks per worker by default: enough for load balance, few enough to keep
# the per-chunk overhead and the final concatenation small.
CHUNKS_PER_WORKER = 4


@dataclass(frozen=True)
class ChunkSpec:
    """One chunk of the input: positional rows ``[start, stop)``.

    ``labels`` holds the first and last index labels (``None`` for an empty
    chunk); ``groups`` names the group keys a group-aware chunk holds.
    ``rows`` (the positions) is set only by group-aware plans, whose chunks
    are not contiguous in the input.
    """

    index: int
    start: int
    stop: int
    first_label: Any = None
    last_label: Any = None
    groups: tuple[Any, ...] | None = None
    rows: Any = field(default=None, compare=False, repr=False)
    # Rows of context from the neighbours (``overlap=``), handed to the
    # function before/after the chunk's own rows and trimmed from its result.
    lead: int = 0
    tail: int = 0

    @property
    def n_rows(self) -> int:
        return self.stop - self.start if self.rows is None else len(self.rows)


def split_even(n_rows: int, n_chunks: int, *, offset: int = 0) -> list[tuple[int, int]]:
    """``n_chunks`` contiguous ranges covering ``[offset, offset + n_rows)``,
    sizes differing by at most one (np.array_split's boundaries)."""
    if n_rows <= 0:
        return []
    n_chunks = max(1, min(n_chunks, n_rows))
    base, extra = divmod(n_rows, n_chunks)
    ranges = []
    start = offset
    for i in range(n_chunks):
        stop = start + base + (1 if i < extra else 0)
        ranges.append((start, stop))
        start = stop
    return ranges


def split_fixed(n_rows: int, chunk_rows: int, *, offset: int = 0) -> list[tuple[int, int]]:
    """Ranges of ``chunk_rows`` rows (the last one may be shorter)."""
    return [
        (offset + s, offset + min(s + chunk_rows, n_rows)) for s in range(0, n_rows, chunk_rows)
    ]


def default_chunk_count(n_rows: int, workers: int) -> int:
    """How many even chunks to cut ``n_rows`` into when the user did not say."""
    wanted = workers * CHUNKS_PER_WORKER
    by_size = max(1, n_rows // MIN_ROWS_PER_CHUNK)
    return max(1, min(wanted, by_size, n_rows)) if n_rows else 0


def split_guided(n_rows: int, workers: int, *, offset: int = 0) -> list[tuple[int, int]]:
    """Chunks that shrink as the input runs out (guided self-scheduling).

    Each chunk takes 1/(2 * workers) of the rows still left, down to a floor
    of 1/(4 * CHUNKS_PER_WORKER * workers) of the input. Big chunks first keep
    the per-chunk cost low; small chunks last mean that when one worker runs
    slower than another (a noisy neighbour, uneven rows), the other is left
    idle for at most a small chunk's time at the end, not an average one's.
    """
    if n_rows <= 0:
        return []
    if workers <= 1:
        return split_even(n_rows, default_chunk_count(n_rows, workers), offset=offset)
    floor = max(MIN_ROWS_PER_CHUNK, math.ceil(n_rows / (4 * CHUNKS_PER_WORKER * workers)))
    ranges: list[tuple[int, int]] = []
    start, left = offset, n_rows
    while left > 0:
        size = math.ceil(left / (2 * workers))
        if size <= floor:
            # The tail: even chunks of at most the floor, no sliver at the end.
            return ranges + split_even(left, math.ceil(left / floor), offset=start)
        ranges.append((start, start + size))
        start += size
        left -= size
    return ranges


# Inputs up to this many rows run in one in-process call under backend="auto":
# a first call's fixed costs (pandas' lazy imports, caches) would make any
# timing of a few dozen rows meaningless, and starting workers costs more than
# most functions spend on a couple of thousand rows.
TINY_ROWS = 2_000


def probe_rows(n_rows: int, workers: int) -> int:
    """Rows of the first chunk, run in-process to measure the function.

    Small enough that running it without parallelism costs little (about
    1/(64 * workers) of the input), large enough that its timing is not noise.
    """
    if n_rows <= TINY_ROWS:
        return n_rows
    return min(n_rows, max(256, math.ceil(n_rows / (64 * workers))))


def plan_ranges(
    n_rows: int,
    *,
    workers: int,
    chunk_rows: int | None = None,
    n_chunks: int | None = None,
    offset: int = 0,
) -> list[tuple[int, int]]:
    """Row ranges for ``n_rows`` rows starting at ``offset``.

    An empty input still gets one empty chunk so that the function is called
    once and its output schema is kept.
    """
    if n_rows == 0:
        return [(offset, offset)]
    if chunk_rows is not None:
        return split_fixed(n_rows, chunk_rows, offset=offset)
    if n_chunks is not None:
        return split_even(n_rows, n_chunks, offset=offset)
    return split_guided(n_rows, workers, offset=offset)


def lead_in_ranges(n_rows: int, *, workers: int, offset: int = 0) -> list[tuple[int, int]]:
    """Default ranges whose first ``workers`` chunks are small.

    Used when the first results teach the parent how to receive the others
    (result buffers): only that small first wave comes back the slow way.
    """
    if n_rows == 0:
        return plan_ranges(0, workers=workers, offset=offset)
    small = min(n_rows, max(MIN_ROWS_PER_CHUNK, math.ceil(n_rows / (16 * workers))))
    covered = min(n_rows, small * workers)
    ranges = split_fixed(covered, small, offset=offset)
    left = n_rows - covered
    return ranges + split_guided(left, workers, offset=offset + covered)


def number(ranges: list[tuple[int, int]], first_index: int = 0) -> list[ChunkSpec]:
    """Turn ranges into specs numbered from ``first_index``."""
    return [ChunkSpec(first_index + i, a, b) for i, (a, b) in enumerate(ranges)]


# -- choosing between in-process and worker processes -----------------------

# Throughput of moving a result (or input) between processes by pickle:
# pickling, the pipe, unpickling and the final concatenation together.
PICKLE_BYTES_PER_SECOND = 400e6
# Fixed cost of one chunk on a worker process (two messages, bookkeeping).
SECONDS_PER_REMOTE_CHUNK = 0.002
# Processes must be expected to win by this factor before we pay for them.
PARALLEL_MARGIN = 0.8
# Below this much estimated work left, timing noise outweighs any gain.
MIN_PARALLEL_SECONDS = 0.1


@dataclass(frozen=True)
class Estimate:
    use_processes: bool
    reason: str
    serial_seconds: float
    parallel_seconds: float


def choose_execution(
    *,
    probe_seconds: float,
    probe_rows: int,
    rest_rows: int,
    rest_chunks: int,
    workers: int,
    start_seconds: float,
    moved_bytes_per_row: float,
) -> Estimate:
    """Decide from the first chunk's timing whether the rest pays for processes.

    The serial estimate scales the first chunk's time to the remaining rows;
    the parallel one adds worker start-up, moving data and a per-chunk cost
    to the serial time divided among the workers.
    """
    per_row = probe_seconds / max(probe_rows, 1)
    serial = per_row * rest_rows
    moving = moved_bytes_per_row * rest_rows / PICKLE_BYTES_PER_SECOND
    parallel = (
        start_seconds
        + serial / max(1, min(workers, rest_chunks))
        + moving
        + SECONDS_PER_REMOTE_CHUNK * rest_chunks
    )
    use = workers > 1 and serial >= MIN_PARALLEL_SECONDS and parallel < serial * PARALLEL_MARGIN
    if use:
        reason = (
            f"worker processes: about {serial:.2f} s of work left in-process against "
            f"{parallel:.2f} s estimated on {workers} workers"
        )
    else:
        reason = (
            f"in-process: about {serial:.3f} s of work left, and {workers} worker processes "
            f"would take about {parallel:.3f} s (start-up {start_seconds:.3f} s, moving data "
            f"{moving:.3f} s)"
        )
    return Estimate(use, reason, serial, parallel)
