"""The README's commands install their Debian packages: check what `make` would run.

A `debian-%` pattern rule is never applied to a target listed in .PHONY, so `make test` once
installed nothing and passed only where chromium happened to be installed already.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def dry_run(target: str) -> str:
    out = subprocess.run(
        ["make", "-n", "-C", str(ROOT), target], capture_output=True, text=True, timeout=60, check=True
    )
    return out.stdout


@pytest.mark.parametrize("package", ["chromium", "wrk"])
def test_debian_package_rules_install_when_missing(package):
    text = dry_run(f"debian-{package}")
    assert "Nothing to be done" not in text
    assert f"command -v {package}" in text
    assert f"install -y -q {package}" in text


def test_make_test_installs_chromium_before_the_tests():
    lines = dry_run("test").splitlines()
    install = next(i for i, line in enumerate(lines) if "install -y -q chromium" in line)
    tests = next(i for i, line in enumerate(lines) if "-m pytest" in line)
    assert install < tests


def test_make_bench_installs_wrk():
    assert "install -y -q wrk" in dry_run("bench")
