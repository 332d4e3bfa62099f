"""A TCP proxy in front of Redis that, once armed, lets one command through and drops its reply.

The fault a retried add must survive: the server ran the command, the client never
heard back. Forcing it here makes the test deterministic instead of waiting for an
outage to land between a command and its reply.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class ReplyDropper:
    """Forward 127.0.0.1:<port> to ``upstream``; :meth:`arm` drops the reply to the next command
    whose bytes contain ``marker`` and closes that connection."""

    def __init__(self, upstream: tuple[str, int], marker: bytes) -> None:
        self.upstream, self.marker = upstream, marker
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.armed = threading.Event()
        self.dropped = 0
        self._closing = False
        self._sockets: list[socket.socket] = []  # every end of every connection, closed by close()
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self) -> None:
        self.armed.set()

    def close(self) -> None:
        self._closing = True
        self.listener.close()
        for end in self._sockets:
            _close(end)

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self._sockets += [client, server]
            state = {"drop": False}
            threading.Thread(target=self._requests, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._replies, args=(server, client, state), daemon=True).start()

    def _requests(self, client: socket.socket, server: socket.socket, state: dict[str, bool]) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                if self.armed.is_set() and self.marker in data:
                    self.armed.clear()
                    state["drop"] = True  # set before the command reaches the server
                server.sendall(data)
        _close(client, server)  # the client hung up: so does the server side

    def _replies(self, server: socket.socket, client: socket.socket, state: dict[str, bool]) -> None:
        with contextlib.suppress(OSError):
            while data := server.recv(65536):
                if state["drop"]:
                    self.dropped += 1
                    break
                client.sendall(data)
        _close(client, server)


def _close(*ends: socket.socket) -> None:
    for end in ends:
        with contextlib.suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)
        end.close()
