"""Loading the user's function from a ``SPEC`` string given on the command line.

``package.module:function`` imports an installed (or ``PYTHONPATH``) module;
``path/to/file.py:function`` loads that file. The current directory is never
searched implicitly, so a stray ``pandas.py`` or ``json.py`` next to the
data cannot shadow the real modules; a local file is named by its path.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from .exceptions import InvalidArgumentError


class SpecError(InvalidArgumentError):
    """The function SPEC cannot be loaded; the message says what to fix."""


def drop_implicit_cwd() -> None:
    """Remove the entry ``python -m`` puts first on ``sys.path`` (the current directory)."""
    if sys.path and sys.path[0] in ("", ".", os.getcwd()):
        del sys.path[0]


def load_function(spec: str) -> Callable[..., Any]:
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise SpecError(
            f"--func {spec!r}: expected module:function (e.g. mypkg.features:add_columns) "
            "or path/to/file.py:function"
        )
    if where.endswith(".py") or os.sep in where or "/" in where:
        module = _load_file(where, spec)
    else:
        module = _import(where, spec)
    try:
        func = getattr(module, name)
    except AttributeError:
        names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        hint = f"; it has {', '.join(names[:8])}" if names else ""
        raise SpecError(f"--func {spec!r}: {where} has no function {name!r}{hint}") from None
    if not callable(func):
        raise SpecError(f"--func {spec!r}: {where}.{name} is a {type(func).__name__}, not a function")
    return func  # type: ignore[no-any-return]


def _import(module_name: str, spec: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise SpecError(
                f"--func {spec!r}: no module named {module_name!r} is installed or on PYTHONPATH; "
                f"for a file in this directory write ./{module_name.replace('.', '/')}.py:"
                f"{spec.rpartition(':')[2]}"
            ) from None
        raise SpecError(f"--func {spec!r}: importing {module_name} failed: {exc}") from None
    except Exception as exc:
        raise SpecError(
            f"--func {spec!r}: importing {module_name} failed: {type(exc).__name__}: {exc}"
        ) from None


def _load_file(path_text: str, spec: str) -> ModuleType:
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise SpecError(f"--func {spec!r}: file {path_text!r} does not exist")
    path = path.resolve()
    # A stable name (not hash(), which changes per process): the function's
    # fingerprint, checked by --resume, includes its module's name.
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    name = f"framepar_user_{path.stem}_{digest}"
    loader_spec = importlib.util.spec_from_file_location(name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise SpecError(f"--func {spec!r}: {path_text!r} cannot be loaded as Python")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module
    # Its own directory is searched last, so sibling helper modules import
    # but never shadow installed ones.
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        line = ""
        if isinstance(exc, SyntaxError):
            line = f" (line {exc.lineno})"
        raise SpecError(f"--func {spec!r}: running {path_text}{line} failed: {type(exc).__name__}: {exc}") from None
    # Workers started without fork cannot import this module by name: send
    # its functions by value.
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)
    return module


def parse_value(text: str) -> Any:
    """``--arg`` values: JSON where it parses (numbers, true/false, null, lists), else the string."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_pairs(items: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidArgumentError(f"{what} {item!r}: expected NAME=VALUE")
        out[key.strip()] = value
    return out
