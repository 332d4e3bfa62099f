"""celery-redbeat's own test suite passes with the bridge's scheduler and entry classes in place."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_redbeats_suite_passes_with_the_bridges_classes() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "peers" / "redbeat_suite.py")], cwd=ROOT, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "with the bridge's classes" in out.stdout
    summary = out.stdout.strip().splitlines()[-1]
    assert " failed" not in summary
    assert int(summary.split(" passed")[0].split()[-1]) >= 80, summary  # the suite ran, not an empty run
