"""Importing the library is cheap and side-effect free: no clients, no environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "QUEUE_BACKEND")}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60
    )


def test_import_bridge_loads_no_backend_client() -> None:
    out = run(
        "import sys, bridge\nprint(sorted(m for m in ('redis', 'boto3', 'botocore') if m in sys.modules))"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_import_celeryconfig_does_not_read_the_environment() -> None:
    out = run(
        "from bridge import celeryconfig\n"
        "print('imported')\n"
        "from bridge.errors import ConfigError\n"
        "try:\n"
        "    celeryconfig.broker_url\n"
        "except ConfigError as exc:\n"
        "    print('ConfigError:', exc)\n",
        QUEUE_BACKEND="nonsense",
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "imported"
    assert lines[1].startswith("ConfigError:")
    assert "QUEUE_BACKEND" in lines[1]
