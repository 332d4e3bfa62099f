"""Certificate verification for every ``rediss://`` URL an app gives, unless it opts out.

kombu connects to a ``rediss://`` broker *without* verifying the server's
certificate when nothing says otherwise (it logs a warning and uses
``CERT_NONE``), so a bridged app would hand job payloads to any server that
answers. ``Bridge(app)`` therefore asks kombu to verify (``broker_use_ssl``
gains ``ssl_cert_reqs=CERT_REQUIRED``, against the system CAs or the app's
``ssl_ca_certs``) when the app stated nothing. Verification off is a choice the
app makes explicitly (``ssl_cert_reqs=none`` in the URL or ``broker_use_ssl``),
and the bridge logs it once. Celery's result backend already refuses a
``rediss://`` URL that does not state ``ssl_cert_reqs``; ``REDIS_URL`` is
verified by :mod:`bridge.settings`.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from bridge.core.redact import redact

__all__ = ["is_unverified", "store_url_of_broker", "verify_broker_tls", "warn_unverified", "with_query"]

logger = logging.getLogger("bridge")
_warned: set[str] = set()

# broker_use_ssl's keys, as redis-py's URL query spells them.
_SSL_KEYS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile")


def _is_rediss(url: Any) -> bool:
    return isinstance(url, str) and url.split("://", 1)[0].lower() == "rediss"


def _stated(url: str, use_ssl: Any) -> Any:
    """The ``ssl_cert_reqs`` the app stated for ``url`` (its query, then ``use_ssl``), or None."""
    in_query = parse_qs(urlsplit(url).query).get("ssl_cert_reqs")
    if in_query:
        return in_query[-1]
    if isinstance(use_ssl, dict):
        return use_ssl.get("ssl_cert_reqs")
    return None


def is_unverified(cert_reqs: Any) -> bool:
    return cert_reqs == ssl.CERT_NONE or str(cert_reqs).lower() in ("none", "cert_none")


def warn_unverified(what: str, url: str) -> None:
    """Log once per process and URL that ``url`` is used without certificate verification."""
    if url not in _warned:
        _warned.add(url)
        logger.warning(
            "bridge: TLS certificate verification is OFF for %s %s (ssl_cert_reqs=none): any server "
            "that answers gets the jobs. Remove ssl_cert_reqs=none and give ssl_ca_certs instead.",
            what, redact(url),
        )  # fmt: skip


def verify_broker_tls(conf: Any) -> None:
    """Make ``conf``'s ``rediss://`` broker verify certificates unless it states otherwise.

    Also warns (once) for a broker or result backend that turns verification off.
    """
    url = conf.broker_write_url or conf.broker_url
    if _is_rediss(url):
        stated = _stated(url, conf.broker_use_ssl)
        if stated is None:
            given = conf.broker_use_ssl if isinstance(conf.broker_use_ssl, dict) else {}
            conf.broker_use_ssl = {**given, "ssl_cert_reqs": ssl.CERT_REQUIRED}
        elif is_unverified(stated):
            warn_unverified("the broker", url)
    backend = conf.result_backend
    if _is_rediss(backend) and is_unverified(_stated(backend, conf.redis_backend_use_ssl)):
        warn_unverified("the result backend", backend)


def store_url_of_broker(url: str, use_ssl: Any) -> str:
    """The broker's URL for the bridge's own clients, carrying ``broker_use_ssl``'s TLS options
    (its CA above all) in the query, where redis-py reads them."""
    if not _is_rediss(url) or not isinstance(use_ssl, dict):
        return url
    query = parse_qs(urlsplit(url).query)
    extra = {}
    for key in _SSL_KEYS:
        value = use_ssl.get(key)
        if value is not None and key not in query:
            extra[key] = _cert_reqs_name(value) if key == "ssl_cert_reqs" else str(value)
    return with_query(url, extra)


def with_query(url: str, params: dict[str, str]) -> str:
    """``url`` with ``params`` added to its query (``url`` itself when there are none)."""
    if not params:
        return url
    parts = urlsplit(url)
    joined = "&".join(filter(None, (parts.query, urlencode(params))))
    return urlunsplit(parts._replace(query=joined))


def _cert_reqs_name(value: Any) -> str:
    names = {ssl.CERT_NONE: "none", ssl.CERT_OPTIONAL: "optional", ssl.CERT_REQUIRED: "required"}
    return names.get(value, str(value))
