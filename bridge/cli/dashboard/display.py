"""How the dashboard's pages show values: times ("in 3 min"), the per-minute chart, the pager.

Pure functions of their arguments (no Redis, no clock of their own), so the pages' arithmetic
is tested on its own (``tests/unit/cli/test_dashboard_display.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bridge.core.redact import redact

__all__ = ["Pager", "chart", "offset_of", "relative", "shown", "when", "when_dt"]

SERIES = ("added", "done", "failed")


def shown(value: object) -> str:
    """Text from the app or its jobs as a page shows it: secrets masked (Jinja2 escapes HTML)."""
    return redact("" if value is None else str(value))


def when(ms: int | float | None) -> str:
    """Milliseconds since the epoch as a UTC time, ``-`` for none."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def when_dt(value: datetime | None) -> str:
    """A datetime (of any zone) as a UTC time, ``-`` for none."""
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def relative(ms: int, now_ms: int) -> str:
    """``in 3 min`` for a time ahead of ``now_ms``, ``12 s ago`` for one behind it.

    Seconds up to 90 s, minutes up to 90 min, hours up to 36 h, then days: the unit changes
    where the rounded number would otherwise read 1 (so never "in 1 days").
    """
    delta = (ms - now_ms) / 1000
    span = abs(delta)
    if span < 90:
        text = f"{span:.0f} s"
    elif span < 90 * 60:
        text = f"{span / 60:.0f} min"
    elif span < 36 * 3600:
        text = f"{span / 3600:.0f} h"
    else:
        text = f"{span / 86400:.0f} days"
    return f"in {text}" if delta >= 0 else f"{text} ago"


def chart(rates: Sequence[Any], width: int = 600, height: int = 120) -> dict[str, Any]:
    """SVG polyline points of the per-minute series (``added``, ``done``, ``failed`` of each of
    ``rates``, oldest first), scaled so the busiest minute of any series touches the top of a
    ``width`` x ``height`` box; and each series' total.

    An idle hour (or none) draws flat lines along the bottom: the scale is at least 1 a minute.
    """
    peak = max([1, *(max(getattr(r, s) for s in SERIES) for r in rates)])
    step = width / max(1, len(rates) - 1)

    def points(series: str) -> str:
        return " ".join(
            f"{i * step:.1f},{height - getattr(r, series) * height / peak:.1f}" for i, r in enumerate(rates)
        )

    totals = {s: sum(getattr(r, s) for r in rates) for s in SERIES}
    return {"width": width, "height": height, "peak": peak, "totals": totals,
            "series": {s: points(s) for s in SERIES}}  # fmt: skip


def offset_of(text: str | None) -> int:
    """The ``offset`` query parameter: a whole number from 0; anything else reads as 0."""
    try:
        return max(0, int(text or "0"))
    except ValueError:
        return 0


@dataclass(frozen=True)
class Pager:
    """Where one page of ``size`` rows from ``offset`` stands among ``total`` (rows are 0-based)."""

    total: int
    offset: int
    size: int

    @property
    def label(self) -> str:
        """``51-100 of 120``; ``none``; or, for an offset past the end (an old link), says so."""
        if self.total <= 0:
            return "none"
        if self.offset >= self.total:
            return f"past the end ({self.total} in all)"
        return f"{self.offset + 1}-{min(self.offset + self.size, self.total)} of {self.total}"

    @property
    def prev_offset(self) -> int | None:
        """The offset of the page before, or None on the first; past the end, the last page."""
        if self.offset <= 0:
            return None
        last_page = max(0, (self.total - 1) // self.size * self.size)
        return max(0, min(self.offset - self.size, last_page))

    @property
    def next_offset(self) -> int | None:
        """The offset of the page after, or None on the last."""
        following = self.offset + self.size
        return following if following < self.total else None
