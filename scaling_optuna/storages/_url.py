"""Store URLs: their form, and keeping their passwords out of every output.

A password may hold any character. Written raw into a URL, a ``/``, a space or
an ``@`` makes the URL ambiguous to a pattern, so besides masking what looks
like a password in a URL, every password this process has seen in a store URL
is remembered (raw, percent-decoded and percent-encoded) and masked wherever it
appears: error messages, logs, reports and the dashboard note all go through
:func:`mask_url`.

Example::

    >>> mask_url("postgresql://me:secret@db/exp")
    'postgresql://me:***@db/exp'
"""

from __future__ import annotations

import re
import threading
from urllib.parse import quote
from urllib.parse import quote_plus
from urllib.parse import unquote
from urllib.parse import urlsplit
from urllib.parse import unquote_plus

from scaling_optuna.errors import StorageError

MASK = "***"
# Shorter passwords alone would mask ordinary words; they are masked where the URL frames them
# (":pw@", "password=pw"), and URL patterns mask them inside URLs.
_MIN_REMEMBERED = 4
_SCHEMES = "sqlite:///file.db, postgresql://user@host/db, journal:///file.log or grpc://host:port"

# scheme://user:PASSWORD@host — greedy up to the last "@" before white space, so that a
# password holding "@" or "/" is masked whole.
_USERINFO = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<secret>\S*)(?P<tail>@)")
# ?password=… or &password=… (libpq and SQLAlchemy accept it as a query parameter).
_QUERY = re.compile(r"(?P<head>[?&](?:password|passwd|pwd)=)(?P<secret>[^&\s'\"]*)", re.IGNORECASE)
# In a store URL itself a query password runs to the next "&" or the URL's end: it may hold
# spaces, "#" or "?" (SQLAlchemy passes them on as they are).
_QUERY_IN_URL = re.compile(r"[?&](?P<key>password|passwd|pwd)=(?P<secret>[^&]*)", re.IGNORECASE)

# What to replace, by what: every form of every password seen in a store URL.
_secrets: dict[str, str] = {}
_lock = threading.Lock()


def mask_url(text: object) -> str:
    """``text`` with the password of every URL in it, and every password seen in a store URL, as ``***``."""
    out = str(text)
    with _lock:
        secrets = sorted(_secrets.items(), key=lambda item: len(item[0]), reverse=True)
    for secret, masked in secrets:
        out = out.replace(secret, masked)
    out = _USERINFO.sub(lambda m: f"{m['head']}{MASK}{m['tail']}", out)
    return _QUERY.sub(lambda m: f"{m['head']}{MASK}", out)


def remember_secrets(url: str) -> None:
    """Remember the password of ``url`` so that :func:`mask_url` hides it wherever it appears."""
    for key, secret in _passwords(url):
        for form in _forms(secret):
            if form == MASK:
                continue
            framed = {f":{form}@": f":{MASK}@"} if key is None else {f"{key}={form}": f"{key}={MASK}"}
            with _lock:
                _secrets.update(framed)
                if len(form) >= _MIN_REMEMBERED:
                    _secrets[form] = MASK


def scheme(url: str) -> str:
    """The URL's scheme, lower-case (``postgresql+psycopg2`` stays whole)."""
    return url.split("://", 1)[0].lower()


def check_url(url: object) -> None:
    """Raise :class:`StorageError` unless ``url`` has the form of a usable store URL.

    Cheap and offline: callers run it before loading data, so that a mistyped
    ``--storage`` is reported at once. Whether the store answers is for
    :func:`~scaling_optuna.storages.open_storage` to find out.
    """
    if not isinstance(url, str) or "://" not in url:
        raise StorageError(f"storage URL {mask_url(url)!r} is malformed; use {_SCHEMES}")
    remember_secrets(url)
    kind = scheme(url)
    if kind == "postgres" or kind.startswith("postgres+"):
        raise StorageError(
            f"storage URL scheme {kind!r} is not one SQLAlchemy knows; write postgresql:// "
            f"(e.g. {mask_url('postgresql' + url[len('postgres'):])})"
        )
    if kind.startswith("sqlite") and url.split("://", 1)[1].lstrip("/") in ("", ":memory:"):
        raise StorageError(
            f"storage URL {mask_url(url)!r} is an in-memory SQLite database, which lives and dies with one "
            "process; workers and reports need a file: use sqlite:///scaling-optuna.db"
        )
    if kind == "grpc":
        grpc_address(url)


def grpc_address(url: str) -> tuple[str, int]:
    """The host and port of a ``grpc://host:port`` URL (an IPv6 host in brackets: ``grpc://[::1]:13000``).

    Raises:
        StorageError: no host, no port, or a port or bracket that does not parse.

    Example::

        >>> grpc_address("grpc://[::1]:13000")
        ('::1', 13000)
    """
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as e:
        raise StorageError(
            f"storage URL {mask_url(url)!r} is malformed ({e}); write grpc://HOST:PORT, an IPv6 host in brackets: grpc://[::1]:13000"
        ) from None
    if not host or not port:
        raise StorageError(f"storage URL {mask_url(url)!r} needs a host and a port, e.g. grpc://127.0.0.1:13000")
    return host, port


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///path`` URL (its query, if any, dropped)."""
    return url.split(":///", 1)[1].split("?", 1)[0] if ":///" in url else ""


def _passwords(url: str) -> list[tuple[str | None, str]]:
    """The passwords of ``url``: (None, the userinfo password) and (key, each query password)."""
    rest = url.split("://", 1)[1] if "://" in url else ""
    found: list[tuple[str | None, str]] = [(m["key"], m["secret"]) for m in _QUERY_IN_URL.finditer(rest)]
    # The user part ends at the last "@" outside the query passwords: a raw password may hold "@", "/", "?" or spaces.
    rest = _QUERY_IN_URL.sub("", rest)
    userinfo = rest.rsplit("@", 1)[0] if "@" in rest else ""
    if ":" in userinfo:
        found.append((None, userinfo.split(":", 1)[1]))
    return [(key, secret) for key, secret in found if secret]


def _forms(secret: str) -> set[str]:
    """``secret`` as typed, percent- or form-decoded, and percent- or form-encoded: how it may be printed."""
    plain = {secret, unquote(secret), unquote_plus(secret)}
    return plain | {quote(p, safe="") for p in plain} | {quote_plus(p, safe="") for p in plain}
