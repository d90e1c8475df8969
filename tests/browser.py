"""Headless Chromium for the tests that check a page really renders (imported by tests, not a test file).

Every call starts a fresh browser with its own empty profile and with the network cut off, so that what a
test sees is what a user without internet sees: a page that needs a CDN stays blank here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

# Debian's package installs `chromium`; other systems name it differently. $CHROMIUM overrides.
_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

_FLAGS = [
    "--headless",
    "--no-sandbox",                      # the tests may run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",                     # no display, no GPU: software rendering only
    "--disable-quic",
    "--no-first-run",                    # no welcome page or default-browser check
    "--disable-background-networking",   # no update, safe-browsing or metrics requests of its own ...
    "--disable-component-update",        # ... nor component downloads (a stray request would only slow it down)
    "--disable-sync",
    # Offline: every non-loopback request goes to a closed local port (the discard port) and no host name
    # resolves, so a <script src="https://cdn..."> fails as it would without internet; file:// and
    # localhost pages still load.
    "--proxy-server=http://127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]


def chromium_path() -> str | None:
    """The Chromium (or Chrome) executable, or None when none is installed."""
    if os.environ.get("CHROMIUM"):
        return shutil.which(os.environ["CHROMIUM"])
    return next((p for p in map(shutil.which, _NAMES) if p), None)


def _url(url_or_path: str | os.PathLike) -> str:
    s = str(url_or_path)
    return s if "://" in s else Path(s).resolve().as_uri()


def _run(url_or_path, extra: list[str], budget_ms: int) -> subprocess.CompletedProcess:
    exe = chromium_path()
    if exe is None:
        raise RuntimeError("no chromium executable found (Debian: apt-get install chromium)")
    # A fresh profile each time: no cache, cookies or service workers carried over between calls.
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        # --virtual-time-budget: let the page's scripts and timers run for this much (virtual) time
        # before the DOM is dumped or the picture taken; it fast-forwards idle time, so it is no sleep.
        cmd = [exe, *_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", *extra,
               _url(url_or_path)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60 + budget_ms / 1000)
    if out.returncode != 0:
        raise RuntimeError(f"chromium failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return out


def dump_dom(url_or_path, budget_ms: int = 10000) -> str:
    """The page's DOM, serialized after its scripts ran (a URL, or a path to a local file)."""
    return _run(url_or_path, ["--dump-dom"], budget_ms).stdout


def screenshot(url, out_png, size: tuple[int, int] = (1400, 900), budget_ms: int = 10000) -> Path:
    """A PNG of the page's first `size` pixels (width, height), written to `out_png`."""
    out_png = Path(out_png).resolve()
    _run(url, [f"--screenshot={out_png}", f"--window-size={size[0]},{size[1]}"], budget_ms)
    if not out_png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {out_png}")
    return out_png


def dom_until(url_or_path, ready, tries: int = 5, budget_ms: int = 15000) -> str:
    """``dump_dom`` until ``ready(dom)`` holds (then that DOM) or ``tries`` runs are spent (then the last).

    A single-page app that fetches its data after loading (MLflow's UI) may not have drawn it by
    the end of the virtual-time budget on a loaded CPU: network waits are real time, not virtual.
    """
    dom = ""
    for attempt in range(tries):
        dom = dump_dom(url_or_path, budget_ms=budget_ms * (attempt + 1))
        if ready(dom):
            break
    return dom
