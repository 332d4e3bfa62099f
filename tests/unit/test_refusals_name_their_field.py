"""Refusals name the field or setting they came from, whichever way the value arrived.

Written against mutmut's survivors (tox -e mutation): Settings built directly (not
through from_env), the key helpers, and --queues parsing had no test that would
notice a refusal naming the wrong field or a default going missing.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge import ConfigError, InvalidInput, Settings
from bridge.core.keys import global_keyprefix, pair_key
from bridge.stats import parse_queues


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("queue_backend", "nope", "QUEUE_BACKEND='nope'"),
        ("jobs_backend", "nope", "JOBS_BACKEND='nope'"),
        ("lock_backend", "nope", "LOCK_BACKEND='nope'"),
        ("dedupe_until", "never", "JOBS_DEDUPE_UNTIL='never'"),
        ("redis_url", "http://host", "REDIS_URL='http://host'"),
    ],
)
def test_settings_built_directly_refuse_naming_the_variable(field: str, value: str, named: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings(**{field: value})
    assert str(info.value).startswith(named), info.value


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"JOBS_BACKEND": "nope"}, "JOBS_BACKEND='nope'"),
        ({"LOCK_BACKEND": "nope"}, "LOCK_BACKEND='nope'"),
        ({"JOBS_DEDUPE_UNTIL": "never"}, "JOBS_DEDUPE_UNTIL='never'"),
        ({"REDIS_URL": "redis://:pw/x@h"}, "REDIS_URL='redis://:***@h' is malformed"),
    ],
)
def test_from_env_refuses_naming_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(environ)
    assert str(info.value).startswith(named), info.value


def test_defaults_follow_whether_a_redis_url_is_given() -> None:
    assert Settings.from_env({}).lock_backend == "embedded"
    assert Settings.from_env({}).dedupe_until == "expiry"
    given_url = Settings.from_env({"REDIS_URL": "redis://h:6379/0"})
    assert (given_url.lock_backend, given_url.queue_backend) == ("redis", "redis")
    assert Settings.from_env({"JOBS_DEDUPE_UNTIL": "FINISH"}).dedupe_until == "finish"
    assert Settings.from_env({"AWS_REGION": "eu-west-1"}).aws_region == "eu-west-1"
    # The app's broker URL as the default is not checked as REDIS_URL is (Celery owns it).
    assert Settings.from_env({}, default_redis_url="redis://h/0").redis_url == "redis://h/0"


def test_a_rediss_url_gets_verification_and_an_opt_out_warns_once() -> None:
    assert Settings(redis_url="rediss://h:6380/0").redis_url == "rediss://h:6380/0?ssl_cert_reqs=required"
    assert Settings(redis_url="rediss://h/0?x=").redis_url == "rediss://h/0?x=&ssl_cert_reqs=required"
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("bridge")
    logger.addHandler(handler)
    try:
        url = f"rediss://h/0?ssl_cert_reqs=none&run={uuid.uuid4().hex}"  # once per process and URL
        for _ in range(2):
            Settings(redis_url=url)
    finally:
        logger.removeHandler(handler)
    warned = [r.getMessage() for r in records if "verification is OFF" in r.getMessage()]
    assert len(warned) == 1, warned
    assert "REDIS_URL" in warned[0]
    with pytest.raises(ConfigError, match=r"^REDIS_URL=.*ssl_cert_reqs='maybe'"):
        Settings(redis_url="rediss://h/0?ssl_cert_reqs=maybe")


@pytest.mark.parametrize(
    ("conf", "prefix"),
    [
        ({}, ""),
        ({"broker_transport_options": None}, ""),
        ({"broker_transport_options": {}}, ""),
        ({"broker_transport_options": {"global_keyprefix": "tenantA:"}}, "tenantA:"),
        ({"broker_transport_options": {"global_keyprefix": None, "other": 1}}, ""),
    ],
)
def test_global_keyprefix_is_read_from_the_transport_options(conf: dict[str, Any], prefix: str) -> None:
    assert global_keyprefix(conf) == prefix


@given(st.tuples(st.text(), st.text()), st.tuples(st.text(), st.text()))
def test_pair_keys_are_unambiguous_and_read_back(first: tuple[str, str], second: tuple[str, str]) -> None:
    import json

    assert (pair_key("p:", *first) == pair_key("p:", *second)) == (first == second)
    assert pair_key("p:", *first).startswith("p:")
    assert json.loads(pair_key("p:", *first)[2:]) == list(first)


def test_pair_keys_are_compact_and_keep_unicode() -> None:
    assert pair_key("bridge:idem:", "a", "b:c") == 'bridge:idem:["a","b:c"]'
    assert pair_key("", "tâche", "clé") == '["tâche","clé"]'


@pytest.mark.parametrize(("text", "queues"), [("celery", ["celery"]), (" a , b:c ", ["a", "b:c"])])
def test_queues_option_is_a_comma_separated_list(text: str, queues: list[str]) -> None:
    assert parse_queues(text) == queues


@pytest.mark.parametrize("text", ["", "  ", "a,,b", "a,", ",a"])
def test_queues_option_refuses_an_empty_list_or_name(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_queues(text)
    assert info.value.field == "--queues"
    assert repr(text) in str(info.value)


def test_every_documented_default() -> None:
    s = Settings.from_env({})
    documented = {
        "sqs_heartbeat_sec": 30, "sqs_extend_by_sec": 120, "promote_interval_ms": 200, "dlq_max": 10_000,
        "visibility_timeout_sec": 3600, "dedupe_ttl_sec": 86_400, "dashboard_token": None,
    }  # fmt: skip
    assert {name: getattr(s, name) for name in documented} == documented


def test_every_variable_is_read() -> None:
    endpoint = "http://127.0.0.1:5000"
    environ = {"AWS_ENDPOINT_URL_SQS": endpoint, "SQS_MESSAGE_GROUP_ID": "g", "JOBS_DASHBOARD_TOKEN": "t"}
    s = Settings.from_env(environ)
    assert (s.aws_endpoint_url_sqs, s.sqs_message_group_id, s.dashboard_token) == (endpoint, "g", "t")
    conf = {"bridge_sqs_fifo": True, "bridge_sqs_queue_url": "https://q/x.fifo"}  # a boolean in the config
    assert Settings.from_env({}, conf=conf).sqs_fifo


def test_number_bounds_are_exact() -> None:
    assert Settings(dlq_max=1).dlq_max == 1  # 1 is positive
    assert Settings(sqs_heartbeat_sec=119, sqs_extend_by_sec=120).sqs_heartbeat_sec == 119
    with pytest.raises(ConfigError, match="SQS_HEARTBEAT_SEC"):
        Settings(sqs_heartbeat_sec=120, sqs_extend_by_sec=120)  # a beat as long as the extension is too slow
    with pytest.raises(ConfigError, match="SQS_HEARTBEAT_SEC"):
        Settings(sqs_heartbeat_sec=True)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="JOBS_DLQ_MAX"):
        Settings(dlq_max=0)


@pytest.mark.parametrize("url", ["redis", "rediss", "redis:/h", "rediss://h/0?ssl_cert_reqs="])
def test_a_url_without_a_scheme_or_with_a_blank_cert_reqs_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^REDIS_URL="):
        Settings(redis_url=url)


def test_error_values_are_shown_cut_to_80_characters() -> None:
    from bridge.core.validation import shown

    assert shown("x" * 78) == repr("x" * 78)  # 80 with its quotes: whole
    assert shown("x" * 79) == repr("x" * 79)[:77] + "..."
    assert len(shown("x" * 500)) == 80
    assert shown(None) == "None"


def test_names_may_hold_spaces_up_to_the_limit_but_no_lone_surrogate() -> None:
    from bridge.core.validation import MAX_NAME_LENGTH, check_name, utf8_encodable

    assert check_name("reports build") == "reports build"
    assert check_name("n" * MAX_NAME_LENGTH) == "n" * MAX_NAME_LENGTH
    assert not utf8_encodable("\ud800")
    with pytest.raises(InvalidInput, match=r"^name: "):
        check_name("bad\ud800")


def test_data_nested_too_deeply_names_the_data_field() -> None:
    from bridge.core.validation import check_payload

    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(InvalidInput, match=r"^data: job data is nested too deeply"):
        check_payload({"d": deep})


@pytest.mark.parametrize(
    ("field", "named"),
    [
        ("dedupe_ttl_sec", "JOBS_DEDUPE_TTL_SEC=0"),
        ("promote_interval_ms", "JOBS_PROMOTE_INTERVAL_MS=0"),
        ("visibility_timeout_sec", "JOBS_VISIBILITY_TIMEOUT_SEC=0"),
        ("sqs_extend_by_sec", "SQS_EXTEND_BY_SEC=0"),
        ("dlq_max", "JOBS_DLQ_MAX=0"),
    ],
)
def test_numbers_built_directly_refuse_naming_the_variable(field: str, named: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings(**{field: 0})
    assert str(info.value).startswith(named), info.value


def test_missing_pieces_are_named_with_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"^JOBS_QUEUE_NAME is empty; set a queue name"):
        Settings(jobs_queue_name="")
    with pytest.raises(ConfigError, match=r"^REDIS_URL is not set, but a backend is 'redis'"):
        Settings(queue_backend="redis", jobs_backend="redis")


def test_delay_hops_default_on_and_read_from_either_place() -> None:
    assert Settings.from_env({}).sqs_delay_hops is True
    assert Settings.from_env({"SQS_DELAY_HOPS": "false"}).sqs_delay_hops is False
    assert Settings.from_env({}, conf={"bridge_sqs_delay_hops": False}).sqs_delay_hops is False
    assert Settings.from_env({}, conf={"bridge_sqs_delay_hops": True}).sqs_delay_hops is True
    with pytest.raises(ConfigError, match=r"^SQS_DELAY_HOPS="):
        Settings.from_env({"SQS_DELAY_HOPS": "maybe"})
    with pytest.raises(ConfigError, match=r"^bridge_sqs_delay_hops="):
        Settings.from_env({}, conf={"bridge_sqs_delay_hops": "maybe"})


@pytest.mark.parametrize(
    ("field", "value"), [("ttl_ms", 0), ("ttl_ms", True), ("lease_ms", -1), ("lease_ms", 1.5)]
)
def test_idempotent_refuses_a_bad_ttl_or_lease_naming_it(field: str, value: Any) -> None:
    from bridge.idempotent import idempotent

    def no_store() -> Any:
        raise AssertionError("a refused decorator must not reach its store")

    with pytest.raises(InvalidInput, match=rf"^{field}: must be a positive integer of milliseconds"):
        idempotent(no_store, **{field: value})
