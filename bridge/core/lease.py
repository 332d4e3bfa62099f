"""What a lease store other than Redis raises, so ``bridge.lock`` needs no client import to catch it."""

from __future__ import annotations

__all__ = ["LeaseNotOwned"]


class LeaseNotOwned(Exception):
    """The lease had ended or another holder has it (an extend or release came too late)."""
