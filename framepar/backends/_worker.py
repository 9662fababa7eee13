"""The loop a worker process runs. Imports as little as possible.

Protocol (one duplex pipe per worker; every message is a pickled tuple)::

    parent -> worker   ("job", job_id, cloudpickled_job)    once per run and worker
                       ("task", key, job_id, pickled_payload, acknowledge)
                       ("stop",)
    worker -> parent   ("ready",)                              once, when this loop starts
                       ("started", key)                        if acknowledge, once the job is loaded
                       ("ok", key, value, seconds, started)
                       ("error", key, (type_name, message, traceback, exc_blob), seconds, started)

The parent writes with ``Connection.send_bytes``. The worker writes its
replies itself, each as an 8-byte big-endian length and then the pickle
(:func:`send`), so that the parent can read a reply piece by piece as it
arrives and never blocks on one that stops half-way.

A worker runs one task at a time, so the parent always knows which chunk a
dead worker was running. Workers ignore SIGINT (the parent owns Ctrl-C and
stops them) and exit on their own when the parent process disappears.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import threading
import time
import traceback
from typing import Any

# Objects the parent placed here before forking this worker; a payload may
# name one instead of carrying its data (the fork-inherit transport).
INHERITED: dict[str, Any] = {}

PARENT_POLL_SECONDS = 0.5

# Frame header of a worker's reply: the length of the pickle that follows.
HEADER = struct.Struct("!Q")


def main(conn: Any, parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The parent blocked SIGINT while starting us so that no Ctrl-C can land
    # before the line above; from here on it is ignored, so unblock it.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _watch_parent(parent_pid)
    # Tells the parent that start-up is over: a worker that dies before this
    # died starting (under spawn, importing the main script), not on a chunk.
    send(conn.fileno(), pickle.dumps(("ready",)))
    jobs: dict[int, Any] = {}
    blobs: dict[int, bytes] = {}
    while True:
        try:
            message = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        kind = message[0]
        if kind == "stop":
            return
        if kind == "job":
            # One run at a time per worker: forget earlier jobs.
            jobs.clear()
            blobs.clear()
            blobs[message[1]] = message[2]
        elif kind == "task":
            _, key, job_id, payload_blob, acknowledge = message
            send(conn.fileno(), _run_task(jobs, blobs, job_id, key, payload_blob, conn if acknowledge else None))


def _run_task(
    jobs: dict[int, Any], blobs: dict[int, bytes], job_id: int, key: int, payload_blob: bytes, ack: Any
) -> bytes:
    started = time.time()
    t0 = time.perf_counter()
    try:
        job = jobs.get(job_id)
        if job is None:
            import cloudpickle

            job = jobs[job_id] = cloudpickle.loads(blobs[job_id])
        if ack is not None:
            # The parent starts the chunk's timeout clock now, not while this
            # process was still starting up and importing.
            send(ack.fileno(), pickle.dumps(("started", key)))
            started = time.time()
            t0 = time.perf_counter()
        value = job(pickle.loads(payload_blob))
    except BaseException as exc:  # the chunk fails; the worker lives on
        return _error_reply(key, exc, time.perf_counter() - t0, started)
    seconds = time.perf_counter() - t0
    try:
        return pickle.dumps(("ok", key, value, seconds, started), protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException as exc:
        wrapped = ResultNotPicklable(
            f"the function's result ({type(value).__name__}) could not be pickled to send it "
            f"back: {type(exc).__name__}: {_safe_str(exc)}"
        )
        wrapped.__cause__ = exc
        return _error_reply(key, wrapped, seconds, started)


def send(fd: int, data: bytes) -> None:
    """Write one reply: its length, then its bytes (without copying them)."""
    parts = [memoryview(HEADER.pack(len(data))), memoryview(data)]
    while parts:
        written = os.writev(fd, parts)
        while parts and written >= len(parts[0]):
            written -= len(parts[0])
            parts.pop(0)
        if written:
            parts[0] = parts[0][written:]


class ResultNotPicklable(TypeError):
    """The chunk's result cannot be sent back to the parent."""


def _error_reply(key: int, exc: BaseException, seconds: float, started: float) -> bytes:
    cls = type(exc)
    module = cls.__module__
    type_name = cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"
    try:
        text = "".join(traceback.format_exception(exc))
    except BaseException:
        text = f"{type_name}: {_safe_str(exc)}\n(traceback could not be formatted)"
    try:
        import cloudpickle

        blob: bytes | None = cloudpickle.dumps(exc)
    except BaseException:
        blob = None
    info = (type_name, _safe_str(exc), text, blob)
    return pickle.dumps(("error", key, info, seconds, started), protocol=pickle.HIGHEST_PROTOCOL)


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except BaseException:
        return f"<{type(exc).__name__}: str() failed>"


def _watch_parent(parent_pid: int) -> None:
    """Exit when the parent dies, even in the middle of a chunk.

    The pipe alone cannot tell: forked siblings may hold its other end open.
    Under forkserver our parent process is the server, which exits when the
    real parent does, so a change of parent pid is the signal too.
    """
    first_ppid = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_SECONDS)
            if os.getppid() != first_ppid or not pid_alive(parent_pid):
                os._exit(70)

    threading.Thread(target=watch, name="framepar-parent-watch", daemon=True).start()


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (ours or not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


if __name__ == "__main__":  # pragma: no cover - started by multiprocessing only
    sys.exit("framepar's worker is started by framepar itself")
