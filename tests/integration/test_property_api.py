"""Property-based tests: the public API against arbitrary input, on a real Redis.

For every call hypothesis makes up (names, payloads, keys, cron strings, numbers,
time zones, lock names), three things must hold:

* only :class:`bridge.errors.BridgeError` subclasses come out; a refused input is an
  ``InvalidInput`` (never a backend failure, since the server is up);
* the message starts with the field it refuses, and that field is one the caller
  passed;
* a refused call leaves Redis exactly as it was: every key, its type, its value
  (``DUMP``) and whether it expires.

The producer-side Bridge runs no worker, so nothing else writes during a check
(the promoter lives in workers and beat only).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge import Bridge, BridgeError, Job
from bridge.errors import InvalidInput, LockError
from bridge.jobs import Repeat

pytestmark = pytest.mark.redis

# Random by design (new inputs each run); no example database in the checkout.
# BRIDGE_PROPERTY_EXAMPLES=5000 runs a deeper search by hand.
PROPERTY = settings(
    max_examples=int(os.environ.get("BRIDGE_PROPERTY_EXAMPLES", "120")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- strategies ---------------------------------------------------------------------

# Any code point, lone surrogates included (they cannot be encoded for Redis).
any_text = st.text(st.characters(exclude_categories=()), max_size=24)
identifier = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
junk = st.one_of(
    st.none(), st.integers(), st.binary(max_size=8), st.floats(), st.lists(st.integers(), max_size=2)
)

names = st.one_of(
    st.sampled_from(["ledger.record", "emails.send", "", " ", "a\x00b", "x" * 600]),
    any_text,
    junk,
)
keys = st.one_of(st.none(), st.sampled_from(["order-42", "seed", "", "k" * 513]), any_text, junk)
queues = st.one_of(st.none(), st.sampled_from(["celery", "work", "", " "]), any_text, junk)
numbers = st.one_of(
    st.none(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.integers(),
    st.sampled_from([0, 1, -1, 2**53 + 1, 2**63, 10**15, 10**20, 10**400, -(10**5000), True, False]),
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, 1.5, 1000.0, -0.0, "1000", b"1", Decimal("5")]),
)


class _Huge(str):
    """A 2 MB string whose repr stays short in hypothesis' report."""

    def __repr__(self) -> str:
        return f"<a string of {len(self):,} characters>"


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), any_text
)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
non_json_values = st.one_of(
    st.binary(max_size=8),
    st.sets(st.integers(), max_size=3),
    st.frozensets(st.integers(), max_size=2),
    st.tuples(st.integers()),
    st.sampled_from([math.nan, math.inf, 10**5000, 1j, Decimal("1.5"), object(), datetime.now(UTC)]),
    st.integers(min_value=900, max_value=3000).map(_nested),  # deeper than the recursion limit
    st.dictionaries(st.integers(), st.integers(), min_size=1, max_size=2),  # keys change in JSON
    st.just({"at": {"__type__": "datetime", "year": 2030}}),  # celery-redbeat's tagged JSON
    st.just({"every": {"__type__": "interval"}}),
)
payloads = st.one_of(
    st.dictionaries(identifier, json_values, max_size=4),
    st.dictionaries(identifier, st.one_of(json_values, non_json_values), min_size=1, max_size=3),
    st.dictionaries(any_text, json_values, max_size=3),
    st.just({"blob": _Huge("x" * 2_000_000)}),  # a huge string: accepted, stored whole
    st.just({"big": 2**70, "neg": -(2**70)}),
    junk,
    any_text,
    st.lists(json_scalars, max_size=2),
)
cron_fields = st.sampled_from(
    [
        "*",
        "0",
        "59",
        "60",
        "-1",
        "*/0",
        "*/15",
        "1-5",
        "5-1",
        "L",
        "1W",
        "5#6",
        "?",
        "H",
        "JAN",
        "MON",
        "1,2",
        "99",
    ]
)
crons = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "0 6 * * *",
            "*/5 * * * *",
            "@daily",
            "@reboot",
            "0 0 29 2 *",
            "* * 31 2 *",
            "0 0 30 2 *",
            "0 6 * * * *",
            "0 0 L * *",
            "",
            "    ",
        ]
    ),
    st.lists(cron_fields, min_size=3, max_size=7).map(" ".join),
    any_text,
    junk,
)
zones = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "UTC",
            "Europe/Berlin",
            "America/New_York",
            "Asia/Kolkata",
            "America",
            "../etc/passwd",
            "",
            " UTC",
            "utc",
            "Etc/GMT+14",
            "posixrules",
            "Factory",
            "/usr/share/zoneinfo/UTC",
            "Europe/Berlin\x00",
        ]
    ),
    any_text,
    junk,
)
aware = st.datetimes(
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=14))])
)
instants = st.one_of(
    st.none(),
    aware,
    st.datetimes(),  # naive
    st.sampled_from(
        [datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)]
    ),
    st.sampled_from(["2027-01-01T00:00:00Z", 1_800_000_000]),
)
flags = st.one_of(st.booleans(), st.sampled_from([None, 0, 1, "false", "yes"]))

# Well-formed values: each example corrupts at most two fields of an otherwise good
# call, so that every check (and the writes after it) is reached, not just the first.
good_names = st.one_of(st.sampled_from(["ledger.record", "emails.send"]), identifier.map("tasks.{}".format))
good_keys = st.one_of(st.none(), st.sampled_from(["seed", "order-42"]), st.text(min_size=1, max_size=20))
good_payloads = st.dictionaries(identifier, json_values, max_size=4)
good_zones = st.one_of(
    st.none(), st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])
)
good_instants = st.one_of(
    st.none(),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
)


@st.composite
def calls(draw: st.DrawFn, good: dict[str, Any], bad: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments: ``good`` values, with up to two fields drawn from ``bad`` instead."""
    corrupt = draw(st.sets(st.sampled_from(sorted(bad)), max_size=2))
    return {field: draw(bad[field] if field in corrupt else good[field]) for field in good}


add_calls = calls(
    good={
        "name": good_names,
        "data": good_payloads,
        "idempotency_key": good_keys,
        "delay_ms": st.one_of(st.none(), st.integers(0, 10**7)),
        "queue": st.one_of(st.none(), st.sampled_from(["celery", "work"])),
        "priority": st.one_of(st.none(), st.integers(0, 255)),
    },
    bad={"name": names, "data": payloads, "idempotency_key": keys, "delay_ms": numbers, "queue": queues,
         "priority": numbers},
)  # fmt: skip
ADD_FIELDS = {"name", "data", "idempotency_key", "delay_ms", "queue", "priority"}
REPEAT_BAD = {
    "name": names, "data": payloads, "idempotency_key": keys, "cron": crons, "every_ms": numbers, "tz": zones,
    "start_at": instants, "end_at": instants, "limit": numbers, "delay_ms": numbers, "queue": queues,
}  # fmt: skip
_repeat = {
    "name": good_names,
    "data": good_payloads,
    "idempotency_key": good_keys,
    "queue": st.none(),
    "tz": good_zones,
    "start_at": good_instants,
    "end_at": st.none(),
    "limit": st.one_of(st.none(), st.integers(1, 1000)),
    "delay_ms": st.none(),
}
good_crons = st.sampled_from(["0 6 * * *", "*/5 * * * *", "@daily", "0 0 29 2 *", "0 0 L * *"])
schedule_calls = st.one_of(
    calls(good={**_repeat, "cron": good_crons, "every_ms": st.none()}, bad=REPEAT_BAD),
    calls(good={**_repeat, "cron": st.none(), "every_ms": st.integers(1, 10**10)}, bad=REPEAT_BAD),
    calls(  # a one-off job
        good={
            **_repeat,
            **dict.fromkeys(["cron", "every_ms", "tz", "start_at", "limit"], st.none()),
            "delay_ms": st.one_of(st.none(), st.integers(0, 10**7)),
        },
        bad=REPEAT_BAD,
    ),
)
lock_calls = calls(
    good={
        "name": st.text(min_size=1, max_size=30),
        "ttl_ms": st.integers(1_000, 60_000),
        "blocking": st.booleans(),
        "timeout_ms": st.one_of(st.none(), st.integers(0, 1_000)),
        "auto_extend": st.booleans(),
    },
    bad={"name": names, "ttl_ms": numbers, "blocking": flags, "timeout_ms": numbers, "auto_extend": flags},
)

# -- what the README says is refused ---------------------------------------------------
# Written from the README's rules, not from bridge/core/validation.py: each returns the
# fields a call must be refused for (empty: it must be accepted). A refusal that went
# missing, or one the README does not make, fails the property.

TEN_YEARS_MS = 10 * 365 * 86_400_000


def _text_ok(value: Any, *, limit: int | None = None, blank_ok: bool = True) -> bool:
    """A non-empty str of valid Unicode (no lone surrogate), within ``limit``; non-blank unless
    ``blank_ok``."""
    if not isinstance(value, str) or not value or (not blank_ok and not value.strip()):
        return False
    if limit is not None and len(value) > limit:
        return False
    return not any(0xD800 <= ord(c) <= 0xDFFF for c in value)


def _whole_ms(value: Any, *, low: int, high: int = TEN_YEARS_MS) -> bool:
    """An int (not a bool), or a float with no fraction, from low to high."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return False
    return low <= value <= high


def _json_object_ok(data: Any) -> bool:
    """A dict of identifier keys that a JSON round trip gives back unchanged."""
    if not isinstance(data, dict) or not all(isinstance(k, str) and k.isidentifier() for k in data):
        return False
    try:
        return json.loads(json.dumps(data, allow_nan=False)) == data
    except (TypeError, ValueError, RecursionError):
        return False


def add_refusals(call: dict[str, Any]) -> set[str]:
    refused = set()
    name = call.get("name")
    if not _text_ok(name, limit=512, blank_ok=False) or any(c < " " or c == "\x7f" for c in name):
        refused.add("name")
    if not _json_object_ok(call.get("data")):
        refused.add("data")
    key = call.get("idempotency_key")
    if key is not None and not _text_ok(key, limit=512):
        refused.add("idempotency_key")
    delay = call.get("delay_ms")
    if delay is not None and not _whole_ms(delay, low=0):
        refused.add("delay_ms")
    queue = call.get("queue")
    if queue is not None and not _text_ok(queue, blank_ok=False):
        refused.add("queue")
    priority = call.get("priority")
    if priority is not None and (
        isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 255
    ):
        refused.add("priority")
    return refused


def bulk_refusals(items: list[Any]) -> tuple[int, set[str]] | None:
    """The first item the README refuses and its fields (``jobs[i]`` for a malformed item)."""
    for index, item in enumerate(items):
        if not isinstance(item, tuple) or len(item) not in (2, 3):
            return index, {f"jobs[{index}]"}
        options = item[2] if len(item) == 3 else {}
        known = {"idempotency_key", "delay_ms", "queue", "priority", "group_id"}
        if not isinstance(options, dict) or set(options) - known:
            return index, {f"jobs[{index}]"}
        refused = add_refusals({"name": item[0], "data": item[1], **options})
        if refused:
            return index, {f"jobs[{index}].{field}" for field in refused}
    return None


def assert_first_refusal_as_the_readme_says(outcome: BridgeError, first: tuple[int, set[str]] | None) -> None:
    assert first is not None, f"refused ({outcome}), though the README accepts every item"
    field = getattr(outcome, "field", "")
    assert field in first[1], (
        f"refused for {field!r}; the README refuses item {first[0]} for {sorted(first[1])}"
    )


def lock_refusals(call: dict[str, Any]) -> set[str]:
    refused = set()
    if not _text_ok(call["name"]):
        refused.add("name")
    ttl = call["ttl_ms"]
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 < ttl <= TEN_YEARS_MS:
        refused.add("ttl_ms")
    timeout = call["timeout_ms"]
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int) or not 0 <= timeout <= TEN_YEARS_MS
    ):
        refused.add("timeout_ms")
    refused |= {flag for flag in ("blocking", "auto_extend") if not isinstance(call[flag], bool)}
    return refused


def assert_as_the_readme_says(outcome: BridgeError | None, expected: set[str]) -> None:
    """Refused exactly when the README refuses, for one of the fields it names."""
    if outcome is None:
        assert not expected, f"accepted, though the README refuses {sorted(expected)}"
        return
    assert expected, f"refused ({outcome}), though the README accepts every field"
    field = re.sub(r"^jobs\[\d+\]\.?", "", getattr(outcome, "field", ""))
    assert field in expected, f"refused for {field!r}, the README refuses {sorted(expected)}: {outcome}"


# -- the properties -----------------------------------------------------------------


def snapshot(client: redis.Redis) -> dict[bytes, tuple[bytes, bytes | None, bool]]:
    """Every key of the test database: its type, its value (DUMP) and whether it expires."""
    found = sorted(client.scan_iter(count=1000))
    with client.pipeline(transaction=False) as pipe:
        for key in found:
            pipe.type(key)
            pipe.dump(key)
            pipe.pttl(key)
        raw = pipe.execute()
    return {key: (raw[3 * i], raw[3 * i + 1], raw[3 * i + 2] >= 0) for i, key in enumerate(found)}


def assert_refused(exc: BridgeError, fields: set[str], before: dict[Any, Any], client: redis.Redis) -> None:
    # The server is up, so a refusal is about the input, never a backend failure.
    assert isinstance(exc, InvalidInput), f"{type(exc).__name__}: {exc}"
    field = re.sub(r"^jobs\[\d+\]\.?", "", exc.field)
    assert field in fields or re.fullmatch(r"jobs\[\d+\]", exc.field), exc.field
    assert str(exc).startswith(f"{exc.field}: "), str(exc)
    assert snapshot(client) == before, f"refused call ({exc}) changed Redis"


@pytest.fixture
def state(make_bridge: Callable[..., Bridge], redis_client: redis.Redis) -> Callable[[], Any]:
    """Reset the database to a known, non-empty state: a standing job, a delayed one, a repeat."""
    bridge = make_bridge()

    def reset() -> Any:
        redis_client.flushdb()
        bridge.queue.add("ledger.record", {"n": 1}, idempotency_key="seed")
        bridge.queue.add("ledger.record", {"n": 2}, idempotency_key="later", delay_ms=3_600_000)
        bridge.jobs.schedule("ledger.record", {"n": 3}, cron="0 6 * * *", idempotency_key="seed")
        return snapshot(redis_client)

    reset.bridge = bridge  # type: ignore[attr-defined]
    return reset


def _add(**fields: Any) -> dict[str, Any]:
    """A good add with ``fields`` changed: the README's boundaries, run on every test run."""
    return {"name": "ledger.record", "data": {"n": 1}, "idempotency_key": None, "delay_ms": None,
            "queue": None, "priority": None, **fields}  # fmt: skip


def _changed(call: dict[str, Any]) -> str:
    good = _add()
    return ",".join(
        f"{k}={v!r}"[:30] for k, v in call.items() if v != good[k] or type(v) is not type(good[k])
    )


ADD_BOUNDARIES = [
    _add(delay_ms=TEN_YEARS_MS), _add(delay_ms=TEN_YEARS_MS + 1), _add(delay_ms=-1), _add(delay_ms=0),
    _add(delay_ms=1.5), _add(delay_ms=2.0), _add(delay_ms=True), _add(delay_ms="1000"),
    _add(priority=255), _add(priority=256), _add(priority=-1), _add(priority=True),
    _add(name="n" * 512), _add(name="n" * 513), _add(name=" "), _add(name="a\x7fb"), _add(name="a\ud800"),
    _add(idempotency_key="k" * 512), _add(idempotency_key="k" * 513), _add(idempotency_key=""),
    _add(idempotency_key="\udfff"), _add(queue=" "), _add(queue=""), _add(queue="a\udc00"),
    _add(data={"t": (1, 2)}), _add(data={"x": math.nan}), _add(data={1: 2}), _add(data={"not id": 1}),
    _add(data=[1]), _add(data={"d": datetime(2030, 1, 1, tzinfo=UTC)}),
]  # fmt: skip


@PROPERTY
@given(call=add_calls)
def test_add_refuses_bad_input_cleanly(state, redis_client, call):
    check_add(state, redis_client, call)


@pytest.mark.parametrize("call", ADD_BOUNDARIES, ids=lambda call: _changed(call))
def test_add_at_the_readmes_boundaries(state, redis_client, call):
    check_add(state, redis_client, call)


def check_add(state: Any, redis_client: redis.Redis, call: dict[str, Any]) -> None:
    call = dict(call)
    before = state()
    expected = add_refusals(call)
    try:
        job = state.bridge.queue.add(call.pop("name"), call.pop("data"), **call)
    except BridgeError as exc:
        assert_refused(exc, ADD_FIELDS, before, redis_client)
        assert_as_the_readme_says(exc, expected)
    else:
        assert isinstance(job, Job)
        assert_as_the_readme_says(None, expected)


bulk_items = st.one_of(
    st.tuples(names, payloads),
    st.tuples(good_names, good_payloads),
    add_calls.map(lambda c: (c.pop("name"), c.pop("data"), {k: v for k, v in c.items() if v is not None})),
    st.tuples(
        good_names, good_payloads, st.one_of(st.dictionaries(any_text, st.integers(), max_size=2), junk)
    ),
    st.tuples(names),
    junk,
)


@PROPERTY
@given(items=st.one_of(st.lists(bulk_items, max_size=4), junk, any_text))
def test_add_bulk_refuses_bad_input_cleanly(state, redis_client, items):
    before = state()
    first_refused = bulk_refusals(items) if isinstance(items, list) else None
    try:
        jobs = state.bridge.queue.add_bulk(items)
    except BridgeError as exc:
        assert_refused(exc, {*ADD_FIELDS, "jobs"}, before, redis_client)
        if isinstance(items, list):
            assert_first_refusal_as_the_readme_says(exc, first_refused)
    else:
        assert len(jobs) == len(items)
        assert all(isinstance(j, Job) for j in jobs)
        assert first_refused is None, f"accepted, though the README refuses {first_refused}"


@PROPERTY
@given(call=schedule_calls)
def test_schedule_refuses_bad_input_cleanly(state, redis_client, call):
    before = state()
    bridge = state.bridge
    name, data = call.pop("name"), call.pop("data")
    try:
        result = bridge.jobs.schedule(name, data, **call)
    except BridgeError as exc:
        assert_refused(exc, set(REPEAT_BAD), before, redis_client)
        return
    assert isinstance(result, Repeat | Job)
    if isinstance(result, Repeat):
        # What was stored reads back as it was given, from a fresh listing.
        [listed] = [r for r in bridge.jobs.list() if r.id == result.id]
        assert (listed.name, listed.data) == (name, data)
        assert (listed.cron, listed.every_ms) == (call["cron"], call["every_ms"])


@PROPERTY
@given(name=names, key=keys, cron=crons, every_ms=numbers)
def test_cancel_refuses_bad_input_cleanly(state, redis_client, name, key, cron, every_ms):
    before = state()
    try:
        removed = state.bridge.jobs.cancel(name=name, idempotency_key=key, cron=cron, every_ms=every_ms)
    except BridgeError as exc:
        assert_refused(exc, {"name", "idempotency_key", "cron", "every_ms"}, before, redis_client)
        return
    assert isinstance(removed, bool)
    if not removed:
        assert snapshot(redis_client) == before, "a cancel that removed nothing changed Redis"


@PROPERTY
@given(call=lock_calls)
def test_lock_refuses_bad_input_cleanly(state, redis_client, call):
    before = state()
    expected = lock_refusals(call)
    try:
        with state.bridge.lock(call.pop("name"), **call):
            pass
    except LockError:
        pass  # a short lock may expire before its release: LockLost, as documented
    except BridgeError as exc:
        assert_refused(exc, {"name", "ttl_ms", "blocking", "timeout_ms", "auto_extend"}, before, redis_client)
        assert_as_the_readme_says(exc, expected)
        return
    assert_as_the_readme_says(None, expected)
    # Taken and released (or expired): a lock leaves nothing behind.
    assert snapshot(redis_client) == before
