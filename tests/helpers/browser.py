"""Headless Chromium for the browser tests: find it (skip locally, fail under CI when absent), run it."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
MISSING = ("chromium is not on PATH: `make setup` installs it (as root, with apt-get), "
           "or install Debian's `chromium` package yourself")
TIMEOUT_S = 120


def find_chromium() -> str:
    """The path of `chromium`; absent, skip the calling test, or fail it under CI (CI=true)."""
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"CI={os.environ['CI']}: {MISSING}", pytrace=False)
        pytest.skip(MISSING)
    return found


def dump_dom(chromium: str, url: str, budget_ms: int = 20000, window: str = "1600,2000") -> str:
    """The DOM after the page ran its scripts for `budget_ms` of virtual time."""
    proc = subprocess.run([chromium, *FLAGS, f"--virtual-time-budget={budget_ms}", f"--window-size={window}",
                           "--dump-dom", url], capture_output=True, text=True, timeout=TIMEOUT_S)
    return proc.stdout


def screenshot(chromium: str, url: str, path, budget_ms: int = 20000, window: str = "1400,1100") -> None:
    subprocess.run([chromium, *FLAGS, f"--virtual-time-budget={budget_ms}", f"--window-size={window}",
                    f"--screenshot={path}", url], capture_output=True, timeout=TIMEOUT_S, check=False)
