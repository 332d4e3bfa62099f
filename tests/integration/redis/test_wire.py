"""The add's hand-packed commands and reply reading (bridge.redis.wire) against a real Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from bridge.redis.wire import bulk, is_stale, send_and_read

pytestmark = pytest.mark.redis


def packed(*words: str) -> bytes:
    return b"*%d\r\n" % len(words) + b"".join(bulk(w.encode()) for w in words)


@pytest.fixture
def connection(redis_client: redis.Redis) -> Iterator[redis.connection.Connection]:
    own = redis.Redis(connection_pool=redis_client.connection_pool, single_connection_client=True)
    yield own.connection
    own.close()


def test_replies_come_back_in_order_and_an_error_reply_is_returned_not_raised(connection):
    commands = [
        packed("ECHO", "first"),
        packed("EVALSHA", "0" * 40, "0"),
        packed("ECHO", "x" * 100_000),
        packed("NOT-A-COMMAND"),
    ]

    replies = send_and_read(connection, commands)

    assert replies[0] == b"first"
    assert isinstance(replies[1], NoScriptError)
    assert replies[2] == b"x" * 100_000  # a reply longer than one read
    assert isinstance(replies[3], ResponseError)
    assert "unknown command" in str(replies[3])
    # The connection is in step: the next command on it reads its own reply.
    assert send_and_read(connection, [packed("ECHO", "next")]) == [b"next"]


def test_a_reply_of_another_kind_drops_the_connection(connection):
    send_and_read(connection, [packed("ECHO", "connect")])

    with pytest.raises(RedisConnectionError, match="unexpected Redis reply"):
        send_and_read(connection, [packed("PING")])  # +PONG: a simple string

    assert connection._sock is None  # dropped, so nothing out of step is ever reused
    assert send_and_read(connection, [packed("ECHO", "again")]) == [b"again"]


def test_a_connection_the_server_closed_reads_as_stale(connection, redis_client):
    assert not is_stale(connection)  # not connected yet: nothing to read
    send_and_read(connection, [packed("ECHO", "up")])
    assert not is_stale(connection)

    host, port = connection._sock.getsockname()[:2]
    redis_client.client_kill_filter(addr=f"{host}:{port}")

    assert is_stale(connection)
