"""The fast kwargsrepr header is exactly what Celery's saferepr writes, or it steps aside."""

from __future__ import annotations

from celery.utils.saferepr import saferepr
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.redis.message import fast_kwargsrepr

MAXSIZE = 1024  # Celery's amqp.kwargsrepr_maxsize

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40))
flat = st.dictionaries(st.text(max_size=12), scalars, max_size=8)


@settings(max_examples=400)
@given(flat)
def test_flat_dicts_match_saferepr(kwargs):
    fast = fast_kwargsrepr(kwargs, MAXSIZE)
    if fast is not None:
        assert fast == saferepr(kwargs, MAXSIZE, maxlevels=3)


def test_quirks_are_mirrored():
    tricky = {"q": "it's", "b": "back\\slash", "n": "line\nbreak", "u": "é€😀", "f": 1e300, "z": None}
    assert fast_kwargsrepr(tricky, MAXSIZE) == saferepr(tricky, MAXSIZE, maxlevels=3)


def test_nested_or_long_values_step_aside():
    assert fast_kwargsrepr({"a": [1, 2]}, MAXSIZE) is None
    assert fast_kwargsrepr({"a": {"b": 1}}, MAXSIZE) is None
    assert fast_kwargsrepr({"a": "x" * 600}, MAXSIZE) is None
