"""Every shipped notebook runs top to bottom, unedited, headless (nbclient), on the sandbox.

The executed copies are kept under test-artifacts/notebooks/ for inspection.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.kernel import text

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ARTIFACTS = ROOT / "test-artifacts" / "notebooks"


def test_the_notebooks_are_there():
    names = {p.stem for p in NOTEBOOKS}
    assert {"spawn-storm", "activity", "batching", "compare-runs", "rehearse-a-class", "capacity"} <= names


def execute(path: Path, workdir: Path):
    """The notebook executed (or the exception its first failing cell raised)."""
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks unexecuted"
    workdir.mkdir(parents=True, exist_ok=True)
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        client.execute()  # raises CellExecutionError on the first failing cell
    except Exception as exc:  # noqa: BLE001 - handed to that notebook's test, with what came before
        nbformat.write(nb, ARTIFACTS / path.name)  # as far as it got
        shown = "\n".join(text(c.outputs) for c in nb.cells if c.cell_type == "code" and c.get("outputs"))
        return RuntimeError(
            f"{path.name} failed:\n{exc}\n--- what its cells showed before ---\n{shown[-6000:]}"
        )
    nbformat.write(nb, ARTIFACTS / path.name)
    return nb


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Every notebook executed at once, each in its own kernel against its own sandbox. They
    spend most of their time waiting (simulated spawns of seconds, timed loads), so side by side
    they take about as long as the longest one instead of the sum (~200 s on 2 cores). The
    kernels' stderr goes to a file the tests read: a shutdown must print no traceback."""
    workdir = tmp_path_factory.mktemp("notebooks")
    stderr = workdir / "kernels-stderr.txt"
    saved = os.dup(2)
    try:
        with open(stderr, "wb") as out:
            os.dup2(out.fileno(), 2)
            with ThreadPoolExecutor(len(NOTEBOOKS)) as pool:
                done = pool.map(lambda p: execute(p, workdir / p.stem), NOTEBOOKS)
                results = dict(zip((p.stem for p in NOTEBOOKS), done, strict=True))
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return results, stderr.read_text(errors="replace")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, executed):
    results, stderr = executed
    nb = results[path.stem]
    if isinstance(nb, BaseException):
        raise nb
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, "its charts are plain images too"
    # the kernels (and the live chart's helper processes) write to this process's stderr: their
    # shutdown must not print a helper's KeyboardInterrupt traceback
    assert "Traceback" not in stderr, stderr[-3000:]
