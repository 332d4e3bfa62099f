"""The doorbell's key prefixes: every list a channel consumes except the one it blocks on."""

from __future__ import annotations

from bridge.redis.bell import bell_prefixes

SEP = "\x06\x16"  # kombu's priority separator


def test_the_waited_queues_plain_key_is_left_out_and_its_priority_sublists_are_in() -> None:
    assert bell_prefixes("celery", ["celery", "app:jobs"], SEP, "") == ("app:jobs", "celery" + SEP)


def test_a_prefix_covered_by_a_shorter_one_is_dropped_because_redis_refuses_overlaps() -> None:
    # "jobs" covers "jobs.high" and every sublist of both.
    assert bell_prefixes("celery", ["celery", "jobs", "jobs.high"], SEP, "") == ("celery" + SEP, "jobs")
    assert bell_prefixes("jobs.high", ["jobs.high", "jobs"], SEP, "") == ("jobs",)


def test_the_global_key_prefix_is_applied() -> None:
    assert bell_prefixes("celery", ["celery", "other"], SEP, "app1:") == ("app1:celery" + SEP, "app1:other")
