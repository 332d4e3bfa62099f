"""``jobs dashboard`` for an app on SQS (moto's server) and for an app on RabbitMQ, in a real browser.

On SQS the dashboard shows the queue's and its dead-letter queue's approximate counts (the SQS
page) and the repeats; on another broker, the counts of ``jobs stats``, the repeats and the dead
letters the bridge keeps in the guard store. Every page that reads what the app's backend does
not keep answers 404 and says where to look instead, never a server error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
from celery import Celery
from kombu import Connection

from bridge import Bridge
from bridge.sqs.admin import SqsAdmin
from tests.conftest import CeleryProcess, MotoSqs, Server, wait_for
from tests.integration.cli import dashboard_ui as ui
from tests.integration.cli.dashboard_ui import Dashboard, flash, nav, screenshot, submit

UNREADABLE_ON_SQS = ("/delayed", "/dead?queue=celery", "/dead/purge?queue=celery", "/lookup?id=x", "/lookup")
UNREADABLE_ON_BROKER = ("/lookup?id=x", "/sqs")
AMQP_APP = "tests.apps.amqp_app"
PARKED = "parked"  # a queue no worker of these tests consumes: what is sent there keeps waiting


@pytest.fixture
def dashboard_at() -> Iterator[Any]:
    """Start ``jobs dashboard`` for one test: ``dashboard_at(env, *args, app=...)``; stopped afterwards."""
    started: list[Dashboard] = []

    def start(env: dict[str, str], *args: str, app: str = "tests.apps.ledger_app") -> Dashboard:
        started.append(ui.start_dashboard(env, *args, app=app))
        return started[-1]

    yield start
    for dashboard in started:
        ui.stop_dashboard(dashboard)


def refusal(page: Any, url: str) -> tuple[int, str]:
    """Open ``url``: the status it answered and the error it shows."""
    response = page.goto(url)
    return response.status, str(page.locator(".error").inner_text())


@pytest.mark.sqs
@pytest.mark.redis
def test_sqs_page_shows_the_queues_and_the_dlqs_counts_and_pages_sqs_cannot_show_say_so(
    sqs: MotoSqs, server: Server, make_bridge, redis_client, page, dashboard_at
) -> None:
    url = SqsAdmin(sqs.settings()).ensure_queue("dash-jobs", dlq="dash-jobs-dlq", max_receive_count=3)
    client = boto3.client("sqs", region_name="us-east-1", endpoint_url=sqs.endpoint)
    dlq_url = client.get_queue_url(QueueName="dash-jobs-dlq")["QueueUrl"]
    bridge = make_bridge(queue_backend="sqs", jobs_backend="sqs", sqs_queue_url=url, aws_region="us-east-1",
                         aws_endpoint_url_sqs=sqs.endpoint)  # fmt: skip
    for i in range(4):
        bridge.queue.add("ledger.record", {"key": f"now-{i}"})
    bridge.queue.add("ledger.record", {"key": "later"}, delay_ms=300_000)  # SQS's own delay
    taken = client.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=600)["Messages"]
    assert len(taken) == 1  # in flight: a worker would be running it
    for i in range(2):
        client.send_message(QueueUrl=dlq_url, MessageBody=f"dead {i}")
    bridge.jobs.schedule("ledger.record", {"key": "nightly"}, cron="0 3 * * *", idempotency_key="nightly")

    dashboard = dashboard_at(server.env(QUEUE_BACKEND="sqs", SQS_QUEUE_URL=url, **sqs.env()))
    page.goto(dashboard.url + "/")
    assert page.url == dashboard.url + "/sqs"  # the overview of an SQS app is its SQS page
    assert nav(page) == ["Repeats", "SQS"]
    rows = page.locator("#sqs tbody tr")
    assert rows.count() == 2
    queue_row = [cell.strip() for cell in rows.nth(0).locator("td").all_inner_texts()]
    dlq_row = [cell.strip() for cell in rows.nth(1).locator("td").all_inner_texts()]
    assert queue_row == [url, "3", "1", "1"]  # visible, in flight, delayed
    assert dlq_row == [f"dead-letter queue {dlq_url}", "2", "0", "0"]
    assert page.locator("#redrive").inner_text().endswith("to the dead-letter queue after 3 receives.")
    screenshot(page, "sqs")

    page.goto(dashboard.url + "/repeats")  # repeats stand in Redis here: the page works
    assert "cron 0 3 * * *" in page.locator("#repeats tbody tr", has_text="nightly").inner_text()

    for path in UNREADABLE_ON_SQS:
        status, error = refusal(page, dashboard.url + path)
        assert status == 404, path
        assert "not available on the SQS backend" in error, path
        assert "SQS page shows the approximate counts" in error, path
    page.goto(dashboard.url + "/repeats")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    retry = page.request.post(dashboard.url + "/dead/retry-all", form={"csrf": csrf, "queue": "celery"},
                              max_redirects=0)  # fmt: skip
    assert retry.status == 404
    assert "Dead letters: not available on the SQS backend" in retry.text()
    metrics = page.request.get(dashboard.url + "/metrics")
    assert (metrics.status, metrics.headers["content-type"]) == (404, "text/plain; charset=utf-8")
    assert metrics.text().startswith("no queue metrics on the SQS backend")


@pytest.fixture
def rabbit(amqp_url: str) -> Iterator[str]:
    """RabbitMQ (BRIDGE_TEST_AMQP_URL), the queues of these tests emptied before and after."""

    def purge() -> None:
        with Connection(amqp_url) as conn:
            for queue in ("celery", PARKED):
                channel = conn.channel()
                try:
                    channel.queue_purge(queue)
                except conn.channel_errors:  # not declared yet
                    pass
                finally:
                    channel.close()

    purge()
    yield amqp_url
    purge()


@pytest.fixture
def rabbit_app(rabbit: str, system_redis: Server, redis_client: redis.Redis, monkeypatch) -> Iterator[Bridge]:
    """The RabbitMQ app's producer side: its broker, and REDIS_URL for the guard store."""
    monkeypatch.setenv("REDIS_URL", system_redis.url)
    monkeypatch.delenv("QUEUE_BACKEND", raising=False)
    app = Celery("rabbit-producer", set_as_current=False)
    app.conf.update(broker_url=rabbit, result_backend=system_redis.url)
    bridge = Bridge(app)
    yield bridge
    bridge.close()
    app.close()


@pytest.mark.redis
@pytest.mark.worker
@pytest.mark.rabbitmq
def test_on_rabbitmq_the_overview_counts_delayed_jobs_cancel_dead_letters_retry_and_lookup_says_why_not(
    rabbit: str, rabbit_app: Bridge, system_redis: Server, redis_client: redis.Redis, page, dashboard_at,
    tmp_path: Path,
) -> None:  # fmt: skip
    env = system_redis.env(TEST_AMQP_URL=rabbit)
    env.pop("QUEUE_BACKEND")  # the app's broker decides: RabbitMQ, so QUEUE_BACKEND=broker
    args = ["worker", "-n", "w1@rabbit", "-c", "1", "--without-gossip", "--without-mingle",
            "--without-heartbeat", "--loglevel=INFO"]  # fmt: skip
    worker = CeleryProcess.spawn(args, tmp_path / "w1.log", env, app=AMQP_APP)
    try:
        dashboard = dashboard_at(env, "--queues", f"celery,{PARKED}", app=AMQP_APP)
        failed = rabbit_app.queue.add("amqp.fail_once", {"key": "order-7"})
        later = rabbit_app.queue.add(
            "amqp.record", {"key": "later"}, idempotency_key="later", delay_ms=600_000
        )
        kept = rabbit_app.queue.add("amqp.record", {"key": "kept"}, delay_ms=900_000)
        for i in range(2):
            rabbit_app.queue.add("amqp.record", {"key": f"parked-{i}"}, queue=PARKED)
        assert wait_for(lambda: rabbit_app.dead_letters.count("celery") == 1, timeout=45), worker.tail()

        page.goto(f"{dashboard.url}/")
        assert nav(page) == ["Overview", "Delayed", "Repeats", "Dead letters"]
        celery = counts_of(page, "celery")
        assert celery == {"waiting": 0, "active": 0, "delayed": 2, "scheduled": 0, "failed": 1}
        assert counts_of(page, PARKED)["waiting"] == 2
        assert "kept by the Redis backend only" in page.locator("#no-chart").inner_text()
        screenshot(page, "broker-overview")

        # The delayed jobs wait in the guard store until due: listed soonest first, one cancelled.
        submit(page, page.locator('tr[data-queue="celery"] td[data-state="delayed"] a'))
        assert page.locator("#delayed tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)") == [
            later.id, kept.id,
        ]  # fmt: skip
        row = page.locator(f'tr[data-id="{later.id}"]')
        assert "amqp.record" in row.inner_text()
        assert "later" in row.locator("td").nth(2).inner_text()  # its idempotency key
        assert "in 10 min" in row.inner_text()
        submit(page, row.locator("button", has_text="cancel"))
        assert flash(page) == f"cancelled delayed job {later.id}"
        assert rabbit_app.backend.delayed_count("celery") == 1  # type: ignore[attr-defined]
        assert redis_client.exists(f"bridge:guard:{later.id}") == 0  # its key is free again
        page.goto(f"{dashboard.url}/")

        submit(page, page.locator('tr[data-queue="celery"] td[data-state="failed"] a'))
        letter = page.locator(f'tr[data-id="{failed.id}"]')
        assert "PaymentDeclined: order-7: card declined" in letter.inner_text()
        submit(page, letter.locator("button", has_text="retry"))
        assert flash(page) == f"retried 1 dead letter ({failed.id})"
        # Published again on RabbitMQ with its own id: the worker runs it, and it succeeds this time.
        assert wait_for(lambda: b"order-7" in b"".join(redis_client.lrange("test:amqp:runs", 0, -1)), 30)
        assert rabbit_app.dead_letters.count("celery") == 0

        for path in UNREADABLE_ON_BROKER:
            status, error = refusal(page, dashboard.url + path)
            assert status == 404, path
            if path != "/sqs":
                assert error.startswith("Job lookup: not available on the broker backend"), path
                assert "amqp://guest:***@" in error  # the broker named, its password not
        assert "this app's queues are not on SQS" in refusal(page, dashboard.url + "/sqs")[1]
    finally:
        worker.stop()
        print(f"--- last lines of the worker's log ---\n{worker.tail()}")  # shown if the test failed


def counts_of(page: Any, queue: str) -> dict[str, int]:
    row = page.locator(f'tr[data-queue="{queue}"]')
    states = ("waiting", "active", "delayed", "scheduled", "failed")
    return {state: int(row.locator(f'td[data-state="{state}"]').inner_text()) for state in states}
