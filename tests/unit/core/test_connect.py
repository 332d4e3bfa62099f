"""Every Redis URL form Celery accepts, parsed once for every client of the bridge."""

from __future__ import annotations

import pytest

from bridge import celeryconfig
from bridge.core.connect import redbeat_settings, redis_py_url, sentinel_target
from bridge.errors import ConfigError
from bridge.settings import Settings

SENTINELS = "sentinel://:s3cret@10.0.0.1:26379/2;sentinel://10.0.0.2:26380;sentinel://10.0.0.3"


def test_sentinel_url_names_every_sentinel_the_db_and_the_primarys_password() -> None:
    target = sentinel_target(SENTINELS, "mymaster")
    assert target.sentinels == [("10.0.0.1", 26379), ("10.0.0.2", 26380), ("10.0.0.3", 26379)]
    assert (target.master_name, target.db) == ("mymaster", 2)
    assert (target.password, target.username) == ("s3cret", None)


def test_sentinel_url_without_a_primarys_name_says_where_to_give_it() -> None:
    with pytest.raises(ConfigError, match="master_name") as caught:
        sentinel_target(SENTINELS, None)
    assert "REDIS_SENTINEL_MASTER" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_a_part_that_is_not_a_sentinel_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"redis://10\.0\.0\.2:6379.*separate sentinels with ';'"):
        sentinel_target("sentinel://10.0.0.1:26379;redis://10.0.0.2:6379", "mymaster")


def test_kombus_socket_spelling_becomes_redis_pys() -> None:
    assert redis_py_url("redis+socket:///run/redis.sock") == "unix:///run/redis.sock"
    assert redis_py_url("socket:///run/redis.sock?db=3") == "unix:///run/redis.sock?db=3"
    assert redis_py_url("rediss://h:6380/0") == "rediss://h:6380/0"


def test_redbeat_reaches_a_sentinel_primary_through_its_sentinels() -> None:
    conf = redbeat_settings(SENTINELS, "mymaster")
    assert conf["redbeat_redis_url"] == "redis-sentinel://"
    options = conf["redbeat_redis_options"]
    assert options["sentinels"][0] == ("10.0.0.1", 26379)
    assert (options["service_name"], options["db"], options["password"]) == ("mymaster", 2, "s3cret")
    assert redbeat_settings("redis+socket:///run/r.sock")["redbeat_redis_url"] == "unix:///run/r.sock"


def test_settings_take_the_primary_from_celerys_broker_transport_options() -> None:
    conf = {"broker_transport_options": {"master_name": "from-celery"}}
    assert Settings.from_env({"REDIS_URL": SENTINELS}, conf=conf).redis_sentinel_master == "from-celery"
    env = {"REDIS_URL": SENTINELS, "REDIS_SENTINEL_MASTER": "from-env"}
    assert Settings.from_env(env, conf=conf).redis_sentinel_master == "from-env"
    with pytest.raises(ConfigError, match="master_name"):
        Settings.from_env({"REDIS_URL": SENTINELS})


def test_bridge_celeryconfig_names_the_primary_to_the_broker_and_the_result_backend() -> None:
    settings = Settings.from_env({"REDIS_URL": SENTINELS, "REDIS_SENTINEL_MASTER": "mymaster"})
    conf = celeryconfig.build(settings)
    assert conf["broker_url"] == conf["result_backend"] == SENTINELS
    assert conf["broker_transport_options"]["master_name"] == "mymaster"
    assert conf["result_backend_transport_options"]["master_name"] == "mymaster"
    assert conf["result_backend_transport_options"]["visibility_timeout"] == settings.visibility_timeout_sec


@pytest.mark.parametrize("url", ["redis+socket:///run/redis.sock", "socket:///run/redis.sock", SENTINELS])
def test_every_url_form_celery_accepts_is_a_redis_url(url: str) -> None:
    settings = Settings.from_env({"REDIS_URL": url, "REDIS_SENTINEL_MASTER": "m"})
    assert settings.queue_backend == "redis"
