"""The state of an unfinished file run, kept next to its output.

Everything a run writes before it succeeds lives in one hidden directory in
the output's directory, ``.<output name>.framepar/``:

* ``manifest.json``: what the run was (input files with size and mtime, the
  function's fingerprint, the chunk plan, the formats), written once;
* ``done.jsonl``: one line per chunk once its fate is settled (appended to
  the output, or failed), with what is needed to continue after it;
* ``output.partial``: the output being written, renamed onto the target on
  success (same file system, so the rename is atomic);
* ``parts/``: the part files workers wrote, waiting for their turn;
* ``spill-*/``: the rows of a ``by`` run sorted into buckets of whole groups
  (see io.partition), removed when the run ends however it ends.

A directory output (Parquet files) is built as ``output.partial/`` and
renamed the same way.

A killed run leaves only this directory, never a file under the target
name; ``--resume`` continues from it, and a new run without ``--resume``
removes it first.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any


class ResumeError(ValueError):
    """An unfinished run cannot be continued (none exists, or its input or function changed)."""


class RunState:
    def __init__(self, output: Path, directory: bool = False) -> None:
        self.output = output
        self.directory = directory  # the output is a directory of Parquet files
        self.dir = output.parent / f".{output.name}.framepar"
        self.manifest = self.dir / "manifest.json"
        self.done = self.dir / "done.jsonl"
        self.partial = self.dir / "output.partial"
        self.parts = self.dir / "parts"
        self._log: Any = None

    def exists(self) -> bool:
        return self.manifest.exists()

    def start(self, manifest: dict[str, Any]) -> None:
        self.discard()
        self.parts.mkdir(parents=True)
        tmp = self.manifest.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=1, default=str))
        os.replace(tmp, self.manifest)
        if self.directory:
            self.partial.mkdir()
        else:
            self.partial.touch()
        self._log = open(self.done, "a")  # noqa: SIM115 - closed in close()

    def load(self, current: dict[str, Any]) -> list[dict[str, Any]]:
        """The settled chunks of the interrupted run, after checking nothing changed."""
        if not self.exists():
            raise ResumeError(
                f"nothing to resume: no unfinished run writing {self.output.name} was found; "
                "run again without --resume"
            )
        old = json.loads(self.manifest.read_text())
        checks = [
            ("input", "the input file changed (size or modification time) since the interrupted run"),
            ("function", "the function changed since the interrupted run (its code, module or arguments)"),
            ("plan", "the chunk plan differs from the interrupted run's; pass the same --chunk-rows, "
                     "--by, --workers and --format as then"),
            ("output_format", "the output format differs from the interrupted run's"),
        ]
        current_json = json.loads(json.dumps(current, default=str))
        for key, why in checks:
            if old.get(key) != current_json.get(key):
                raise ResumeError(f"cannot resume: {why}; run again without --resume to start over")
        for stale in self.dir.glob("spill-*"):  # a --by pass of a killed run
            shutil.rmtree(stale, ignore_errors=True)
        entries = []
        if self.done.exists():
            with open(self.done) as fh:
                for line in fh:
                    try:
                        entries.append(json.loads(line))
                    except ValueError:
                        break  # the line being written when the run was killed
        self._log = open(self.done, "a")  # noqa: SIM115
        return entries

    def record(self, entry: dict[str, Any]) -> None:
        self._log.write(json.dumps(entry, default=str) + "\n")
        self._log.flush()

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def commit(self) -> None:
        """The output is complete: move it onto the target name, drop the state."""
        self.close()
        if self.directory and self.output.is_dir():
            # An earlier output directory (checked to hold only part files):
            # moved into the state directory, which goes next.
            os.replace(self.output, self.dir / "previous")
        os.replace(self.partial, self.output)
        self.discard()

    def discard(self) -> None:
        self.close()
        if self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)
