"""The public surface is what __all__ says, and the hierarchy is as documented."""

from __future__ import annotations

import inspect

import framepar


def test_all_names_exist():
    for name in framepar.__all__:
        assert hasattr(framepar, name), name


def test_map_chunks_signature_is_the_contract():
    params = inspect.signature(framepar.map_chunks).parameters
    names = list(params)
    assert names[:3] == ["data", "func", "args"]
    for name, default in [("workers", None), ("chunk_rows", None), ("n_chunks", None), ("backend", "auto"),
                          ("errors", "raise"), ("progress", None), ("combine", None)]:
        assert params[name].default == default
    assert names[-1] == "kwargs"
    assert list(inspect.signature(framepar.run).parameters) == names


def test_exception_hierarchy():
    assert issubclass(framepar.InvalidArgumentError, ValueError)
    assert issubclass(framepar.InvalidArgumentTypeError, TypeError)
    assert issubclass(framepar.NotPicklableError, TypeError)
    assert issubclass(framepar.ChunkTimeoutError, TimeoutError)
    for cls in (framepar.WorkerCrashedError, framepar.ChunkTimeoutError, framepar.RemoteExceptionError,
                framepar.ChunkCancelledError):
        assert issubclass(cls, framepar.ChunkError)
        assert issubclass(cls, framepar.FrameparError)
    assert issubclass(framepar.ChunksFailed, ExceptionGroup)
    assert issubclass(framepar.ChunksFailed, framepar.FrameparError)
    assert issubclass(framepar.ChunkFailureWarning, UserWarning)


def test_chunk_error_pickles_with_its_details():
    import pickle

    err = framepar.WorkerCrashedError("boom", info={"chunk": 3, "status": "crashed", "traceback": "tb"})
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is framepar.WorkerCrashedError
    assert (back.chunk, back.status, back.traceback, str(back)) == (3, "crashed", "tb", "boom")
