"""The configuration refusals no other test reaches: each names what is missing and how to fix it.

A missing optional package is simulated the way Python itself reports one: its
entry in ``sys.modules`` set to None makes ``import`` raise ImportError (and
``importlib.util.find_spec`` return None), for this test only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from celery import Celery

from bridge import Bridge, ConfigError, Settings
from bridge.core.registry import bridge_of
from bridge.embedded.server import EmbeddedServer

SQS_SETTINGS = {
    "queue_backend": "sqs",
    "sqs_queue_url": "http://127.0.0.1:1/000000000000/jobs",
    "aws_region": "eu-west-1",
    "redis_url": "redis://127.0.0.1:1/0",  # the guard store; never reached by these tests
}


def test_an_app_without_a_bridge_is_named_with_the_fix() -> None:
    with pytest.raises(
        ConfigError, match=r"no Bridge is bound to the Celery app 'lonely'.*bridge = Bridge\(app\)"
    ):
        bridge_of(Celery("lonely", set_as_current=False))


def test_add_on_commit_without_django_says_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    app = Celery("no-django", set_as_current=False)
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    redis_only = {"queue_backend": "redis", "jobs_backend": "redis", "lock_backend": "redis"}
    bridge = Bridge(app, settings=Settings(redis_url="redis://127.0.0.1:1/0", **redis_only))
    monkeypatch.setitem(sys.modules, "django", None)
    monkeypatch.setitem(sys.modules, "django.db", None)
    with pytest.raises(ConfigError, match=r"add_on_commit needs Django: pip install django"):
        bridge.queue.add_on_commit("t", {})


def test_sqs_without_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge.sqs.admin import SqsAdmin

    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(ConfigError, match=r"pip install 'celery-jobs-bridge\[sqs\]'"):
        SqsAdmin(Settings(**SQS_SETTINGS))


def test_sqs_without_a_region_says_to_set_aws_region(monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge.sqs.admin import SqsAdmin

    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_CONFIG_FILE", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)  # no region from a config file either
    with pytest.raises(ConfigError, match=r"^SQS client: .*Set AWS_REGION"):
        SqsAdmin(Settings(**{**SQS_SETTINGS, "aws_region": None}))


def test_sqs_without_pycurl_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge.sqs.config import sqs_settings

    monkeypatch.setitem(sys.modules, "pycurl", None)
    with pytest.raises(ConfigError, match=r"needs pycurl .*pip install 'celery-jobs-bridge\[sqs\]'"):
        sqs_settings(Settings(**SQS_SETTINGS))


def test_the_sqs_backend_refuses_an_app_whose_broker_is_not_sqs() -> None:
    from bridge.sqs.backend import SqsBackend

    app = Celery("not-sqs", set_as_current=False)
    app.conf.broker_url = "redis://:hunter2@127.0.0.1:1/0"
    with pytest.raises(ConfigError, match=r"broker_url='redis://:\*\*\*@127.0.0.1:1/0' is not SQS") as info:
        SqsBackend(app, Settings(**SQS_SETTINGS))
    assert "hunter2" not in str(info.value)


def test_a_bridge_home_that_is_a_file_is_refused_untouched(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("mine")
    with pytest.raises(ConfigError, match=r"is not writable \(it is not a folder\)"):
        EmbeddedServer(home).ensure_running()
    assert home.read_text() == "mine"


def test_a_folder_planted_where_the_start_lock_goes_is_refused_untouched(tmp_path: Path) -> None:
    home = tmp_path / "home"
    server = EmbeddedServer(home)
    home.mkdir(mode=0o700)
    server.lockfile.mkdir()
    with pytest.raises(
        ConfigError, match=r"start.lock is not a regular file .* neither follows nor deletes it"
    ):
        server.ensure_running()
    assert server.lockfile.is_dir()
    assert not server.status().running  # no server was started by the failed call
