"""File input and output for streaming runs (the CLI and :func:`framepar.map_file`).

* :mod:`.formats`: which format a path is;
* :mod:`.readers` / :mod:`.text`: planning an input into chunk recipes that
  workers read themselves;
* :mod:`.writers` / :mod:`.parquet_concat`: part files written by workers and
  appended in order by the parent;
* :mod:`.state`: the temp output and manifest of an unfinished run.
"""

from __future__ import annotations

from .formats import FORMATS, FormatError, detect
from .readers import InputError, InputPlan, plan_input

__all__ = ["FORMATS", "FormatError", "InputError", "InputPlan", "detect", "plan_input"]
