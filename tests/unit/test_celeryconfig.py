"""bridge.celeryconfig: the production Celery settings, built only when a setting is read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import celery
from celery import Celery

from bridge import Bridge, celeryconfig
from bridge.embedded.server import EmbeddedServer
from bridge.settings import Settings

URL = "redis://127.0.0.1:6379/3"
ROOT = Path(__file__).resolve().parents[2]


def redis_settings() -> Settings:
    return Settings(redis_url=URL, queue_backend="redis", jobs_backend="redis", lock_backend="redis")


def test_build_gives_safe_json_late_ack_settings_for_redis() -> None:
    conf = celeryconfig.build(redis_settings())
    assert conf["broker_url"] == URL
    assert conf["accept_content"] == ["json"]
    assert conf["task_serializer"] == "json"
    assert conf["task_acks_late"] is True
    assert conf["task_reject_on_worker_lost"] is True
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["broker_transport_options"]["visibility_timeout"] > 0


def test_build_for_sqs_uses_the_predefined_queue_and_the_endpoint() -> None:
    settings = Settings(
        queue_backend="sqs", jobs_backend="sqs", sqs_queue_url="http://127.0.0.1:4566/000000000000/orders.fifo",
        sqs_fifo=True, aws_region="eu-west-1", aws_endpoint_url_sqs="http://127.0.0.1:4566",
    )  # fmt: skip
    conf = celeryconfig.build(settings)
    assert conf["broker_url"] == "sqs://127.0.0.1:4566"
    options = conf["broker_transport_options"]
    assert options["predefined_queues"] == {"orders.fifo": {"url": settings.sqs_queue_url}}
    assert (options["region"], options["is_secure"], options["wait_time_seconds"]) == ("eu-west-1", False, 20)
    assert conf["task_default_queue"] == "orders.fifo"
    assert conf["worker_concurrency"] == 1  # FIFO: one at a time
    assert conf["accept_content"] == ["json"]


STOPS_JOBS = "worker_cancel_long_running_tasks_on_connection_loss"


def test_running_jobs_are_stopped_on_a_lost_connection_only_where_a_broker_hands_them_out_again() -> None:
    """On the bridge's Redis transport a job runs on through an outage (its ack is owed, then sent)."""
    assert celeryconfig.build(redis_settings())[STOPS_JOBS] is False
    sqs = Settings(
        queue_backend="sqs", jobs_backend="sqs", sqs_queue_url="http://127.0.0.1:4566/000000000000/jobs",
        aws_region="eu-west-1", aws_endpoint_url_sqs="http://127.0.0.1:4566",
    )  # fmt: skip
    stops = celeryconfig.build(sqs)[STOPS_JOBS]
    assert stops is (celery.VERSION >= (5, 7))  # before 5.7 stopping them could end the worker


def test_a_celery_app_takes_the_built_settings() -> None:
    app = Celery("unit-config")
    app.config_from_object(celeryconfig.build(redis_settings()))
    assert app.conf.task_acks_late is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.broker_url == URL


PROBE = """
import os, sys
from pathlib import Path
from bridge import celeryconfig as production
import celeryconfig as sample  # this repository's sample config, which re-exports the package's
for module in (production, sample):
    assert getattr(module, "_mock_name", None) is None  # pytest's probe of every module it collects
    assert not hasattr(module, "__wrapped__")
    assert not hasattr(module, "DEBUG")  # not a setting: no build
    names = dir(module)
    assert "broker_url" in names and "task_acks_late" in names, names
home = Path(os.environ["BRIDGE_HOME"])
print("probed", sorted(p.name for p in home.iterdir()) if home.exists() else "no home")
if sys.argv[1:] == ["build"]:
    built = production.broker_url.startswith("redis+socket://")
    print("built", built, sorted(p.name for p in home.iterdir()))
"""


def run_probe(tmp_path: Path, *args: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "QUEUE_BACKEND", "JOBS_BACKEND")}
    env.update(BRIDGE_HOME=str(tmp_path / "home"), QUEUE_BACKEND="embedded")
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_probing_the_module_starts_no_server(tmp_path: Path) -> None:
    """hasattr, dir() and private names never build the config (the embedded server stays down)."""
    assert run_probe(tmp_path) == ["probed no home"]


def test_reading_a_setting_builds_the_config_and_starts_the_embedded_server(tmp_path: Path) -> None:
    """The control for the test above: the probe would have seen a server start."""
    try:
        lines = run_probe(tmp_path, "build")
    finally:
        EmbeddedServer(tmp_path / "home").stop()
    assert lines[0] == "probed no home"
    assert lines[1].startswith("built True")
    assert "valkey.sock" in lines[1]


def test_the_sample_config_is_the_production_one() -> None:
    import celeryconfig as sample

    assert sample.build is celeryconfig.build
    assert dir(sample) == dir(celeryconfig)


def test_bridge_of_an_app_with_its_own_config_changes_only_beats_scheduler_settings() -> None:
    """Acks, prefetch and every other setting stay the app's own (README, "Adopting the bridge")."""
    app = Celery("own-config", set_as_current=False)
    app.conf.update(broker_url=URL, worker_prefetch_multiplier=4, task_acks_late=False)
    before = {name: repr(value) for name, value in app.conf.items()}
    Bridge(app)
    after = {name: repr(value) for name, value in app.conf.items()}
    changed = {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
    assert changed == {
        "beat_scheduler", "beat_max_loop_interval", "redbeat_redis_url", "redbeat_redis_options",
        "redbeat_key_prefix", "redbeat_lock_timeout",
    }  # fmt: skip
    assert (app.conf.worker_prefetch_multiplier, app.conf.task_acks_late) == (4, False)
