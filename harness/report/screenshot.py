"""A page as headless Chromium draws it: the PNG of `longact leaderboard --screenshot` (the README's
picture) and what the browser test reads (`dump_dom`).

Chromium is not a Python dependency: `make browser` installs the distribution's package where apt
can reach a mirror. Nothing here touches the network: the page is a local file and self-contained.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from harness.errors import UserError

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WIDTH = 1400
"""The window width the leaderboard's overview is made to fit."""


def find_browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    browser = find_browser()
    if browser is None:
        raise UserError(f"no headless browser found (looked for {', '.join(BROWSERS)}); `make browser` installs "
                        "Chromium where apt can reach a mirror")
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
                          capture_output=True, text=True, timeout=timeout)


def screenshot(page: str | Path, png: str | Path, width: int = WIDTH, height: int = 900, timeout: float = 120) -> Path:
    """The top `width` x `height` pixels of `page` (an HTML file) as `png`."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    done = _run([f"--window-size={width},{height}", f"--screenshot={png}", Path(page).resolve().as_uri()], timeout)
    if not png.is_file():
        raise UserError(f"the browser wrote no screenshot of {page} (exit {done.returncode}): {done.stderr[-500:]}")
    return png


def dump_dom(url: str, width: int = WIDTH, height: int = 900, timeout: float = 120) -> str:
    """The page's DOM after its scripts ran, laid out in a `width` x `height` window."""
    return _run([f"--window-size={width},{height}", "--dump-dom", url], timeout).stdout
