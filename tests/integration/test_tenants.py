"""Two apps on one Redis database, told apart by kombu's ``global_keyprefix``, see nothing of each other.

kombu prefixes its own keys with ``broker_transport_options["global_keyprefix"]``;
the bridge prefixes every key of its own with it too: guards and delays, repeats
and beat's lock, locks, and ``@bridge.idempotent`` records.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import LockNotAcquired
from bridge.core.keys import pair_key
from tests.conftest import read_ledger, wait_for

pytestmark = pytest.mark.redis

TENANTS = ("tenantA:", "tenantB:")


@pytest.fixture
def tenants(make_bridge: Any) -> dict[str, Any]:
    """One bridged app per tenant, on the same database."""
    made = {}
    for prefix in TENANTS:
        probe = make_bridge()  # the transport options our celeryconfig gives, then the tenant's prefix
        options = {**probe.app.conf.broker_transport_options, "global_keyprefix": prefix}
        made[prefix] = make_bridge(conf={"broker_transport_options": options})
    return made


def test_each_tenant_lists_counts_and_cancels_only_its_own_repeats_and_jobs(tenants, redis_client):
    a, b = tenants["tenantA:"], tenants["tenantB:"]
    for bridge in (a, b):  # the same name and key in both apps
        bridge.jobs.schedule("ledger.record", {"key": "nightly"}, cron="0 3 * * *", idempotency_key="nightly")
        bridge.queue.add("ledger.record", {"key": "now"}, idempotency_key="k1")
        bridge.queue.add("ledger.record", {"key": "later"}, idempotency_key="k2", delay_ms=600_000)

    for bridge in (a, b):
        assert [r.name for r in bridge.jobs.list()] == ["ledger.record"]
        counts = bridge.stats([bridge.jobs_queue, "celery"])
        assert counts[bridge.jobs_queue].scheduled == 1
        assert (counts["celery"].waiting, counts["celery"].delayed) == (1, 1)
    # Every key the bridge or kombu wrote is under one of the two prefixes.
    assert all(key.startswith((b"tenantA:", b"tenantB:")) for key in redis_client.keys("*"))

    assert a.jobs.cancel(name="ledger.record", idempotency_key="nightly", cron="0 3 * * *") is True
    assert a.jobs.list() == []
    assert [r.name for r in b.jobs.list()] == ["ledger.record"]  # B's repeat stands
    assert b.queue.add("ledger.record", {"key": "now"}, idempotency_key="k1").deduplicated
    assert not a.queue.add("ledger.record", {"key": "x"}, idempotency_key="k3").deduplicated


def test_each_tenant_has_its_own_locks(tenants):
    a, b = tenants["tenantA:"], tenants["tenantB:"]
    with (
        b.lock("nightly", ttl_ms=10_000, blocking=False),
        a.lock("nightly", ttl_ms=10_000, blocking=False),  # B holding its "nightly" does not stop A
        pytest.raises(LockNotAcquired),
    ):
        a.lock("nightly", ttl_ms=10_000, blocking=False).acquire()


def test_each_tenant_has_its_own_idempotency_records_and_keys_never_collide(tenants):
    ran: list[str] = []

    def guarded_task(bridge: Any, name: str) -> Any:
        @bridge.app.task(name=name, shared=False)  # no app finalized later takes it
        @bridge.idempotent(key=lambda **kw: kw["key"])
        def body(key: str) -> str:
            ran.append(f"{bridge.key_prefix}{name}/{key}")
            return key

        return body

    for prefix in TENANTS:
        task = guarded_task(tenants[prefix], "report")
        assert task.apply(kwargs={"key": "2026-11-30"}).get() == "2026-11-30"
        assert task.apply(kwargs={"key": "2026-11-30"}).get() == "2026-11-30"  # a redelivery: not run
    # Task "a" with key "b:c" and task "a:b" with key "c": two records, both bodies run.
    guarded_task(tenants["tenantA:"], "a").apply(kwargs={"key": "b:c"})
    guarded_task(tenants["tenantA:"], "a:b").apply(kwargs={"key": "c"})

    assert ran == ["tenantA:report/2026-11-30", "tenantB:report/2026-11-30", "tenantA:a/b:c", "tenantA:a:b/c"]


@settings(max_examples=300, deadline=None)
@given(st.tuples(st.text(), st.text()), st.tuples(st.text(), st.text()))
def test_distinct_task_and_key_pairs_never_share_a_key(first, second):
    if first != second:
        assert pair_key("bridge:idem:", *first) != pair_key("bridge:idem:", *second)
    assert json.loads(pair_key("p:", *first)[2:]) == list(first)  # and the pair reads back


@pytest.mark.worker
@pytest.mark.slow
def test_two_tenants_beats_and_workers_each_fire_and_run_only_their_own(
    start_worker, start_beat, make_bridge, redis_client
):
    for prefix in TENANTS:
        name = prefix.rstrip(":")
        start_beat(name=f"beat-{name}", wait_for_lock=False, TEST_KEYPREFIX=prefix)
        start_worker(f"w-{name}", TEST_KEYPREFIX=prefix)
    locks = [f"{prefix}bridge:repeat::lock" for prefix in TENANTS]
    assert wait_for(lambda: all(redis_client.exists(lock) for lock in locks), timeout=30)  # a beat per tenant

    probe = make_bridge()
    for prefix in TENANTS:
        options = {**probe.app.conf.broker_transport_options, "global_keyprefix": prefix}
        bridge = make_bridge(conf={"broker_transport_options": options})
        bridge.jobs.schedule("ledger.record", {"key": prefix}, every_ms=500, idempotency_key="tick")

    assert wait_for(lambda: len(read_ledger(redis_client)) >= 6, timeout=60)
    ran_by = {(line["key"], line["worker"].split("@")[0]) for line in read_ledger(redis_client)}
    assert ran_by == {("tenantA:", "w-tenantA"), ("tenantB:", "w-tenantB")}
