"""Prometheus exposition of the queue counts (text format 0.0.4), and a tiny /metrics server."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bridge.errors import BridgeError
from bridge.stats import QueueCounts

__all__ = ["exposition", "serve"]

logger = logging.getLogger("bridge.metrics")

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


def serve(collect: Callable[[], Mapping[str, QueueCounts]], host: str, port: int) -> ThreadingHTTPServer:
    """Serve ``/metrics`` (fresh counts per scrape) until the returned server is shut down."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
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

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="bridge-metrics", daemon=True).start()
    return server
