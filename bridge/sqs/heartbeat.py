"""SQS visibility heartbeat: a handler longer than the queue's visibility timeout runs once.

Why this is ours: kombu's SQS transport receives a message with a visibility
timeout and deletes it on ack; if the handler (or the wait in the worker's
prefetch) outlasts the timeout, SQS hands the message to another worker, and the
job runs twice. Celery has no hook for this, so a consumer bootstep runs a thread
that, every ``SQS_HEARTBEAT_SEC``, extends the visibility of every message the
worker holds unacknowledged (running or prefetched) by ``SQS_EXTEND_BY_SEC``,
ten per ``ChangeMessageVisibilityBatch`` call. It reads the held messages from
the consumer channel's QoS (kombu's private ``_delivered``, less ``_dirty``: the
ones acked since; kombu offers no public view of what a channel holds), so an
acked message drops out by itself. It never runs on the worker's event loop, and it
stops extending a message at SQS's 12-hour cap.

Each call is billed, so a message is extended only when it would otherwise
become visible before the next beat: with the defaults (a beat every 30 s, 120 s
per extension) a held message costs one tenth of a call every third beat.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from typing import Any

from celery import Celery, bootsteps

from bridge.settings import Settings
from bridge.worker.forkguard import ForkGuard

__all__ = ["MAX_VISIBILITY_SEC", "Heartbeat", "install_heartbeat"]

logger = logging.getLogger("bridge.sqs.heartbeat")

MAX_VISIBILITY_SEC = 43_200  # SQS: a message is invisible at most 12 hours after its receipt
_BATCH = 10  # SQS: entries per ChangeMessageVisibilityBatch
_MARGIN_S = 2.0  # room for the API call itself and a late beat
DEFAULT_VISIBILITY_SEC = 30  # SQS's default VisibilityTimeout, when the queue cannot be asked


class Heartbeat:
    """The thread that keeps a worker's held messages invisible while it holds them."""

    def __init__(
        self, channel: Any, client: Any, interval_s: float, extend_by_s: int,
        visibility_s: float = DEFAULT_VISIBILITY_SEC,
    ) -> None:  # fmt: skip
        self.channel = channel
        self.client = client
        self.interval_s = interval_s
        self.extend_by_s = extend_by_s
        self.visibility_s = visibility_s  # the queue's VisibilityTimeout: how long a receipt hides it
        self._first_seen: dict[str, float] = {}
        self._hidden_until: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bridge-sqs-heartbeat", daemon=True)
        self._guard = ForkGuard("the bridge SQS heartbeat")  # the pool forks children beside this thread
        self.calls = 0  # API calls made, for the benchmark

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _held(self) -> list[tuple[str, str]]:
        """(queue URL, receipt handle) of each message delivered and not yet acked.

        kombu's QoS keeps an acked (or rejected) message in ``_delivered`` until its next
        delivery, marked in ``_dirty``: such a message is no longer held (extending it would
        fail, its receipt handle spent, once a call a beat until the worker gets another job).
        """
        qos = self.channel.qos
        for _ in range(3):  # the event loop may change the mapping while we copy it
            try:
                done = set(qos._dirty)
                messages = [message for tag, message in list(qos._delivered.items()) if tag not in done]
                break
            except RuntimeError:
                continue
        else:
            return []
        held = []
        for message in messages:
            info = getattr(message, "delivery_info", None) or {}
            sqs_message, url = info.get("sqs_message"), info.get("sqs_queue")
            if sqs_message and url:
                held.append((url, sqs_message["ReceiptHandle"]))
        return held

    def beat(self) -> int:
        """Extend every held message once; returns how many were extended."""
        now = time.monotonic()
        held = self._held()
        live = {handle for _, handle in held}
        self._first_seen = {h: t for h, t in self._first_seen.items() if h in live}
        self._hidden_until = {h: t for h, t in self._hidden_until.items() if h in live}
        by_queue: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for url, handle in held:
            if handle not in self._first_seen:
                self._first_seen[handle] = now
                # Received at most one beat ago, hidden for the queue's visibility timeout since.
                self._hidden_until[handle] = now - self.interval_s + self.visibility_s
            if self._hidden_until[handle] - now > self.interval_s + _MARGIN_S:
                continue  # still hidden past the next beat: no call needed yet
            room = int(MAX_VISIBILITY_SEC - (now - self._first_seen[handle])) - int(self.interval_s) - 1
            timeout = min(self.extend_by_s, room)
            if timeout <= 0:
                continue  # at the 12-hour cap: SQS refuses more
            entry: dict[str, Any] = {"Id": str(len(by_queue[url])), "ReceiptHandle": handle,
                                     "VisibilityTimeout": timeout}  # fmt: skip
            by_queue[url].append(entry)
        extended = 0
        for url, entries in by_queue.items():
            for i in range(0, len(entries), _BATCH):
                batch = entries[i : i + _BATCH]
                try:
                    reply = self.client.change_message_visibility_batch(QueueUrl=url, Entries=batch)
                    self.calls += 1
                except Exception as exc:  # the next beat tries again; never kill the worker
                    logger.warning("bridge sqs heartbeat: %s", exc)
                    continue
                sent = {entry["Id"]: entry for entry in batch}
                done = [sent[item["Id"]] for item in reply.get("Successful", []) if item["Id"] in sent]
                for entry in done:
                    self._hidden_until[entry["ReceiptHandle"]] = now + entry["VisibilityTimeout"]
                extended += len(done)
                for failure in reply.get("Failed", []):
                    logger.info("bridge sqs heartbeat: not extended: %s", failure.get("Message"))
        return extended

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._guard:
                self.beat()


def install_heartbeat(app: Celery, settings: Settings) -> None:
    """Run a visibility heartbeat in every worker of ``app`` (SQS only)."""

    class VisibilityHeartbeat(bootsteps.StartStopStep):  # type: ignore[misc]  # celery is untyped
        """Consumer bootstep: a heartbeat per task-consumer channel."""

        label = "bridge sqs heartbeat"
        requires = ("celery.worker.consumer.tasks:Tasks",)

        def __init__(self, parent: Any, **kwargs: Any) -> None:
            super().__init__(parent, **kwargs)
            self.heartbeat: Heartbeat | None = None

        def start(self, parent: Any) -> None:
            from bridge.sqs.admin import SqsAdmin

            channel = parent.task_consumer.channel
            client = SqsAdmin(settings).client
            visibility = _queue_visibility(client, settings)
            self.heartbeat = Heartbeat(
                channel, client, settings.sqs_heartbeat_sec, settings.sqs_extend_by_sec, visibility
            )
            self.heartbeat.start()

        def stop(self, parent: Any) -> None:
            if self.heartbeat is not None:
                self.heartbeat.stop()
                self.heartbeat = None

        shutdown = stop

    app.steps["consumer"].add(VisibilityHeartbeat)


def _queue_visibility(client: Any, settings: Settings) -> int:
    """The queue's VisibilityTimeout (when a held message reappears); warns if beats are slower."""
    if not settings.sqs_queue_url:
        return DEFAULT_VISIBILITY_SEC
    try:
        attrs = client.get_queue_attributes(
            QueueUrl=settings.sqs_queue_url, AttributeNames=["VisibilityTimeout"]
        )
        visibility = int(attrs["Attributes"]["VisibilityTimeout"])
    except Exception as exc:  # the worker runs on, extending as if the queue had SQS's default
        logger.warning("bridge sqs heartbeat: could not read the queue's visibility timeout: %s", exc)
        return DEFAULT_VISIBILITY_SEC
    if settings.sqs_heartbeat_sec >= visibility:
        logger.warning(
            "bridge sqs heartbeat: SQS_HEARTBEAT_SEC=%s is not shorter than the queue's VisibilityTimeout "
            "of %s s, so a held message can reappear between beats; lower SQS_HEARTBEAT_SEC",
            settings.sqs_heartbeat_sec,
            visibility,
        )
    return visibility
