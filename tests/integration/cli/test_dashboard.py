"""``jobs dashboard`` in a real browser (Playwright driving Debian's Chromium) against a real Redis,
real ``celery worker`` and ``celery beat`` processes.

One dashboard server per mode for the whole module (normal, read-only, with a login token) and one
browser: the pages are checked against ``jobs stats --json`` and Redis, each action is clicked and
its effect read back from Redis, and each page is saved as a screenshot: under ``docs/`` (the
README shows them) when ``BRIDGE_UPDATE_SCREENSHOTS=1``, else in a temporary folder, so an
ordinary run leaves the committed pictures alone.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import JOBS, ROOT, Server, read_ledger, wait_for
from tests.integration.cli import dashboard_ui as ui
from tests.integration.cli.dashboard_ui import Dashboard, flash, nav, screenshot, submit

pytestmark = [pytest.mark.redis, pytest.mark.worker]

Q = "work"
TOKEN = "dash-t0ken-for-tests"


def _start(server: Server, *args: str, **env: str) -> Dashboard:
    return ui.start_dashboard(server.env(**env), "--queues", f"celery,{Q}", *args)


@pytest.fixture(scope="module")
def dashboards(system_redis: Server) -> Iterator[dict[str, Dashboard]]:
    """The three servers of the module: ``plain``, ``read_only`` and ``login`` (with a token)."""
    started: dict[str, Dashboard] = {}
    try:
        started["plain"] = _start(system_redis)
        started["read_only"] = _start(system_redis, "--read-only")
        started["login"] = _start(system_redis, JOBS_DASHBOARD_TOKEN=TOKEN)
        yield started
    finally:
        for dashboard in started.values():
            ui.stop_dashboard(dashboard)


def jobs_stats(server: Server, queues: str) -> dict[str, dict[str, int]]:
    done = subprocess.run(
        [JOBS, "stats", "--queues", queues, "--json"], cwd=ROOT, env=server.env(), capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def shown_counts(page: Any, queue: str) -> dict[str, int]:
    row = page.locator(f'tr[data-queue="{queue}"]')
    states = ("waiting", "active", "delayed", "scheduled", "failed")
    return {state: int(row.locator(f'td[data-state="{state}"]').inner_text()) for state in states}


def test_overview_matches_jobs_stats_refreshes_live_and_charts_the_last_hour(
    dashboards, page, start_worker, make_bridge, redis_client, server
) -> None:
    from tests.integration.cli.test_stats_and_dlq import fill_queue

    bridge = make_bridge()
    fill_queue(start_worker, bridge, redis_client)  # 5 waiting, 2 running, 3 delayed, 1 repeat, 2 dead
    try:
        page.goto(dashboards["plain"].url + "/")
        expected = jobs_stats(server, f"celery,app:jobs,{Q}")
        assert expected[Q] == {"waiting": 5, "active": 2, "delayed": 3, "scheduled": 1, "failed": 2}
        for queue, counts in expected.items():
            assert shown_counts(page, queue) == counts, queue
        # Counted by the add script and the worker: 12 adds so far, 2 failed for good.
        assert wait_for(lambda: _chart_totals(page)["failed"] == 2, timeout=20)
        assert _chart_totals(page)["added"] == 12
        screenshot(page, "overview")

        page.evaluate("window.notReloaded = true")
        for i in range(4):
            bridge.queue.add("ledger.record", {"key": f"more-{i}"}, queue=Q)
        # htmx polls every 3 s: the counts change in place, the page is not reloaded.
        assert wait_for(lambda: shown_counts(page, Q)["waiting"] == 9, timeout=20)
        assert page.evaluate("window.notReloaded") is True
        assert _chart_totals(page)["added"] == 16

        body = urllib.request.urlopen(dashboards["plain"].url + "/metrics", timeout=10).read().decode()
        samples = {
            (f.name, s.labels["queue"]): s.value
            for f in text_string_to_metric_families(body)
            for s in f.samples
        }
        assert samples[("bridge_queue_waiting_jobs", Q)] == 9
        assert samples[("bridge_queue_failed_jobs", Q)] == 2

        # A repeat scheduled or cancelled elsewhere is counted at the next refresh (the count of
        # repeats per queue is reused for 10 s only while beat's schedule keeps its size).
        hourly = {"idempotency_key": "hourly", "every_ms": 3_600_000}
        bridge.jobs.schedule("ledger.record", {"key": "hourly"}, queue=Q, **hourly)
        assert _partial_counts(dashboards["plain"].url, Q)["scheduled"] == 2
        assert bridge.jobs.cancel(name="ledger.record", **hourly)
        assert _partial_counts(dashboards["plain"].url, Q)["scheduled"] == 1
    finally:
        redis_client.rpush("test:release", "go", "go")


def _partial_counts(url: str, queue: str) -> dict[str, int]:
    """The counts the overview's next live refresh shows for ``queue``."""
    html = urllib.request.urlopen(url + "/partials/overview", timeout=10).read().decode()
    row = re.search(rf'<tr data-queue="{re.escape(queue)}">(.*?)</tr>', html, re.S)
    assert row, html
    return {state: int(n) for state, n in re.findall(r'data-state="(\w+)"[^>]*>\s*(\d+)', row.group(1))}


def _chart_totals(page: Any) -> dict[str, int]:
    return {s: int(page.locator(f'[data-total="{s}"]').inner_text()) for s in ("added", "done", "failed")}


def test_delayed_jobs_page_shows_key_and_due_time_and_cancels_one(
    dashboards, page, make_bridge, redis_client
) -> None:
    bridge = make_bridge()
    jobs = [
        bridge.queue.add(
            "ledger.record",
            {"key": f"later-{i}"},
            idempotency_key=f"order-{i}",
            queue=Q,
            delay_ms=(i + 3) * 60_000,
        )
        for i in range(3)
    ]
    page.goto(f"{dashboards['plain'].url}/delayed?queue={Q}")
    rows = page.locator("#delayed tbody tr")
    assert rows.count() == 3
    first = page.locator(f'tr[data-id="{jobs[0].id}"]')
    assert "ledger.record" in first.inner_text()
    assert "order-0" in first.inner_text()
    assert re.search(r"in [23] min", first.inner_text())
    assert [rows.nth(i).get_attribute("data-id") for i in range(3)] == [j.id for j in jobs]  # soonest first
    screenshot(page, "delayed")

    submit(page, first.locator("button", has_text="cancel"))
    assert "cancelled delayed job" in flash(page)
    assert redis_client.zcard(f"bridge:delayed:{Q}") == 2
    assert not redis_client.exists(f"bridge:guard:{jobs[0].id}")  # the key is free again
    assert page.locator("#delayed tbody tr").count() == 2
    assert nav(page) == ["Overview", "Delayed", "Repeats", "Dead letters", "Job lookup"]  # no SQS on Redis

    page.goto(f"{dashboards['plain'].url}/delayed?queue={Q}&offset=50")  # an old link, past the end
    assert page.locator(".pager").inner_text().startswith("past the end (2 in all)")
    assert page.locator(".pager a[rel=prev]").get_attribute("href") == f"?queue={Q}&offset=0"
    assert page.locator("#delayed tbody tr", has_text="no delayed jobs").count() == 1


def test_repeats_page_shows_runs_from_beat_runs_one_now_and_cancels(
    dashboards, page, start_worker, start_beat, make_bridge, redis_client
) -> None:
    bridge = make_bridge()
    start_worker("w1")
    bridge.jobs.schedule("ledger.record", {"key": "nightly"}, cron="0 3 * * *", tz="Europe/Berlin",
                         idempotency_key="nightly", queue="celery")  # fmt: skip
    ticking = bridge.jobs.schedule("ledger.record", {"key": "tick"}, every_ms=1000, queue="celery")
    start_beat()
    assert wait_for(
        lambda: next(r.run_count for r in bridge.jobs.list() if r.id == ticking.id) >= 2, timeout=30
    )

    page.goto(dashboards["plain"].url + "/repeats")
    nightly = page.locator("#repeats tbody tr", has_text="nightly")
    assert "cron 0 3 * * *" in nightly.inner_text()
    assert "Europe/Berlin" in nightly.inner_text()
    tick = page.locator(f'tr[data-id="{ticking.id}"]')
    assert "every 1000 ms" in tick.inner_text()
    assert int(tick.locator('[data-field="runs"]').inner_text()) >= 2
    screenshot(page, "repeats")

    submit(page, page.locator(f'tr[data-id="{nightly.get_attribute("data-id")}"] button', has_text="run now"))
    job_id = re.search(r"job (\S+)$", flash(page)).group(1)  # type: ignore[union-attr]
    assert wait_for(lambda: any(line["id"] == job_id for line in read_ledger(redis_client)), timeout=20)
    assert [r.run_count for r in bridge.jobs.list() if r.idempotency_key == "nightly"] == [
        0
    ]  # not a beat run

    submit(page, page.locator(f'tr[data-id="{ticking.id}"] button', has_text="cancel"))
    assert "cancelled repeat" in flash(page)
    assert [r.id for r in bridge.jobs.list()] == [nightly.get_attribute("data-id")]
    assert page.locator(f'tr[data-id="{ticking.id}"]').count() == 0


def test_dead_letters_page_retries_one_retries_all_and_purges_after_confirming(
    dashboards, page, start_worker, make_bridge, redis_client
) -> None:
    start_worker("w1")
    bridge = make_bridge()
    failed = [bridge.queue.add("ledger.fail", {"key": f"bad-{i}"}) for i in range(3)]
    assert wait_for(lambda: bridge.dead_letters.count("celery") == 3, timeout=20)

    page.goto(dashboards["plain"].url + "/dead?queue=celery")
    rows = page.locator("#dead tbody tr")
    assert [rows.nth(i).get_attribute("data-id") for i in range(3)] == [j.id for j in reversed(failed)]
    newest = page.locator(f'tr[data-id="{failed[2].id}"]')
    assert "ValueError: cannot process bad-2" in newest.inner_text()
    newest.locator("summary").click()
    assert "Traceback" in newest.locator("pre").inner_text()
    screenshot(page, "dead-letters")

    redis_client.set("test:fixed", 1)
    submit(page, page.locator(f'tr[data-id="{failed[0].id}"] button', has_text="retry"))
    assert "retried 1" in flash(page)
    assert wait_for(lambda: [line["id"] for line in read_ledger(redis_client)] == [failed[0].id], timeout=20)
    assert bridge.dead_letters.count("celery") == 2

    submit(page, page.locator("button", has_text="retry all 2"))
    assert wait_for(lambda: len(read_ledger(redis_client)) == 3, timeout=20)
    assert bridge.dead_letters.count("celery") == 0

    redis_client.delete("test:fixed")
    for i in range(2):
        bridge.queue.add("ledger.fail", {"key": f"again-{i}"})
    assert wait_for(lambda: bridge.dead_letters.count("celery") == 2, timeout=20)
    page.goto(dashboards["plain"].url + "/dead?queue=celery")
    submit(page, page.locator("a", has_text="purge"))
    assert bridge.dead_letters.count("celery") == 2  # asking is not purging
    submit(page, page.locator("button", has_text="delete 2 dead letters"))
    assert "purged 2" in flash(page)
    assert bridge.dead_letters.count("celery") == 0


def test_job_lookup_by_key_and_by_id(dashboards, page, start_worker, make_bridge, redis_client) -> None:
    bridge = make_bridge()
    later = bridge.queue.add("ledger.record", {"key": "lk"}, idempotency_key="lk", delay_ms=300_000)
    start_worker("w1")
    done = bridge.queue.add("ledger.record", {"key": "ran"}, idempotency_key="ran")
    dead = bridge.queue.add("ledger.fail", {"key": "broke"})
    assert wait_for(lambda: bridge.dead_letters.count("celery") == 1 and len(read_ledger(redis_client)) == 1)
    url = dashboards["plain"].url

    page.goto(url + "/lookup")
    page.fill("input[name=name]", "ledger.record")
    page.fill("input[name=key]", "lk")
    submit(page, page.locator("button", has_text="look up"))
    assert later.id in page.locator("h2").inner_text()
    assert page.locator("#status").inner_text() == "delayed"
    assert page.locator("#guard").inner_text().startswith("stands (queue celery")
    screenshot(page, "lookup")

    page.goto(f"{url}/lookup?id={done.id}")
    assert page.locator("#status").inner_text() == "done"
    assert f"'ran': '{done.id}'" in page.locator("#result").inner_text()
    page.goto(f"{url}/lookup?id={dead.id}")
    assert page.locator("#status").inner_text() == "dead"
    assert "cannot process broke" in page.locator("table.facts").inner_text()

    waiting = bridge.queue.add("ledger.record", {"key": "waits"}, queue=Q)  # no worker consumes Q
    page.goto(f"{url}/lookup?id={waiting.id}")
    assert page.locator("#status").inner_text() == "queued"
    busy = bridge.queue.add("ledger.record", {"key": "busy", "sleep_s": 6})
    assert wait_for(lambda: redis_client.llen("test:record_started") == 1)
    page.goto(f"{url}/lookup?id={busy.id}")
    assert page.locator("#status").inner_text() == "running"

    answer = page.goto(f"{url}/lookup?key=lk")  # a key without its task name: said, not ignored
    assert answer.status == 400
    assert page.locator(".error").inner_text().startswith("name: give a job id, or a task name")


def test_a_forged_post_is_refused_and_read_only_shows_and_takes_no_action(
    dashboards, page, make_bridge, redis_client
) -> None:
    bridge = make_bridge()
    job = bridge.queue.add(
        "ledger.record", {"key": "keep"}, idempotency_key="keep", queue=Q, delay_ms=600_000
    )
    url = dashboards["plain"].url
    page.goto(f"{url}/delayed?queue={Q}")  # a session cookie, as a logged-in user's browser holds
    # What another site's form would send: the user's cookies ride along, the page's token cannot.
    for form in ({"id": job.id, "queue": Q}, {"id": job.id, "queue": Q, "csrf": "0" * 64}):
        forged = page.request.post(url + "/delayed/cancel", form=form, max_redirects=0)
        assert forged.status == 403
        assert "CSRF" in forged.text()
    assert redis_client.zcard(f"bridge:delayed:{Q}") == 1

    read_only = dashboards["read_only"].url
    page.goto(f"{read_only}/delayed?queue={Q}")
    assert page.locator(f'tr[data-id="{job.id}"]').count() == 1
    assert page.locator("form[method=post]").count() == 0
    assert page.locator(".badge", has_text="read-only").count() == 1
    csrf = page.evaluate("document.cookie")  # HttpOnly: the page's script cannot read the session
    assert "jobs_sid" not in csrf
    page.goto(f"{read_only}/dead?queue={Q}")
    assert page.locator("button").count() == 1  # the queue picker's "show" only
    confirm = page.request.get(f"{read_only}/dead/purge?queue={Q}")  # the purge's confirmation page
    assert confirm.status == 403
    assert "read-only" in confirm.text()
    refused = page.request.post(read_only + "/delayed/cancel", form={"id": job.id, "queue": Q})
    assert refused.status == 403
    assert "read-only" in refused.text()
    assert redis_client.zcard(f"bridge:delayed:{Q}") == 1


def test_a_token_requires_a_login_for_every_page_and_metrics(dashboards, page, redis_client) -> None:
    url = dashboards["login"].url
    page.goto(url + "/dead?queue=celery")
    assert page.url.startswith(url + "/login")
    assert page.locator("input[name=token]").count() == 1
    screenshot(page, "login")
    for path in ("/", "/partials/overview", "/repeats", "/lookup?id=x"):
        response = page.request.get(url + path, max_redirects=0)
        assert response.status == 303, path
        assert response.headers["location"].startswith("/login")
    assert page.request.get(url + "/metrics").status == 401

    page.fill("input[name=token]", "wrong")
    submit(page, page.locator("button", has_text="log in"))
    assert page.locator(".error").inner_text() == "wrong token"
    page.fill("input[name=token]", TOKEN)
    submit(page, page.locator("button", has_text="log in"))
    assert page.url == url + "/dead?queue=celery"  # back where the login was asked for
    assert page.locator("h1").inner_text() == "Dead letters"
    page.goto(url + "/")
    assert page.locator('tr[data-queue="celery"]').count() == 1

    for path in ("/metrics", "/dead?queue=celery"):  # a scraper or a script: the token, no login form
        scrape = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert urllib.request.urlopen(scrape, timeout=10).status == 200, path
    wrong = urllib.request.Request(url + "/metrics", headers={"Authorization": "Bearer wrong"})
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(wrong, timeout=10)
    assert answer.value.code == 401

    submit(page, page.locator("button", has_text="log out"))
    page.goto(url + "/")
    assert page.url.startswith(url + "/login")

    # The overview's live refresh, once the login has ended: the whole page goes to the login
    # (and back to the overview after it), not a login form swapped into the counts table.
    page.fill("input[name=token]", TOKEN)
    submit(page, page.locator("button", has_text="log in"))
    assert page.url == url + "/"
    page.context.clear_cookies()
    page.wait_for_url(url + "/login?next=%2F", timeout=30_000)
    assert page.locator('tr[data-queue="celery"]').count() == 0
    page.fill("input[name=token]", TOKEN)
    submit(page, page.locator("button", has_text="log in"))
    assert page.url == url + "/"

    # A login never sends the browser to another site, however "next" is spelled.
    for elsewhere in ("https://evil.example/", "//evil.example/", "/\\evil.example/"):
        page.goto(url + "/login?next=" + urllib.parse.quote(elsewhere, safe=""))
        page.fill("input[name=token]", TOKEN)
        submit(page, page.locator("button", has_text="log in"))
        assert page.url == url + "/", elsewhere
        submit(page, page.locator("button", has_text="log out"))


@pytest.mark.parametrize("spelling", list(ui.SPELLINGS))
def test_each_spelling_of_the_command_serves_the_apps_dashboard(server, redis_client, spelling: str) -> None:
    """``jobs -A APP dashboard``, ``jobs dashboard -A APP`` and ``celery -A APP jobs dashboard`` serve
    the named app's dashboard: the docs app, whose broker only its own config module names, with one
    message waiting in its default queue."""
    env = server.env(DOCS_BROKER_URL=server.url, DOCS_RESULTS_DIR="/tmp")
    env.pop("REDIS_URL", None)  # only the app knows where its broker is
    redis_client.rpush("celery", "x")
    dashboard = ui.start_dashboard(env, spelling=spelling, app="tests.apps.docs_app")
    try:
        with urllib.request.urlopen(dashboard.url + "/", timeout=30) as answer:
            assert answer.status == 200
            assert 'data-queue="celery"' in answer.read().decode()
        with urllib.request.urlopen(dashboard.url + "/metrics", timeout=30) as answer:
            assert 'bridge_queue_waiting_jobs{queue="celery"} 1.0' in answer.read().decode()
    finally:
        ui.stop_dashboard(dashboard)


def test_a_loopback_dashboard_answers_no_other_host_name(dashboards) -> None:
    """A page of another site that a DNS name points at 127.0.0.1 (DNS rebinding) reads nothing:
    a loopback dashboard answers to its loopback names only."""
    url = dashboards["plain"].url
    for host in ("evil.example", "evil.example:9181"):
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(urllib.request.Request(url + "/", headers={"Host": host}), timeout=10)
        assert answer.value.code == 400, host
        assert answer.value.read().decode() == "this dashboard answers to its loopback address only"
    for host in ("127.0.0.1", "localhost"):
        request = urllib.request.Request(url + "/", headers={"Host": host})
        assert urllib.request.urlopen(request, timeout=10).status == 200, host


def test_a_non_loopback_host_without_a_token_is_refused(server) -> None:
    env = server.env()
    env.pop("JOBS_DASHBOARD_TOKEN", None)
    done = subprocess.run(
        [JOBS, "dashboard", "--host", "0.0.0.0", "--port", "0"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--host 0.0.0.0 is reachable from other machines" in done.stderr
    assert "JOBS_DASHBOARD_TOKEN" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_pages_show_no_password_of_a_url(dashboards, page, make_bridge, redis_client) -> None:
    bridge = make_bridge()
    secret_url = "redis://app:hunter2@db.internal:6379/0"
    bridge.queue.add("ledger.record", {"dsn": secret_url}, queue=Q, delay_ms=600_000)
    bridge.jobs.schedule("ledger.record", {"dsn": secret_url}, every_ms=600_000, queue=Q)
    url = dashboards["plain"].url
    for path in (f"/delayed?queue={Q}", "/repeats", "/"):
        page.goto(url + path)
        html = page.content()
        assert "hunter2" not in html, path
    assert "redis://app:***@db.internal:6379/0" in page.goto(f"{url}/delayed?queue={Q}").text()


def test_with_its_redis_down_pages_say_so_and_metrics_answers_a_scraper_in_text(server) -> None:
    """Redis unreachable (a password in its URL): each page answers 503 saying so, ``/metrics`` in
    plain text for a scraper, and neither shows the password."""
    dashboard = ui.start_dashboard(server.env(REDIS_URL="redis://app:hunter2@127.0.0.1:1/0"))
    try:
        for path, kind in (("/", "text/html"), ("/delayed", "text/html"), ("/metrics", "text/plain")):
            with pytest.raises(urllib.error.HTTPError) as answer:
                urllib.request.urlopen(dashboard.url + path, timeout=30)
            body = answer.value.read().decode()
            assert answer.value.code == 503, path
            assert answer.value.headers["content-type"].startswith(kind), path
            assert "Connection refused" in body, body
            assert "hunter2" not in body, path
    finally:
        ui.stop_dashboard(dashboard)
