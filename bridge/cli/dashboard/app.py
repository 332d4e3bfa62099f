"""The dashboard's Starlette application: server-rendered pages, POST actions, ``/metrics``.

Pages are Jinja2 templates rendered on the server; the only script is htmx (vendored,
``static/NOTICE``), which refreshes the overview's counts in place. Every action is a
POST form carrying the session's CSRF token, answered with a redirect back to its page
(post/redirect/get) and a one-time message. Pages and actions read Redis through
:mod:`bridge.cli.dashboard.reads` and the bridge's own API (retry, cancel, purge), in
Starlette's thread pool, since the clients are synchronous.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from importlib.resources import files
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from bridge.cli.dashboard import reads
from bridge.cli.dashboard.display import Pager, chart, offset_of, relative, shown, when, when_dt
from bridge.cli.dashboard.security import AUTH_COOKIE, Guard, Security, login_proof
from bridge.cli.metrics import CONTENT_TYPE, registry_of, render
from bridge.core.redact import redact
from bridge.errors import BackendError, BridgeError, InvalidInput
from bridge.stats import collect

if TYPE_CHECKING:
    from bridge.bridge import Bridge
    from bridge.redis.backend import RedisBackend
    from bridge.redis.deadletters import DeadLetters

__all__ = ["create_app"]

FLASH_COOKIE = "jobs_flash"
#: How long the overview and /metrics reuse the count of repeats per queue.
REPEAT_COUNT_TTL_S = 10.0
CSRF_REFUSED = "refused: the form's CSRF token is missing or wrong (reload the page)"
# A wrong login token waits this long before its answer: guessing is slow.
LOGIN_FAILURE_DELAY_S = 0.5


class PageUnavailable(Exception):
    """A page that reads what this app's backend does not keep: answered 404, saying where to look."""


def create_app(bridge: Bridge, security: Security, queues: Sequence[str] = ()) -> Any:
    """The dashboard of ``bridge``: an ASGI app (Starlette behind the guard of ``security``)."""
    env = Environment(
        loader=PackageLoader("bridge.cli.dashboard", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(shown=shown, when=when, dt=when_dt, relative=relative)
    env.globals["pager"] = Pager
    backend = reads.redis_backend(bridge)
    # Another broker (RabbitMQ...): its delayed jobs wait in the guard store, and are listed too.
    broker = reads.broker_backend(bridge)
    sqs_url = bridge.settings.sqs_queue_url if backend is None and broker is None else None
    # Dead letters the bridge keeps and can list (Redis, embedded, and the guard store of another
    # broker such as RabbitMQ); None on SQS, where the queue's own DLQ holds them.
    letters = bridge.dead_letters
    # The counts of jobs stats (Redis, embedded, another broker); SQS has its own page instead.
    counted = not sqs_url
    # Repeats per queue, counted at most every REPEAT_COUNT_TTL_S (the count reads every repeat:
    # about 45 ms of Redis's time with 10,000; repeats change seldom, the overview polls often),
    # and at once when beat's schedule gains or loses an entry (its size is one cheap read).
    repeat_counts: dict[str, Any] = {"at": float("-inf"), "value": {}, "entries": -1}

    def _queues() -> tuple[list[str], dict[str, int]]:
        entries = bridge.jobs.page(0, 0)[1]  # how many entries beat's schedule holds: one ZCARD
        stale = time.monotonic() - repeat_counts["at"] > REPEAT_COUNT_TTL_S
        if stale or entries != repeat_counts["entries"]:
            repeat_counts["value"] = bridge.jobs.count_per_queue()
            repeat_counts["at"], repeat_counts["entries"] = time.monotonic(), entries
        per_queue: dict[str, int] = repeat_counts["value"]
        return reads.queues_of(bridge, queues, list(per_queue)), per_queue

    def _counts() -> dict[str, Any]:
        names, per_queue = _queues()
        return collect(bridge.backend, names, lambda: per_queue)

    registry = registry_of(_counts)

    def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        flash = request.cookies.get(FLASH_COOKIE)
        body = env.get_template(template).render(
            request=request, csrf=request.state.csrf, read_only=security.read_only,
            login=security.token is not None, logged_in=request.state.logged_in,
            redis=backend is not None, delayed=backend is not None or broker is not None, sqs=bool(sqs_url),
            counted=counted, letters=letters is not None,
            flash=unquote(flash) if flash else None,
            broker=redact(str(bridge.app.conf.broker_url or "")), **context,
        )  # fmt: skip
        response = HTMLResponse(body, status_code=status)
        if flash:
            response.delete_cookie(FLASH_COOKIE, path="/")
        return response

    def refused(request: Request, message: str) -> HTMLResponse:
        return page(request, "error.html", status=403, message=message)

    def back(location: str, message: str) -> RedirectResponse:
        response = RedirectResponse(location, status_code=303)
        response.set_cookie(FLASH_COOKIE, quote(message), max_age=60, httponly=True, samesite="strict")
        return response

    def unavailable(what: str) -> PageUnavailable:
        """Why ``what`` cannot be shown for this app, and where to look instead."""
        if sqs_url:
            return PageUnavailable(
                f"{what}: not available on the SQS backend. SQS itself holds this app's jobs, delayed "
                "ones and dead letters (in its dead-letter queue) included, and lists none of them; the "
                "SQS page shows the approximate counts of the queue and of its dead-letter queue."
            )
        where = redact(str(bridge.app.conf.broker_url))
        return PageUnavailable(
            f"{what}: not available on the broker backend ({where}): the broker holds this app's "
            "queued jobs and shows no one inside its queues, so this page, which looks through the "
            "queues the bridge keeps in Redis, cannot. The overview shows this broker's counts, the "
            "delayed jobs page the jobs waiting for their delay (in the guard store), and the dead "
            "letters page its dead letters; `celery inspect query_task ID` finds a job a worker holds."
        )

    def needs_redis(what: str) -> RedisBackend:
        if backend is None:
            raise unavailable(what)
        return backend

    def needs_letters() -> DeadLetters:
        if letters is None:
            raise unavailable("Dead letters")
        return letters

    # -- pages ------------------------------------------------------------------

    def overview_data() -> dict[str, Any]:
        if not counted:
            return {"counts": None, "chart": None}
        data = {"counts": _counts(), "chart": None, "updated": when(reads.now_ms()),
                "delayed_link": backend is not None or broker is not None,
                "failed_link": letters is not None}  # fmt: skip
        if backend is not None:  # the per-minute counters are kept by the Redis backend only
            from bridge.redis.rates import read_rates

            data["chart"] = chart(read_rates(backend.client, backend.key("")))
        return data

    def overview(request: Request) -> Response:
        if not counted:
            return RedirectResponse("/sqs", status_code=303)
        return page(request, "overview.html", **overview_data())

    def overview_partial(request: Request) -> Response:
        body = env.get_template("_overview.html").render(**overview_data())
        return HTMLResponse(body)

    def delayed(request: Request) -> Response:
        names = reads.queues_of(bridge, queues)
        queue = request.query_params.get("queue") or (names[0] if names else "celery")
        offset = offset_of(request.query_params.get("offset"))
        if broker is not None:
            listing = reads.broker_delayed_page(broker, queue, offset)
        else:
            listing = reads.delayed_page(needs_redis("Delayed jobs"), queue, offset)
        return page(request, "delayed.html", queues=names, listing=listing, page_size=reads.PAGE_SIZE)

    def repeats(request: Request) -> Response:
        offset = offset_of(request.query_params.get("offset"))
        listed, total = bridge.jobs.page(offset, reads.PAGE_SIZE)
        # beat's schedule also holds the app's static beat_schedule entries: counted, not listed.
        static = max(0, min(reads.PAGE_SIZE, total - offset) - len(listed))
        in_beat = bridge.jobs_backend.repeat_scheduler() is None  # else EventBridge's, repeats only
        return page(request, "repeats.html", repeats=listed, total=total, offset=offset, static=static,
                    in_beat=in_beat, page_size=reads.PAGE_SIZE, now=datetime.now(UTC))  # fmt: skip

    def dead(request: Request) -> Response:
        dead_letters = needs_letters()
        names = reads.queues_of(bridge, queues)
        queue = request.query_params.get("queue") or (names[0] if names else "celery")
        listing = reads.dead_page(dead_letters, queue, offset_of(request.query_params.get("offset")))
        return page(request, "dead.html", queues=names, listing=listing, page_size=reads.PAGE_SIZE)

    def purge_confirm(request: Request) -> Response:
        if security.read_only:  # the confirmation of an action this dashboard will not take
            return refused(request, "read-only: this dashboard takes no actions")
        queue = request.query_params.get("queue", "")
        count = needs_letters().count(queue)
        return page(request, "purge.html", queue=queue, count=count)

    def lookup(request: Request) -> Response:
        params = request.query_params
        job_id, name, key = params.get("id", "").strip(), params.get("name", "").strip(), params.get("key")
        redis_backend = needs_redis("Job lookup")
        found = None
        if job_id or name or key:
            if not job_id and not name:
                raise InvalidInput("name", "give a job id, or a task name and its idempotency key.")
            target = reads.job_id_of(job_id, name, key if key else None)
            names = reads.queues_of(bridge, queues)
            found = reads.lookup(bridge, redis_backend, target, names)
        return page(request, "lookup.html", found=found, job_id=job_id, name=name, key=key or "",
                    now_ms=reads.now_ms())  # fmt: skip

    def sqs(request: Request) -> Response:
        from bridge.sqs.admin import SqsAdmin

        if not sqs_url:
            raise PageUnavailable(
                "SQS: this app's queues are not on SQS (this page needs QUEUE_BACKEND=sqs, SQS_QUEUE_URL)."
            )
        info = SqsAdmin(bridge.settings).counts(sqs_url)
        return page(request, "sqs.html", info=info)

    def metrics(request: Request) -> Response:
        if not counted:  # a scraper reads text: no HTML error page for it
            text = "no queue metrics on the SQS backend: SQS's own (CloudWatch) metrics count the queue\n"
            return Response(text, status_code=404, media_type="text/plain; charset=utf-8")
        return Response(render(registry), media_type=CONTENT_TYPE)

    # -- actions ----------------------------------------------------------------

    def action(work: Callable[[Request, Any], Response]) -> Callable[[Request], Awaitable[Response]]:
        """A POST route: refused in read-only mode and without the session's CSRF token."""

        async def endpoint(request: Request) -> Response:
            if security.read_only:
                return refused(request, "read-only: this dashboard takes no actions")
            form = await request.form()
            if not hmac.compare_digest(str(form.get("csrf", "")), request.state.csrf):
                return refused(request, CSRF_REFUSED)
            return await run_in_threadpool(work, request, form)

        return endpoint

    def cancel_delayed(request: Request, form: Any) -> Response:
        job_id, queue = str(form.get("id", "")), str(form.get("queue", ""))
        removed = bridge.backend.cancel_delayed(job_id)
        text = f"cancelled delayed job {job_id}" if removed else f"job {job_id} was no longer waiting"
        return back("/delayed?" + urlencode({"queue": queue}), text)

    def cancel_repeat(request: Request, form: Any) -> Response:
        repeat = bridge.jobs.get(str(form.get("id", "")))
        if repeat is None:
            return back("/repeats", "that repeat no longer stands")
        bridge.jobs.cancel(name=repeat.name, idempotency_key=repeat.idempotency_key, cron=repeat.cron,
                           every_ms=repeat.every_ms)  # fmt: skip
        return back("/repeats", f"cancelled repeat {repeat.name} ({repeat.id})")

    def run_repeat(request: Request, form: Any) -> Response:
        repeat = bridge.jobs.get(str(form.get("id", "")))
        if repeat is None:
            return back("/repeats", "that repeat no longer stands")
        job = bridge.jobs.schedule(repeat.name, repeat.data, queue=repeat.queue)
        return back("/repeats", f"queued a run of {repeat.name} now: job {job.id}")

    def retry_one(request: Request, form: Any) -> Response:
        queue, job_id = str(form.get("queue", "")), str(form.get("id", ""))
        retried = needs_letters().retry(queue, job_id)
        return back("/dead?" + urlencode({"queue": queue}), f"retried {retried} dead letter ({job_id})")

    def retry_all(request: Request, form: Any) -> Response:
        queue = str(form.get("queue", ""))
        retried = needs_letters().retry(queue)
        return back("/dead?" + urlencode({"queue": queue}), f"retried {retried} dead letters of {queue}")

    def purge(request: Request, form: Any) -> Response:
        queue = str(form.get("queue", ""))
        if form.get("confirm") != "yes":
            return back("/dead/purge?" + urlencode({"queue": queue}), "confirm the purge first")
        purged = needs_letters().purge(queue)
        return back("/dead?" + urlencode({"queue": queue}), f"purged {purged} dead letters of {queue}")

    # -- login --------------------------------------------------------------------

    def _next(request: Request, value: str | None) -> str:
        # Only a path of this dashboard: a login must not redirect to another site ("//host" and
        # "/\\host" are other sites to a browser, which reads a backslash as a slash).
        target = value or "/"
        return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/"

    def login_page(request: Request) -> Response:
        if security.token is None:
            return RedirectResponse("/", status_code=303)
        return page(
            request, "login.html", next=_next(request, request.query_params.get("next")), failed=False
        )

    async def login(request: Request) -> Response:
        if security.token is None:
            return RedirectResponse("/", status_code=303)
        form = await request.form()
        target = _next(request, str(form.get("next", "")))
        csrf_ok = hmac.compare_digest(str(form.get("csrf", "")), request.state.csrf)
        if not csrf_ok or not hmac.compare_digest(
            str(form.get("token", "")).encode(), security.token.encode()
        ):
            await asyncio.sleep(LOGIN_FAILURE_DELAY_S)
            return page(request, "login.html", status=403, next=target, failed=True)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(AUTH_COOKIE, login_proof(security.token, request.state.sid),
                            httponly=True, samesite="strict")  # fmt: skip
        return response

    def logout(request: Request, form: Any) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(AUTH_COOKIE, path="/")
        return response

    async def logout_endpoint(request: Request) -> Response:
        form = await request.form()
        if not hmac.compare_digest(str(form.get("csrf", "")), request.state.csrf):
            return refused(request, CSRF_REFUSED)
        return logout(request, form)

    # -- errors -------------------------------------------------------------------

    def error(request: Request, status: int, message: str) -> Response:
        if request.url.path == "/metrics":  # a scraper reads text: no HTML error page for it
            return Response(
                redact(message) + "\n", status_code=status, media_type="text/plain; charset=utf-8"
            )
        return page(request, "error.html", status=status, message=message)

    async def bridge_error(request: Request, exc: Exception) -> Response:
        return error(request, 503 if isinstance(exc, BackendError) else 400, str(exc))

    async def page_unavailable(request: Request, exc: Exception) -> Response:
        return error(request, 404, str(exc))

    async def redis_error(request: Request, exc: Exception) -> Response:
        return error(request, 503, f"Redis: {type(exc).__name__}: {exc}")

    static = files("bridge.cli.dashboard") / "static"
    routes = [
        Route("/", overview),
        Route("/partials/overview", overview_partial),
        Route("/delayed", delayed),
        Route("/delayed/cancel", action(cancel_delayed), methods=["POST"]),
        Route("/repeats", repeats),
        Route("/repeats/cancel", action(cancel_repeat), methods=["POST"]),
        Route("/repeats/run", action(run_repeat), methods=["POST"]),
        Route("/dead", dead),
        Route("/dead/retry", action(retry_one), methods=["POST"]),
        Route("/dead/retry-all", action(retry_all), methods=["POST"]),
        Route("/dead/purge", purge_confirm),
        Route("/dead/purge", action(purge), methods=["POST"]),
        Route("/lookup", lookup),
        Route("/sqs", sqs),
        Route("/metrics", metrics),
        Route("/login", login_page),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout_endpoint, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=str(static)), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            BridgeError: bridge_error,
            RedisError: redis_error,
            PageUnavailable: page_unavailable,
        },
    )
    return Guard(app, security)
