"""Every notebook in notebooks/ runs top to bottom without an error, and is
committed without outputs.

The notebooks run in a Jupyter kernel started from the interpreter running the
tests (a kernelspec written to a temporary directory points at
``sys.executable``), with this checkout first on ``PYTHONPATH``, so they
exercise this framepar and not whatever a user-wide ``python3`` kernel finds.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL_NAME = "framepar-tests"
# Generous: a notebook takes seconds on an idle machine, but CI machines are shared.
CELL_TIMEOUT = 300


def test_there_are_notebooks() -> None:
    # quickstart, errors, group-aware analysis (issue: at least three)
    assert len(NOTEBOOKS) >= 3, NOTEBOOKS


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory) -> object:
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager

    kernels = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(path=str(kernels / KERNEL_NAME))
    manager = KernelSpecManager(kernel_dirs=[str(kernels)])
    assert manager.get_kernel_spec(KERNEL_NAME).argv[0] == sys.executable
    return manager


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(
    path: Path, kernel_specs: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jupyter_client.manager import KernelManager

    # The kernel inherits this environment: import framepar from this checkout.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    notebook = nbformat.read(path, as_version=4)
    manager = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=kernel_specs)
    client = nbclient.NotebookClient(
        notebook,
        km=manager,
        timeout=CELL_TIMEOUT,
        allow_errors=False,  # any cell that raises fails the test, with the cell's traceback
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},  # cwd: as when opened in Jupyter
    )
    try:
        client.execute(cleanup_kc=True)  # shut the kernel down afterwards (the client does not own it)
    finally:
        if manager.has_kernel:
            manager.shutdown_kernel(now=True)
    assert not manager.is_alive()
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert code_cells and all(c.execution_count is not None for c in code_cells)
    # A notebook is read by people: it must run clean, without warnings.
    for cell in code_cells:
        for output in cell.outputs:
            if output.output_type == "stream" and output.name == "stderr":
                assert "Warning" not in output.text, f"{path.name}: cell {cell.get('id')}: {output.text}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [], f"{path.name}: cell {cell.get('id')} has outputs; clear them"
        assert cell.execution_count is None, f"{path.name}: cell {cell.get('id')} has an execution count"
    assert "widgets" not in notebook.metadata, f"{path.name}: widget state in the metadata"
