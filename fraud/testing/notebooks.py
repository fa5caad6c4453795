"""Running the notebooks headlessly for the tests: each in a fresh kernel of this interpreter (the venv's
ipykernel), with its parameters and the stack given as ``FRAUD_*`` environment variables; the executed copies go to
``test-artifacts/notebooks/`` (git-ignored)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from fraud.config import PROJECT_ROOT

NOTEBOOKS = PROJECT_ROOT / "notebooks"
EXECUTED = PROJECT_ROOT / "test-artifacts" / "notebooks"
CELL_TIMEOUT_S = 600
SMALL_SPARK = {"FRAUD_SPARK_MASTER": "local[2]", "FRAUD_SPARK_SHUFFLE_PARTITIONS": "2",
               "FRAUD_SPARK_DRIVER_MEMORY": "1g"}


def run_notebook(path: Path, env: dict[str, str], saved_as: str) -> nbformat.NotebookNode:
    """Execute the notebook at ``path`` in a new kernel with ``env`` added to this environment; the
    executed copy is saved (also when a cell fails) as test-artifacts/notebooks/``saved_as``."""
    notebook = nbformat.read(path, as_version=4)
    kernel_env = {key: value for key, value in os.environ.items()
                  if key != "MPLBACKEND" and not key.startswith("FRAUD_NOTEBOOK_")}
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    kernel = client.kernel_manager_class(kernel_name="python3").format_kernel_cmd()[0]
    assert Path(kernel).resolve() == Path(sys.executable).resolve(), f"the kernel would run {kernel}, not this venv"
    EXECUTED.mkdir(parents=True, exist_ok=True)
    try:
        client.execute(env={**kernel_env, **env})
    finally:
        nbformat.write(notebook, EXECUTED / saved_as)
    return notebook


def tagged(notebook: nbformat.NotebookNode, tag: str) -> list:
    """Outputs of the code cell tagged ``tag`` (exactly one such cell)."""
    cells = [cell for cell in notebook.cells if tag in cell.metadata.get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged {tag!r}, found {len(cells)}"
    return cells[0].outputs


def figures(notebook: nbformat.NotebookNode, tag: str) -> int:
    return sum("image/png" in output.get("data", {}) for output in tagged(notebook, tag))


def text(notebook: nbformat.NotebookNode, tag: str) -> str:
    parts = []
    for output in tagged(notebook, tag):
        parts.append(output.get("text", ""))
        parts += [output.get("data", {}).get(kind, "") for kind in ("text/plain", "text/markdown", "text/html")]
    return "\n".join(parts)


def result(notebook: nbformat.NotebookNode, tag: str) -> str:
    """The plain-text value of the tagged cell's last expression."""
    values = [o.data["text/plain"] for o in tagged(notebook, tag) if o.output_type == "execute_result"]
    assert values, f"the cell tagged {tag!r} shows no value"
    return values[-1]
