"""pytest plugin for Celery's own integration suite: every app its fixtures build gets ``Bridge(app)``.

Loaded with ``-p celery_bridged`` by ``peers/celery_suite.py``. The suite's session
worker then runs with everything the bridge installs in a worker: its bootsteps
(the reliable fetch, the promoter, rejected messages) and its signal handlers.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from bridge import Bridge

_APPS = ("celery_session_app", "celery_app")
_bridged: list[Bridge] = []


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: Any) -> Generator[None, Any, Any]:
    app = yield
    if fixturedef.argname in _APPS and not any(b.app is app for b in _bridged):
        _bridged.append(Bridge(app))
    return app


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say what was bridged, so a run that bridged nothing cannot pass for one that did."""
    steps = sorted(
        {step.label for b in _bridged for step in b.app.steps["consumer"] | b.app.steps["worker"]
         if str(getattr(step, "label", "")).startswith("bridge")}
    )  # fmt: skip
    terminalreporter.write_line(
        f"bridge: {len(_bridged)} app(s) bridged; their worker steps: {', '.join(steps)}"
    )
