"""Shared by the examples: a configuration mistake is one line and an exit status, as in ``jobs``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from bridge import BackendError, BridgeError, ConfigError
from bridge.core.redact import redact


@contextmanager
def example_errors(name: str) -> Iterator[None]:
    """Exit 2 with one line for a configuration or usage error, 1 for a backend failure.

    Wrap both the import of the example's app (``Bridge(app)`` reads the settings
    there) and its ``main()``.
    """
    try:
        yield
    except ConfigError as exc:
        print(f"{name}: configuration error: {redact(str(exc))}", file=sys.stderr)
        sys.exit(2)
    except BackendError as exc:
        print(f"{name}: backend error: {redact(str(exc))}", file=sys.stderr)
        sys.exit(1)
    except BridgeError as exc:
        print(f"{name}: {redact(str(exc))}", file=sys.stderr)
        sys.exit(2)
