"""Shared by the examples: run a real ``celery worker`` for the length of a ``with`` block."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def celery_worker(
    app_module: str, concurrency: int = 2, queues: str = "", name: str = "celery"
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``celery -A app_module worker`` and stop it (warm shutdown) on exit."""
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            app_module,
            "worker",
            f"--hostname={name}@%h",
            "--loglevel=WARNING",
            f"--concurrency={concurrency}",
            "--without-gossip",
            "--without-mingle",
            *([f"--queues={queues}"] if queues else []),
        ],
        stdout=subprocess.DEVNULL,  # the banner; warnings and errors still reach stderr
    )
    with _stopped_on_exit(worker):
        yield worker


@contextmanager
def celery_beat(app_module: str) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``celery -A app_module beat`` and stop it on exit."""
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", app_module, "beat", "--loglevel=WARNING", "-s", os.devnull],
        stdout=subprocess.DEVNULL,
    )
    with _stopped_on_exit(beat):
        yield beat


@contextmanager
def _stopped_on_exit(process: subprocess.Popen[bytes]) -> Iterator[None]:
    """Warm shutdown (SIGTERM) when the block exits; kill after 20 s."""
    try:
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
