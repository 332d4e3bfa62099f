"""Prometheus exposition of the queue counts (text format 0.0.4), and a tiny /metrics server.

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
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bridge.errors import BridgeError
from bridge.stats import QueueCounts

__all__ = ["MAX_WORKERS", "REQUEST_TIMEOUT_S", "exposition", "is_loopback", "serve"]

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


def exposition(counts: Mapping[str, QueueCounts]) -> str:
    """The counts as Prometheus text: one gauge family per state, labelled by queue."""
    lines = []
    for state, help_text in _HELP.items():
        name = f"bridge_queue_{state}_jobs"
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        for queue, c in counts.items():
            lines.append(f'{name}{{queue="{_escape(queue)}"}} {getattr(c, state)}')
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


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
    expected = token.encode() if token else None

    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_TIMEOUT_S  # the socket's: a client that sends nothing is dropped

        def do_GET(self) -> None:
            if expected is not None:
                # The scheme's name is case-insensitive (RFC 9110); the token is compared in constant time.
                scheme, _, given = (self.headers.get("Authorization") or "").partition(" ")
                if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Bearer realm="bridge metrics"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics is served")
                return
            try:
                body, status = exposition(collect()).encode(), 200
            except BridgeError as exc:
                body, status = f"# backend error: {exc}\n".encode(), 503
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            logger.debug("metrics: " + format, *args)

    server = _BoundedServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="bridge-metrics", daemon=True).start()
    return server


def is_loopback(host: str) -> bool:
    """Whether ``host`` resolves to loopback addresses only."""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addresses = [str(info[4][0]) for info in infos]
    return all(address.startswith("127.") or address == "::1" for address in addresses)
