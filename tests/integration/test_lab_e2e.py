"""End to end in a real JupyterLab, driven by headless Chromium (Debian's, via Playwright):
open a notebook, load the extension, show the panel, press Start against the sandbox, and see
the chart and the summary table appear. The screenshot is kept as a test artefact."""

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from hubstress_ext.http.ports import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def lab(tmp_path):
    """A real `jupyter lab` on a free port with a known token; yields (base URL, token)."""
    port, token = free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1"]
    cmd += [f"--ServerApp.token={token}", f"--ServerApp.root_dir={tmp_path}", "--allow-root"]
    cmd += ["--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    log = open(tmp_path / "lab.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                req = urllib.request.Request(
                    f"{base}/api/status", headers={"Authorization": f"token {token}"}
                )
                with urllib.request.urlopen(req, timeout=2) as r:
                    json.loads(r.read())
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(
                        "jupyter lab did not start:\n" + (tmp_path / "lab.log").read_text()
                    ) from None
                time.sleep(0.5)
        yield base, token, tmp_path
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="needs Debian's chromium (`make test` installs it)"
)
def test_panel_in_jupyterlab_runs_a_storm(lab):
    from playwright.sync_api import sync_playwright

    base, token, root = lab
    source = (
        "%load_ext hubstress_ext\nimport hubstress_ext\n"
        "p = hubstress_ext.panel()\np"  # the panel as a new user gets it: Start with the defaults
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "e2e.ipynb")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
            ],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        try:
            page.goto(f"{base}/lab/tree/e2e.ipynb?token={token}", timeout=90_000)
            page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=90_000)
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
            prompt = page.locator(".jp-Notebook .jp-InputPrompt").first
            for _attempt in range(3):  # a run asked for while the kernel connects can be dropped
                page.get_by_role("menuitem", name="Run", exact=True).click()
                page.get_by_text("Run All Cells", exact=True).click()
                try:
                    page.wait_for_function(
                        "() => /\\[[0-9*]+\\]/.test("
                        "document.querySelector('.jp-Notebook .jp-InputPrompt').textContent)",
                        timeout=20_000,
                    )
                    break
                except Exception:
                    continue
            assert prompt.inner_text().strip() != "[ ]:"
            start = page.locator(".hubstress-panel button", has_text="Start")
            start.wait_for(timeout=90_000)
            start.click()
            table = page.locator(".hubstress-summary table")
            table.wait_for(timeout=180_000)
            chart = page.locator("img.hubstress-chart")
            chart.wait_for(timeout=30_000)
            page.wait_for_function(
                "() => { const i = document.querySelector('img.hubstress-chart');"
                " return i && i.naturalWidth > 100; }",
                timeout=30_000,
            )
            text = table.inner_text()
            status = page.locator(".hubstress-live").first.inner_text()
            page.screenshot(path=str(ARTIFACTS / "lab-panel.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "lab-panel-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    assert "ready" in text and "spawn" in text
    assert "finished" in status
