"""Each example runs as its docstring (and the README) says, and reports success."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import BACKENDS, ROOT

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def run_example(module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )


@pytest.mark.parametrize("backend_kind", BACKENDS, indirect=True)
def test_quickstart_runs_every_job_exactly_once(redis_client, server):
    """As the README runs it: with nothing set (embedded), and with REDIS_URL."""
    env = server.env()
    env.pop("QUEUE_BACKEND")  # the README sets no backend: REDIS_URL alone, or nothing at all
    done = run_example("examples.quickstart", env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: every job ran exactly once" in done.stdout
    assert done.stdout.count("duplicate: nothing sent") == 2
    assert "reports.build kind=sales" in done.stdout


def test_existing_app_adopts_the_bridge_without_other_changes(redis_client, server):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SHOP_BROKER_URL": server.url}
    env.pop("REDIS_URL", None)
    done = run_example("examples.existing_app", env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deduplicated=True" in done.stdout
    assert "queue=emails" in done.stdout
    assert "charged order" in done.stdout


def test_singleton_example_never_overlaps_and_captures_once(redis_client, server):
    env = server.env()
    env.pop("QUEUE_BACKEND")
    done = run_example("examples.singleton", env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: maintenance never ran twice at once; the payment was captured once." in done.stdout
    assert "payment captured 1 time(s) from 2 deliveries" in done.stdout


@pytest.mark.parametrize("module", ["examples.quickstart", "examples.singleton", "examples.existing_app"])
def test_a_configuration_mistake_is_one_line_and_exit_status_2(module, tmp_path):
    """As the jobs command does: no traceback, nothing started (no embedded server, no worker)."""
    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BRIDGE_HOME": str(home), "QUEUE_BACKEND": "nonsense"}
    env.pop("REDIS_URL", None)
    done = run_example(module, env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        f"{module}: configuration error: QUEUE_BACKEND='nonsense' is not a known backend; "
        "accepted: redis, bullmq, sqs, embedded, broker."
    ]
    assert not home.exists()


def test_an_app_refused_by_the_embedded_backend_starts_no_server(tmp_path):
    """QUEUE_BACKEND=embedded, but the app keeps its own broker: refused before the server starts."""
    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BRIDGE_HOME": str(home), "QUEUE_BACKEND": "embedded",
           "SHOP_BROKER_URL": "amqp://guest:s3cr3t@127.0.0.1:5672//"}  # fmt: skip
    env.pop("REDIS_URL", None)
    done = run_example("examples.existing_app", env)
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("examples.existing_app: configuration error: the embedded backend needs")
    assert "s3cr3t" not in line
    assert not home.exists()


def django_env(server, tmp_path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SHOP_BROKER_URL": server.url,
           "SHOP_DB": str(tmp_path / "shop.sqlite3")}  # fmt: skip
    for name in ("REDIS_URL", "QUEUE_BACKEND", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    return {**env, **extra}


def test_django_app_adds_on_commit_only_and_reads_the_bridges_settings_from_settings_py(
    redis_client, server, tmp_path
):
    done = run_example("examples.django_app", django_env(server, tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "bridge settings from settings.py: jobs queue 'shop:jobs'" in done.stdout
    assert "OK: added on commit only, none for the rolled-back order" in done.stdout


def test_in_a_django_project_the_environment_wins_over_settings_py(redis_client, server, tmp_path):
    code = (
        "import django, os; django.setup()\n"
        "from examples.django_app.shop.celery import bridge\n"
        "print(bridge.settings.jobs_queue_name, bridge.settings.dedupe_ttl_sec)\n"
    )
    env = django_env(server, tmp_path, DJANGO_SETTINGS_MODULE="examples.django_app.shop.settings")
    from_settings = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert from_settings.stdout.split() == ["shop:jobs", "3600"], from_settings.stderr
    env["JOBS_QUEUE_NAME"] = "ops:jobs"
    overridden = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert overridden.stdout.split() == ["ops:jobs", "3600"], overridden.stderr
