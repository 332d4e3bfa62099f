"""Redaction covers credentials anywhere in a string; terminal text escapes every control character."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from bridge.core.redact import printable, redact

SECRET_KEYS = ["password", "secret", "token", "aws_secret_access_key", "PASSWORD", "db_password", "api_key"]
# Text around a pair: anything but the secret's own alphabet, so a leak cannot be a coincidence.
AROUND = st.text(alphabet=string.punctuation.replace("&", "") + " \n" + "xyz", max_size=30)
SECRET = st.text(alphabet=string.ascii_uppercase + string.digits, min_size=6, max_size=40)


@given(AROUND, st.sampled_from(SECRET_KEYS), st.sampled_from(["=", ": ", "=", '": "']), SECRET, AROUND)
def test_a_credential_pair_is_masked_wherever_it_stands(before, key, sep, secret, after):
    text = f"{before} {key}{sep}{secret} {after}"
    assert secret not in redact(text)


SCHEMES = st.sampled_from(["redis", "rediss", "amqp", "sentinel"])


@given(SCHEMES, SECRET, st.sampled_from(["", "/x", "@p", "/"]))
def test_a_url_password_is_masked_even_with_unencoded_at_or_slash(scheme, secret, tail):
    url = f"{scheme}://user:{secret}{tail}@host:6379/0"
    assert secret not in redact(f"error connecting to {url}: refused")


def test_urls_and_words_without_credentials_stay_as_they_are():
    for text in ("redis://host:6379/0", "Error: token expired", "the tokens were fine", "unix:///tmp/r.sock"):
        assert redact(text) == text


@given(st.text())
def test_printable_text_has_no_control_character(text):
    shown = printable(text)
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in shown)


def test_printable_shows_escape_sequences_as_text():
    assert printable("a\x1b]0;title\x07b\x1b[2J") == "a\\x1b]0;title\\x07b\\x1b[2J"
