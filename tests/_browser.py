"""Headless Chromium for the page tests (explorer, arena report): Debian's ``chromium``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def chromium() -> str:
    """The browser executable; skips the test, saying how to install it, where it is missing."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.skip("Debian's chromium is not installed: apt-get install chromium")
    return exe


def chromium_command(exe: str, profile: Path) -> list[str]:
    """Headless, offline flags; ``profile`` keeps each run's state out of the user's home."""
    return [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=3000",
    ]
