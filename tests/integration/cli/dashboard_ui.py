"""What the dashboard's browser tests share: starting ``jobs dashboard``, screenshots, clicking forms.

The browser itself (Playwright driving Debian's Chromium) is the ``browser`` and ``page``
fixtures of ``tests/integration/cli/conftest.py``.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import JOBS, ROOT

CHROMIUM = Path("/usr/bin/chromium")
DOCS = ROOT / "docs"
SCRATCH = Path(tempfile.gettempdir()) / "bridge-dashboard-screenshots"


@dataclass
class Dashboard:
    url: str
    proc: subprocess.Popen[str]


#: The three spellings of the command, each naming the app.
SPELLINGS = {
    "jobs -A APP dashboard": lambda app: [JOBS, "-A", app, "dashboard"],
    "jobs dashboard -A APP": lambda app: [JOBS, "dashboard", "-A", app],
    "celery -A APP jobs dashboard": lambda app: [
        str(Path(JOBS).parent / "celery"),
        "-A",
        app,
        "jobs",
        "dashboard",
    ],
}


def start_dashboard(
    env: dict[str, str],
    *args: str,
    app: str = "tests.apps.ledger_app",
    spelling: str = "jobs -A APP dashboard",
) -> Dashboard:
    """``jobs -A app dashboard --port 0 ...`` (or another of its ``SPELLINGS``) in ``env``, once it
    says where it serves."""
    proc = subprocess.Popen(
        [*SPELLINGS[spelling](app), "--port", "0", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("serving http://"):
        proc.kill()
        raise AssertionError(f"dashboard did not start: {line}{proc.communicate(timeout=10)[1]}")
    return Dashboard(line.split()[1].rstrip("/"), proc)


def stop_dashboard(dashboard: Dashboard) -> None:
    dashboard.proc.terminate()
    try:
        dashboard.proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        dashboard.proc.kill()
        dashboard.proc.communicate(timeout=10)


def screenshot(page: Any, name: str) -> None:
    """Save the page as ``dashboard-<name>.png``: under ``docs/`` (the README shows them) with
    ``BRIDGE_UPDATE_SCREENSHOTS=1``, else in a temporary folder."""
    folder = DOCS if os.environ.get("BRIDGE_UPDATE_SCREENSHOTS") == "1" else SCRATCH
    folder.mkdir(exist_ok=True)
    path = folder / f"dashboard-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000  # a rendered page, not an empty one


def submit(page: Any, button: Any) -> None:
    """Click a form's button and wait for the page it leads to."""
    with page.expect_navigation():
        button.click()


def flash(page: Any) -> str:
    return str(page.locator(".flash").inner_text())


def nav(page: Any) -> list[str]:
    """The page's navigation links, as shown."""
    return [str(text) for text in page.locator("header nav a").all_inner_texts()]
