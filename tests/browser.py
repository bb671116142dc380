"""Headless Chromium from its command line: the page's DOM after its scripts ran, its console, a screenshot.

Chromium's own ``--dump-dom`` and ``--screenshot`` do what a DevTools client
would: ``--virtual-time-budget`` lets the page's scripts finish before the
DOM is written, ``--enable-logging=stderr`` prints the console (an uncaught
error shows as ``Uncaught``), and ``--log-net-log`` records every request:
those the page made (its origin, not the browser's own background checks)
to an http(s) address are what a page that must work offline may not make.
The host resolver maps every name to nothing, so none of them succeeds.

Example::

    page = render(Path("report/report.html"))
    page.count("js-plotly-plot"), page.errors
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-extensions", "--host-resolver-rules=MAP * ~NOTFOUND",
    "--enable-logging=stderr", "--v=0", "--window-size=1280,1000", "--virtual-time-budget=20000",
]


@dataclasses.dataclass(frozen=True)
class Page:
    """What Chromium made of a page."""

    dom: str
    console: str
    remote_requests: list[str]  # http(s) addresses the page itself asked for

    def count(self, css_class: str) -> int:
        """Elements whose class attribute names ``css_class``."""
        return len(re.findall(r'class="(?:[^"]*\s)?' + re.escape(css_class) + r'(?:\s[^"]*)?"', self.dom))

    @property
    def text(self) -> str:
        """The body's text, tags and scripts stripped."""
        body = re.sub(r"(?s)<(script|style)\b.*?</\1>", "", self.dom)
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)).strip()

    @property
    def errors(self) -> list[str]:
        """Uncaught exceptions and console errors."""
        return [line for line in self.console.splitlines() if "Uncaught" in line or ":ERROR:CONSOLE" in line]


def chromium() -> str:
    """The Chromium binary; skips the test without one (fails under CI, which installs it)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing under CI; install it with: bash scripts/setup.sh --browser")
        pytest.skip("chromium is not installed (bash scripts/setup.sh --browser)")
    return found


def render(html: Path, *, screenshot: Path | None = None) -> Page:
    """Load ``html`` in headless Chromium; returns the DOM after its scripts ran, with the console's lines."""
    binary = chromium()
    with tempfile.TemporaryDirectory() as profile:
        net_log = Path(profile) / "net-log.json"
        run = [binary, *_FLAGS, f"--user-data-dir={profile}"]
        done = subprocess.run([*run, f"--log-net-log={net_log}", "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=180)
        requests = _page_requests(net_log)
        if screenshot is not None:
            subprocess.run([*run, f"--screenshot={screenshot}", html.as_uri()], capture_output=True, timeout=180)
    return Page(done.stdout, done.stderr, requests)


def _page_requests(net_log: Path) -> list[str]:
    """http(s) URLs the page requested: the browser's own requests have no origin ("not an origin")."""
    log = json.loads(net_log.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        e["params"]["url"] for e in log["events"]
        if e["type"] == start and e.get("params", {}).get("url", "").startswith(("http://", "https://"))
        and e["params"].get("initiator") != "not an origin"
    ]
