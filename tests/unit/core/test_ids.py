"""Job ids: the same (name, key) gives the same id everywhere; no key gives a fresh one."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from bridge.core.ids import job_id_for
from bridge.errors import InvalidJob
from bridge.queue import make_request

ROOT = Path(__file__).resolve().parents[3]


def test_same_name_and_key_give_the_same_valid_uuid() -> None:
    first = job_id_for("emails.send", "order-42")
    assert first == job_id_for("emails.send", "order-42")
    assert str(uuid.UUID(first)) == first


def test_id_differs_by_name_and_by_key() -> None:
    base = job_id_for("emails.send", "order-42")
    assert job_id_for("emails.notify", "order-42") != base
    assert job_id_for("emails.send", "order-43") != base


def test_colon_in_name_or_key_does_not_collide() -> None:
    assert job_id_for("a", "b:c") != job_id_for("a:b", "c")


def test_unit_separator_in_name_or_key_does_not_collide() -> None:
    assert job_id_for("a", "b\x1fc") != job_id_for("a\x1fb", "c")


def test_a_name_with_the_separator_cannot_reach_the_id_function() -> None:
    with pytest.raises(InvalidJob):
        make_request("a\x1fb", {}, idempotency_key="c")


def test_no_key_gives_distinct_random_uuid4s() -> None:
    ids = {job_id_for("emails.send", None) for _ in range(50)}
    assert len(ids) == 50
    assert all(uuid.UUID(i).version == 4 for i in ids)


def test_id_is_stable_across_interpreters() -> None:
    code = "from bridge.core.ids import job_id_for; print(job_id_for('emails.send', 'order-42'))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == job_id_for("emails.send", "order-42")
