"""A program the fault-tolerance tests run in a subprocess and then interrupt or kill.

``python fault_script.py MODE START_METHOD VIA``: starts a long run of slow
chunks on two worker processes (through ``framepar.run`` or a
``framepar.Executor``) and prints ``running <pid>`` just before. MODE
``interrupt``: on ``KeyboardInterrupt`` print ``interrupted <time>`` (and,
with an Executor, check it still works and print ``usable True``), then let
the interrupt end the program with its traceback. MODE ``parent-kill``: the
test SIGKILLs this process; nothing here runs after that.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

import framepar


def slow(chunk: pd.DataFrame) -> pd.DataFrame:
    # Tell the test which workers are running chunks (not framepar* files).
    Path(tempfile.gettempdir(), f"running-{os.getpid()}").touch()
    time.sleep(0.25)
    return chunk * 2


def quick(chunk: pd.DataFrame) -> pd.DataFrame:
    return chunk * 2


def main() -> None:
    mode, start_method, via = sys.argv[1:4]
    sm = None if start_method == "default" else start_method
    df = pd.DataFrame({"a": range(80)})
    opts = {"n_chunks": 80, "errors": "collect", "progress": False}
    if via == "executor":
        with framepar.Executor(workers=2, start_method=sm) as ex:
            try:
                print(f"running {os.getpid()}", flush=True)
                ex.run(df, slow, **opts)
            except KeyboardInterrupt:
                print(f"interrupted {time.time()!r}", flush=True)
                if mode == "interrupt":
                    again = ex.map_chunks(df.iloc[:6], quick, n_chunks=3, progress=False)
                    print(f"usable {again.equals(df.iloc[:6] * 2)}", flush=True)
                raise
    else:
        try:
            print(f"running {os.getpid()}", flush=True)
            framepar.run(df, slow, backend="process", workers=2, start_method=sm, **opts)
        except KeyboardInterrupt:
            print(f"interrupted {time.time()!r}", flush=True)
            raise
    print("finished", flush=True)


if __name__ == "__main__":
    main()
