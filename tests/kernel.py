"""Run cells in a real IPython kernel (nbclient) and read back what each one printed/showed."""

from __future__ import annotations

import json

import nbformat
from nbclient import NotebookClient


def execute(
    cells: list[str], timeout: int = 300, cwd: str | None = None, save: str | None = None
) -> list[dict]:
    """Execute ``cells`` in a fresh python3 kernel (errors allowed); returns each cell's outputs.
    ``save``: also write the executed notebook there, as JupyterLab saves one."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    resources = {"metadata": {"path": cwd}} if cwd else {}
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", allow_errors=True, resources=resources
    ).execute()
    if save is not None:
        nbformat.write(nb, save)
    return [cell.outputs for cell in nb.cells]


def text(outputs: list) -> str:
    """Everything a cell showed, as one string (streams, errors, every display MIME type)."""
    parts = []
    for o in outputs:
        if o.output_type == "stream":
            parts.append(o.text)
        elif o.output_type == "error":
            parts.append(f"ERROR {o.ename}: {o.evalue}\n" + "\n".join(o.traceback))
        else:
            parts.append(json.dumps(o.get("data", {})))
    return "\n".join(parts)


def errors(outputs: list) -> list[str]:
    return [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"]
