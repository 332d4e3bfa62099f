"""Each example runs as its docstring (and the README) says, and reports success."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def run_example(module: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_quickstart_runs_every_job_exactly_once(redis_client, redis_url):
    done = run_example("examples.quickstart", REDIS_URL=redis_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: every job ran exactly once" in done.stdout
    assert done.stdout.count("duplicate: nothing sent") == 2
    assert "reports.build kind=sales" in done.stdout


def test_existing_app_adopts_the_bridge_without_other_changes(redis_client, redis_url):
    done = run_example("examples.existing_app", SHOP_BROKER_URL=redis_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deduplicated=True" in done.stdout
    assert "queue=emails" in done.stdout
    assert "charged order" in done.stdout
