"""Masking of credentials inside URIs and connection strings, for display and recording only.

Settings such as the Redis connection string (``host:6379,password=...,ssl=true``), the MLflow
tracking URI (``https://user:password@host``) or a libpq DSN may carry a secret inside an
ordinary string field, which pydantic's ``SecretStr`` cannot protect. Everything that shows or
records configuration (``config show``, MLflow params, reports, logs) passes it through
:func:`mask_secrets`; the clients always get the real value. Kernel-level so that any layer,
logging included, can use it.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
"""What replaces a secret."""

_SECRET_WORDS = r"(?:password|passwd|pwd|secret|token|api_?key|access_?key|private_?key)"

# scheme://user:password@host — the password runs to the last '@' of the authority (an
# unencoded '@' inside it stays masked); the user, host, port and path are kept.
_URI_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s]*):[^/?#\s]*@")

# password=..., passwd=..., ?token=...&, sasl.jaas.config's password="..."; values quoted with
# ' or " (libpq, JAAS) or running to the next separator (, ; & whitespace: Redis, URL queries).
_KEY_VALUE = re.compile(
    r"(?P<key>(?<![A-Za-z0-9])[A-Za-z0-9_.\-]*" + _SECRET_WORDS + r"[A-Za-z0-9_.\-]*)"
    r"(?P<sep>\s*=\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^,;&\s'\"]+)",
    re.IGNORECASE,
)

_SECRET_KEY = re.compile(_SECRET_WORDS + r"$", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` and the value of every
    password/token/secret-like ``key=value`` pair replaced by ``***``; other text unchanged."""
    masked = _URI_USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _KEY_VALUE.sub(_mask_value, masked)


def _mask_value(match: re.Match[str]) -> str:
    value = match["value"]
    quote = value[0] if value[0] in "'\"" else ""
    return f"{match['key']}{match['sep']}{quote}{MASK}{quote}"


def is_secret_key(key: str) -> bool:
    """Whether a mapping key names a secret (``password``, ``api_key``, ``auth_token``...);
    ``password_file`` and the like name where one is, not the secret, and are not."""
    return bool(_SECRET_KEY.search(key))


def mask_mapping(value: Any) -> Any:
    """A copy of a JSON-like structure with every string masked by :func:`mask_secrets` and the
    non-empty string value of every secret-named key (:func:`is_secret_key`) replaced whole."""
    if isinstance(value, dict):
        return {
            k: (
                MASK
                if isinstance(k, str) and is_secret_key(k) and isinstance(v, str) and v.strip("*")
                else mask_mapping(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_mapping(v) for v in value]
    if isinstance(value, str):
        return mask_secrets(value)
    return value
