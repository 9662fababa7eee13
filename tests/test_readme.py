"""Every code block in README.md is executed, so the README cannot rot.

- ```python blocks run in order in one namespace (a later block may use what an
  earlier one defined), in a fresh Python process whose working directory is a
  temporary directory where ``data/``, ``examples/`` and ``notebooks/`` are
  links to the repository's. One substitution: the placeholder scheduler
  address ``tcp://scheduler:8786`` of the Dask section becomes the address of
  a local Dask scheduler (threads, 127.0.0.1) started in that process, so the
  ``address=`` code runs as written against a real scheduler. (A separate
  process, because importing distributed changes how exceptions pickle for
  everything else in the process.)
- ```bash blocks run with bash in that same directory, ``python`` and
  ``framepar`` resolving to the interpreter running the tests and this
  checkout. Each ``&&``-separated command runs unless it is one of the
  documented exceptions in :func:`exemption`.
- ```text blocks are pictures (the exception tree), not code; a block with no
  language fails the test, so nothing escapes by accident.
- The Quickstart has exactly two ```bash blocks of one line each.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CI_SCRIPT = ROOT / ".ci" / "run"
LANGUAGES = {"python", "bash", "text"}
FENCE = re.compile(r"^```(\S*)\s*$")
DASK_PLACEHOLDER = "tcp://scheduler:8786"
# Runs the python blocks (a JSON list of {"where", "code"}) in one namespace; a
# failing block's traceback names its README line.
PYTHON_RUNNER = """
import json, sys
blocks = json.load(open(sys.argv[1]))
namespace = {"__name__": "__readme__"}
cluster = None
if sys.argv[2] == "dask":
    import distributed
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
        dashboard_address=None,
    )
    namespace["README_SCHEDULER"] = cluster.scheduler_address
try:
    for block in blocks:
        exec(compile(block["code"], block["where"], "exec"), namespace)
finally:
    if cluster is not None:
        cluster.close()
print(f"ran {len(blocks)} blocks")
"""


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    section: str  # the nearest heading above the block
    line: int  # 1-based line of the opening fence

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.section!r}, ```{self.lang})"


def parse_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    section = ""
    lang: str | None = None
    start = 0
    body: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fence = FENCE.match(line)
        if lang is None:
            if fence:
                lang, start, body = fence.group(1), number, []
            elif line.startswith("#"):
                section = line.lstrip("#").strip()
        elif fence and not fence.group(1):
            blocks.append(Block(lang, "\n".join(body) + "\n", section, start))
            lang = None
        else:
            body.append(line)
    assert lang is None, f"README.md:{start}: code block never closed"
    return blocks


BLOCKS = parse_blocks(README.read_text(encoding="utf-8"))
PYTHON = [b for b in BLOCKS if b.lang == "python"]
BASH = [b for b in BLOCKS if b.lang == "bash" and b.section != "Quickstart"]
QUICKSTART = [b for b in BLOCKS if b.section == "Quickstart"]


def commands(block: Block) -> list[str]:
    """The block's command lines (comments and blank lines dropped; a trailing
    backslash continues a line)."""
    joined = block.code.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def steps(command: str) -> list[str]:
    return [part.strip() for part in command.split("&&")]


def ci_lint_steps() -> set[str]:
    """The lint and type-check commands of the CI script (``ruff check ... && mypy``)."""
    match = re.search(r"^\s*&& (ruff check [^)]*)", CI_SCRIPT.read_text(encoding="utf-8"), re.MULTILINE)
    assert match, "the CI script no longer runs ruff; update exemption()"
    return set(steps(match.group(1)))


def exemption(step: str) -> str | None:
    """Why a README command is not run here (None: it is run).

    - installing packages: the test environment is already installed, and a
      test must not change it;
    - ``python -m pytest``: that is this test suite, which would run itself;
    - the lint and type-check command: CI runs it as its own step; here we
      only check that the README shows the commands CI runs.
    """
    words = shlex.split(step)
    if words[:2] == ["pip", "install"] or words[:4] == ["python", "-m", "pip", "install"]:
        return "installs packages"
    if words[:3] == ["python", "-m", "pytest"]:
        return "runs this test suite"
    if step in ci_lint_steps():
        return "lint and type checks: the CI script runs exactly this"
    return None


# -- structure ---------------------------------------------------------------


def test_every_block_has_a_known_language() -> None:
    assert BLOCKS, "no code blocks found in README.md"
    unknown = [str(b) for b in BLOCKS if b.lang not in LANGUAGES]
    assert not unknown, f"label these blocks with one of {sorted(LANGUAGES)}: {unknown}"


def test_quickstart_is_exactly_two_one_line_commands() -> None:
    assert [b.lang for b in QUICKSTART] == ["bash", "bash"], [str(b) for b in QUICKSTART]
    for block in QUICKSTART:
        assert len(commands(block)) == 1, f"{block}: one command per Quickstart block"
    install_and_run, install_and_test = (commands(b)[0] for b in QUICKSTART)
    assert exemption(steps(install_and_run)[0]) == "installs packages"
    assert [exemption(s) for s in steps(install_and_test)] == ["installs packages", "runs this test suite"]
    # The test command is the one CI runs.
    assert install_and_test in CI_SCRIPT.read_text(encoding="utf-8")


def test_only_documented_commands_are_exempt() -> None:
    exempt = {s: exemption(s) for b in BASH + QUICKSTART for c in commands(b) for s in steps(c)}
    reasons = {r for r in exempt.values() if r is not None}
    assert reasons <= {
        "installs packages",
        "runs this test suite",
        "lint and type checks: the CI script runs exactly this",
    }


# -- execution -----------------------------------------------------------------


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch directory that looks like the repository root to the README's
    code, so that files a command writes land in the scratch directory."""
    for name in ("data", "examples", "notebooks"):
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def shell_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """``python`` is this interpreter and ``framepar`` this checkout's CLI."""
    bin_dir = tmp_path_factory.mktemp("bin")
    # Scripts, not symlinks: a virtualenv's interpreter finds its packages from
    # the path it was started by.
    for name, command in (("python", ""), ("framepar", " -m framepar")):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)}{command} "$@"\n')
        shim.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["MPLBACKEND"] = "Agg"
    return env


def test_python_blocks_run_in_order(workdir: Path, shell_env: dict[str, str]) -> None:
    assert PYTHON, "README.md has no python blocks"
    blocks = [{"where": str(b), "code": b.code.replace(f'"{DASK_PLACEHOLDER}"', "README_SCHEDULER")}
              for b in PYTHON]
    needs_dask = any(DASK_PLACEHOLDER in b.code for b in PYTHON)
    if needs_dask:
        _skip_without_distributed()
    (workdir / "blocks.json").write_text(json.dumps(blocks))
    done = subprocess.run(
        [sys.executable, "-c", PYTHON_RUNNER, "blocks.json", "dask" if needs_dask else ""],
        cwd=workdir, env=shell_env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-5000:]}"
    assert done.stdout.splitlines()[-1] == f"ran {len(blocks)} blocks"


def test_quickstart_main_job_runs(workdir: Path, shell_env: dict[str, str]) -> None:
    # The first Quickstart command without its install step: the main job itself.
    to_run = [s for s in steps(commands(QUICKSTART[0])[0]) if exemption(s) is None]
    assert to_run, "the first Quickstart command should run something after installing"
    for step in to_run:
        _run_shell(step, workdir, shell_env)


@pytest.mark.parametrize("block", BASH, ids=[f"line{b.line}" for b in BASH])
def test_bash_block_runs(block: Block, workdir: Path, shell_env: dict[str, str]) -> None:
    for command in commands(block):
        for step in steps(command):
            if exemption(step) is None:
                if PLACEHOLDER_SCHEDULER in step:
                    # The README's placeholder cluster: without --scheduler,
                    # framepar starts a real local cluster on 127.0.0.1 itself.
                    _skip_without_distributed()
                    step = step.replace(f"--scheduler {PLACEHOLDER_SCHEDULER}", "")
                _run_shell(step, workdir, shell_env)


PLACEHOLDER_SCHEDULER = "tcp://scheduler:8786"


def _skip_without_distributed() -> None:
    # Look, don't import: importing distributed here would change how every
    # exception pickles in this test process (it registers a reducer).
    if importlib.util.find_spec("distributed") is None:
        pytest.skip("the README's Dask section needs the dask extra")


def _run_shell(step: str, cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", step], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=240,
    )
    assert done.returncode == 0, (
        f"README command failed (exit {done.returncode}): {step}\n"
        f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    )
