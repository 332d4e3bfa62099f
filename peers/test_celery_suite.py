"""Celery's own integration suite (t/integration/test_tasks.py from its sdist) passes with a bridged worker.

Run by ``pytest peers/test_celery_suite.py`` (``tox -e peers-celery`` runs the suite alone), not
by the default ``pytest``: it takes about 4 minutes, and CI's whole run must stay under 30.

peers/celery_suite.py runs it against a private redis-server with Bridge(app)
applied to every app the suite's fixtures build; the tests it deselects fail
without the bridge too (peers/celery_expected_failures.txt, each with its reason).
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.version import Version

pytestmark = [pytest.mark.slow, pytest.mark.worker]

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(1200)  # a whole peer suite: the 300 s default cut it off on Celery 5.3.6
def test_celerys_test_tasks_passes_with_a_bridged_worker() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "peers" / "celery_suite.py")], cwd=ROOT, capture_output=True, text=True,
        timeout=1200,
    )  # fmt: skip
    tail = out.stdout[-6000:] + out.stderr[-2000:]
    assert out.returncode == 0, tail
    # The session app and each test's app: every one of them bridged, the worker with the bridge's steps.
    bridged = re.search(r"bridge: (\d+) app\(s\) bridged; their worker steps: .*bridge transport", out.stdout)
    assert bridged, tail
    assert int(bridged.group(1)) >= 2
    summary = out.stdout.strip().splitlines()[-1]
    assert " failed" not in summary, tail
    # The suite ran, not an empty run: Celery 5.7's file has 58 tests that pass here, 5.3.6's has 27.
    least = 50 if Version(version("celery")) >= Version("5.7") else 25
    assert int(re.search(r"(\d+) passed", summary).group(1)) >= least, summary
