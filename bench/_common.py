"""Shared by the benchmarks: database safety and the results table rows."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

import redis


def refuse_foreign_keys(client: redis.Redis, url: str, own_prefixes: tuple[str, ...]) -> None:
    """Refuse to flush a database that holds anything but the benchmark's own keys."""
    foreign = [
        key.decode(errors="replace")
        for key in client.scan_iter(count=1000)
        if not key.decode(errors="replace").startswith(own_prefixes)
    ]
    if foreign:
        raise SystemExit(
            f"refusing to flush {url}: it holds keys the benchmark did not write "
            f"(e.g. {foreign[:3]}). Point --redis-url at an empty database."
        )


def target_cells(ratio: float, target: float | None, at_least: bool = True) -> str:
    """The 'ratio | target | met' cells of a results row."""
    if target is None:
        return f"{ratio:.2f}x | - | -"
    met = ratio >= target if at_least else ratio <= target
    return f"{ratio:.2f}x | {'>=' if at_least else '<='} {target:g}x | {'yes' if met else 'NO'}"


def rates_table(label: str, baseline: str, rows: list[tuple[str, float, list[float], float | None]]) -> str:
    """A markdown table of (name, median jobs/s, rates, target) rows; ratios to the first row."""
    lines = [
        f"| {label} | median jobs/s | min-max jobs/s | ratio to {baseline} | target | met |",
        "|---|---:|---:|---:|---:|:---:|",
    ]
    first = rows[0][1]
    for name, median, rates, target in rows:
        lines.append(
            f"| {name} | {median:,.0f} | {min(rates):,.0f}-{max(rates):,.0f} "
            f"| {target_cells(median / first, target)} |"
        )
    return "\n".join(lines)


def stop_process_group(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Stop a worker started with ``start_new_session=True``: SIGTERM (Celery's warm shutdown), then
    SIGKILL to its whole process group (pool processes included) after ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
