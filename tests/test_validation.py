"""Bad input is refused before any work starts, with a message saying what to fix."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import worker_children
from frames import base_frame

import framepar

BAD = [
    ({"workers": 0}, ValueError, "workers must be >= 1"),
    ({"workers": 1.5}, TypeError, "workers must be an int"),
    ({"chunk_rows": -1}, ValueError, "chunk_rows must be >= 1"),
    ({"chunk_rows": 0}, ValueError, "chunk_rows must be >= 1"),
    ({"n_chunks": 0}, ValueError, "n_chunks must be >= 1"),
    ({"chunk_rows": 5, "n_chunks": 2}, ValueError, "not both"),
    ({"errors": "ignore"}, ValueError, "errors must be one of"),
    ({"backend": "gpu"}, ValueError, "backend must be one of"),
    ({"progress": "yes"}, TypeError, "progress must be"),
    ({"combine": 3}, TypeError, "combine must be callable"),
    ({"retries": -1}, ValueError, "retries must be >= 0"),
    ({"timeout": 0}, ValueError, "timeout must be > 0"),
    ({"timeout": 1, "backend": "thread"}, ValueError, "timeout needs a backend"),
    ({"retry_on": ["oops"]}, ValueError, "retry_on items"),
]


@pytest.mark.parametrize(("kwargs", "kind", "message"), BAD)
def test_bad_options(kwargs, kind, message):
    with pytest.raises(kind, match=message) as info:
        framepar.map_chunks(base_frame(10), lambda c: c, **kwargs)
    assert isinstance(info.value, framepar.FrameparError)


def test_input_must_be_a_frame_or_series():
    with pytest.raises(TypeError, match=r"needs a pandas DataFrame or Series, got numpy\.ndarray"):
        framepar.map_chunks(np.arange(3), lambda c: c)


def test_func_must_be_callable():
    with pytest.raises(TypeError, match="func must be callable"):
        framepar.map_chunks(base_frame(10), "not a function")


def test_unpicklable_function_fails_before_any_worker_starts():
    lock = threading.Lock()
    before = worker_children()

    def holds_lock(chunk):
        with lock:
            return chunk

    with pytest.raises(framepar.NotPicklableError, match=r"the function .*holds_lock.* cannot be pickled.*lock"):
        framepar.map_chunks(base_frame(10), holds_lock, backend="process")
    assert worker_children() == before


def test_unpicklable_argument_is_named():
    with pytest.raises(framepar.NotPicklableError, match="keyword argument 'guard'"):
        framepar.map_chunks(base_frame(10), lambda c, guard: c, backend="process", guard=threading.Lock())
    with pytest.raises(framepar.NotPicklableError, match="positional argument 0"):
        framepar.map_chunks(base_frame(10), lambda c, g: c, threading.Lock(), backend="process")
    with pytest.raises(TypeError):  # also a TypeError for users who catch that
        framepar.map_chunks(base_frame(10), lambda c, g: c, threading.Lock(), backend="process")


def test_unpicklable_function_is_fine_in_process():
    lock = threading.Lock()
    got = framepar.map_chunks(base_frame(10), lambda c: c if lock else None, backend="thread")
    assert len(got) == 10
