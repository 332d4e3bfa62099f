"""Input checks: what is accepted unchanged, and refusals that name the field."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable

import pytest

from bridge.core.validation import (
    MAX_MS,
    check_delay_ms,
    check_group,
    check_key,
    check_name,
    check_payload,
    check_priority,
    check_queue,
)
from bridge.errors import BridgeError, DelayTooLong, InvalidInput, InvalidPayload


def refused(check: Callable[[object], object], value: object, field: str) -> InvalidInput:
    """Assert ``check(value)`` is refused with a BridgeError/ValueError naming ``field``."""
    with pytest.raises(InvalidInput) as info:
        check(value)
    assert isinstance(info.value, BridgeError)
    assert isinstance(info.value, ValueError)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    # ... and says what was wrong and how to fix it: a sentence, not an empty or missing message.
    assert len(str(info.value)) > len(field) + 25, str(info.value)
    return info.value


# -- payload -------------------------------------------------------------------


def test_payload_accepts_nested_json_objects_unchanged() -> None:
    data = {"to": "a@b.c", "n": 3, "x": 1.5, "ok": True, "none": None, "tags": ["a", {"b": [1, 2]}]}
    assert check_payload(data) == data


@pytest.mark.parametrize("data", [[1, 2], "text", None, 42])
def test_payload_must_be_a_mapping(data: object) -> None:
    err = refused(check_payload, data, "data")
    assert isinstance(err, InvalidPayload)


@pytest.mark.parametrize(
    "data",
    [
        {1: "x"},  # non-str key
        {"a-b": 1},  # not a keyword argument
        {"s": {1, 2}},
        {"b": b"bytes"},
        {"when": dt.datetime(2024, 1, 1, tzinfo=dt.UTC)},
        {"x": math.nan},
        {"x": math.inf},
        {"t": (1, 2)},  # becomes a list in JSON
        {"nested": {"t": (1, 2)}},
        {"nested": {1: "x"}},  # key becomes "1" in JSON
    ],
)
def test_payload_refuses_what_does_not_survive_json(data: object) -> None:
    err = refused(check_payload, data, "data")
    assert isinstance(err, InvalidPayload)


# -- idempotency key -----------------------------------------------------------


def test_key_accepts_none_and_up_to_512_characters() -> None:
    assert check_key(None) is None
    assert check_key("k" * 512) == "k" * 512


def test_key_over_512_characters_is_refused_with_the_limit() -> None:
    err = refused(check_key, "k" * 513, "idempotency_key")
    assert "512" in str(err)


@pytest.mark.parametrize("key", ["", 42, b"bytes"])
def test_key_must_be_a_non_empty_string(key: object) -> None:
    refused(check_key, key, "idempotency_key")


# -- delay ---------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [(None, 0), (0, 0), (1500, 1500), (1500.0, 1500)])
def test_delay_accepts_whole_milliseconds(value: object, expected: int) -> None:
    result = check_delay_ms(value)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize("value", [1.5, -1, -1.0, True, "10", math.inf, math.nan])
def test_delay_refuses_fractions_negatives_and_non_numbers(value: object) -> None:
    refused(check_delay_ms, value, "delay_ms")


def test_delay_up_to_ten_years_is_accepted_and_one_ms_more_is_too_long() -> None:
    assert check_delay_ms(MAX_MS) == MAX_MS
    with pytest.raises(DelayTooLong) as excinfo:
        check_delay_ms(MAX_MS + 1)
    assert excinfo.value.field == "delay_ms"
    assert "10 years" in str(excinfo.value)


@pytest.mark.parametrize("group_id", ["g", "tenant-7", "x" * 128, "a~b!c"])
def test_group_id_accepts_1_to_128_printable_ascii(group_id: str) -> None:
    assert check_group(group_id) == group_id


@pytest.mark.parametrize("group_id", ["", "x" * 129, "tab\there", "a\x7fb", "é", 7, b"g"])
def test_group_id_refuses_empty_long_non_ascii_and_non_strings(group_id: object) -> None:
    refused(check_group, group_id, "group_id")


# -- priority ------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, 0, 9, 255])
def test_priority_accepts_none_and_0_to_255(value: int | None) -> None:
    assert check_priority(value) == value


@pytest.mark.parametrize("value", [-1, 256, True, 1.0, "5"])
def test_priority_refuses_out_of_range_and_non_integers(value: object) -> None:
    refused(check_priority, value, "priority")


# -- name ----------------------------------------------------------------------


def test_name_accepts_a_task_name() -> None:
    assert check_name("emails.send") == "emails.send"


@pytest.mark.parametrize("name", ["", "   ", None, 42, "a\x00b", "a\x1fb", "a\nb", "a\rb", "x" * 513])
def test_name_refuses_empty_non_string_control_chars_and_long(name: object) -> None:
    refused(check_name, name, "name")


@pytest.mark.parametrize("name", ["a\tb", "a\x01b", "a\x7fb"])
def test_name_refuses_other_control_chars(name: str) -> None:
    refused(check_name, name, "name")


# -- queue ---------------------------------------------------------------------


def test_queue_accepts_none_and_a_name() -> None:
    assert check_queue(None) is None
    assert check_queue("app:jobs") == "app:jobs"


@pytest.mark.parametrize("queue", ["", "  ", 5])
def test_queue_refuses_empty_and_non_strings(queue: object) -> None:
    refused(check_queue, queue, "queue")
