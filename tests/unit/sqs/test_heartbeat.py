"""The heartbeat's call economy, with a stand-in SQS client and clock (the real thing: test_sqs_backend)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from bridge.sqs import heartbeat as sqs_heartbeat
from bridge.sqs.heartbeat import MAX_VISIBILITY_SEC, Heartbeat

URL = "http://sqs.local/000000000000/jobs"


class RecordingClient:
    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []

    def change_message_visibility_batch(self, **call: Any) -> dict[str, Any]:
        self.batches.append(call["Entries"])
        return {"Successful": [{"Id": e["Id"]} for e in call["Entries"]]}


def held(n: int) -> SimpleNamespace:
    delivered = {
        tag: SimpleNamespace(delivery_info={"sqs_message": {"ReceiptHandle": f"h{tag}"}, "sqs_queue": URL})
        for tag in range(n)
    }
    return SimpleNamespace(qos=SimpleNamespace(_delivered=delivered, _dirty=set()))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(sqs_heartbeat.time, "monotonic", lambda: now[0])
    return now


def run_beats(heartbeat: Heartbeat, clock: list[float], beats: int) -> None:
    for _ in range(beats):
        heartbeat.beat()
        clock[0] += heartbeat.interval_s


def test_defaults_cost_a_tenth_of_a_call_per_message_every_third_beat(clock: list[float]) -> None:
    client = RecordingClient()
    heartbeat = Heartbeat(held(40), client, interval_s=30, extend_by_s=120, visibility_s=30)
    run_beats(heartbeat, clock, 9)
    assert [len(batch) for batch in client.batches] == [10] * 12  # beats 0, 3 and 6: four calls each
    assert heartbeat.calls / (40 * 9) <= 0.15


def test_every_held_message_stays_hidden_past_each_next_beat(clock: list[float]) -> None:
    client = RecordingClient()
    heartbeat = Heartbeat(held(3), client, interval_s=1, extend_by_s=4, visibility_s=4)
    hidden_until = {f"h{tag}": clock[0] - 1 + 4 for tag in range(3)}  # received up to a beat ago
    for _ in range(20):
        seen = len(client.batches)
        heartbeat.beat()
        for batch in client.batches[seen:]:
            for entry in batch:
                hidden_until[entry["ReceiptHandle"]] = clock[0] + entry["VisibilityTimeout"]
        clock[0] += 1
        assert all(until > clock[0] for until in hidden_until.values())  # never visible at the next beat


def test_an_acked_message_is_no_longer_extended(clock: list[float]) -> None:
    channel = held(3)
    client = RecordingClient()
    heartbeat = Heartbeat(channel, client, interval_s=1, extend_by_s=3, visibility_s=3)
    heartbeat.beat()
    channel.qos._dirty.add(0)  # kombu's ack: marked, and dropped at the channel's next delivery
    del channel.qos._delivered[1]  # ... which has come for this one
    clock[0] += 1
    client.batches.clear()
    heartbeat.beat()
    assert [entry["ReceiptHandle"] for batch in client.batches for entry in batch] == ["h2"]


def test_extensions_stop_at_the_twelve_hour_cap(clock: list[float]) -> None:
    client = RecordingClient()
    heartbeat = Heartbeat(held(1), client, interval_s=60, extend_by_s=120, visibility_s=30)
    heartbeat.beat()
    clock[0] += MAX_VISIBILITY_SEC
    client.batches.clear()
    heartbeat.beat()
    assert client.batches == []
