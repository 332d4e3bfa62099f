"""Prometheus exposition of the queue counts (``prometheus_client``), and a tiny /metrics server.

The counts are read fresh on every scrape by a custom collector (:class:`QueueCollector`)
that ``prometheus_client`` renders; the dashboard serves the same collector at its own
``/metrics``. ``prometheus_client`` comes with the ``dashboard`` extra.

The server is small on purpose, and safe to leave running: each connection has
a read timeout (an idle client cannot hold a thread), at most ``MAX_WORKERS``
requests are served at once (others are closed at once), and with a token every
request must send ``Authorization: Bearer <token>`` (Prometheus's
``authorization`` scrape setting).
"""

from __future__ import annotations

import hmac
import logging
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from bridge.errors import BridgeError, ConfigError
from bridge.stats import QueueCounts

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

__all__ = [
    "CONTENT_TYPE", "MAX_WORKERS", "REQUEST_TIMEOUT_S", "QueueCollector", "bearer_matches", "exposition",
    "is_loopback",
    "registry_of", "render", "serve",
]  # fmt: skip

logger = logging.getLogger("bridge.metrics")

MAX_WORKERS = 16
REQUEST_TIMEOUT_S = 10.0

_HELP = {
    "waiting": "Jobs waiting in the queue (all priorities).",
    "active": "Jobs reserved by a worker and not yet acknowledged.",
    "delayed": "Jobs waiting for their delay.",
    "scheduled": "Standing repeats whose runs go to the queue.",
    "failed": "Dead letters: jobs that failed for good.",
}


#: The exposition's media type (Prometheus text format 0.0.4).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ConfigError(
            "the Prometheus metrics need prometheus_client: pip install 'celery-jobs-bridge[dashboard]'."
        ) from None
    return prometheus_client


class QueueCollector:
    """A ``prometheus_client`` collector: one gauge family per state, labelled by queue.

    ``collect_counts`` is called on every scrape, so the numbers are those of that moment.
    """

    def __init__(self, collect_counts: Callable[[], Mapping[str, QueueCounts]]) -> None:
        self._collect_counts = collect_counts

    def describe(self) -> list[Any]:
        return []  # no read of the queues when the collector is registered

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        counts = self._collect_counts()
        for state, help_text in _HELP.items():
            family = GaugeMetricFamily(f"bridge_queue_{state}_jobs", help_text, labels=["queue"])
            for queue, c in counts.items():
                family.add_metric([queue], getattr(c, state))
            yield family


def registry_of(collect_counts: Callable[[], Mapping[str, QueueCounts]]) -> CollectorRegistry:
    """A registry of its own holding only the queue collector (no process or platform metrics)."""
    registry: CollectorRegistry = _prometheus().CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(collect_counts))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The registry's metrics, read now, in the Prometheus text format."""
    body: bytes = _prometheus().generate_latest(registry)
    return body


def exposition(counts: Mapping[str, QueueCounts]) -> str:
    """The counts as Prometheus text (``jobs stats --prometheus``)."""
    return render(registry_of(lambda: counts)).decode()


class _BoundedServer(ThreadingHTTPServer):
    """A threading server with at most ``MAX_WORKERS`` requests in flight."""

    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(MAX_WORKERS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # busy: close now rather than queue a thread
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def serve(
    collect: Callable[[], Mapping[str, QueueCounts]], host: str, port: int, token: str | None = None
) -> ThreadingHTTPServer:
    """Serve ``/metrics`` (fresh counts per scrape) until the returned server is shut down.

    With ``token``, a request without ``Authorization: Bearer <token>`` gets 401.
    """
    token = token or None
    registry = registry_of(collect)

    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_TIMEOUT_S  # the socket's: a client that sends nothing is dropped

        def do_GET(self) -> None:
            if token is not None and not bearer_matches(self.headers.get("Authorization"), token):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Bearer realm="bridge metrics"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics is served")
                return
            try:
                body, status = render(registry), 200
            except BridgeError as exc:
                body, status = f"# backend error: {exc}\n".encode(), 503
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            logger.debug("metrics: " + format, *args)

    server = _BoundedServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="bridge-metrics", daemon=True).start()
    return server


def bearer_matches(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header is ``Bearer <token>``.

    The scheme's name is case-insensitive (RFC 9110); the token is compared in constant time.
    """
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def is_loopback(host: str) -> bool:
    """Whether ``host`` resolves to loopback addresses only."""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addresses = [str(info[4][0]) for info in infos]
    return all(address.startswith("127.") or address == "::1" for address in addresses)
