"""Job ids: the same (name, key) gives the same id everywhere; no key gives a fresh one."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.core.ids import job_id_for, random_uuid
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


# The ids are formatted by hand (they are on every add's path): they must be exactly the
# stdlib's, or ids written by an earlier release would no longer match.
_RELEASED_NAMESPACE = uuid.UUID("6f2c7a4e-3b1d-5e8f-9a0c-2d4b6e8f1a3c")
_ID_OF_EMAILS_SEND_ORDER_42 = "3ab508d3-09d3-509a-924c-74eaa53e4ef0"


@given(name=st.text(min_size=1), key=st.text(min_size=1))
def test_keyed_id_is_the_stdlib_uuid5_of_the_json_pair(name: str, key: str) -> None:
    expected = uuid.uuid5(_RELEASED_NAMESPACE, json.dumps([name, key]))
    assert job_id_for(name, key) == str(expected)


def test_keyed_id_of_a_released_key_is_unchanged() -> None:
    # Computed by the release before the hand-formatted ids.
    assert job_id_for("emails.send", "order-42") == _ID_OF_EMAILS_SEND_ORDER_42


def test_random_uuid_is_a_version_4_rfc_4122_uuid() -> None:
    ids = [random_uuid() for _ in range(200)]
    assert len(set(ids)) == 200
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
