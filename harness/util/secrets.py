"""Secrets the harness must never write: API keys and credentials in URLs.

Whatever reads a secret registers it here (`register`, `public_url` for a URL's user and
password, `from_config` for every `base_url` and `api_key_env` in a run's configuration);
`scrub` then replaces every registered secret, any `user:password@` in a URL and the value of any
credential-like query parameter in a URL (`?api-key=`, `&token=`, `password=`, `sig=`, ...) by `***`.
Everything the harness stores goes through `scrub`: records, the judge's reply cache, the
saved Hydra configuration (`.hydra/*.yaml`), the log (a filter on the root handlers) and the
run folder's lock file. The HTTP clients' per-request INFO lines (httpx logs every URL) are
turned off.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"
MIN_LENGTH = 4  # shorter values would mask ordinary words
URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-zA-Z][\w+.-]*://)(?P<userinfo>[^/@\s'\"]+)@")
URL = re.compile(r"\b[a-zA-Z][\w+.-]*://[^\s'\"<>]+")
# A query parameter whose name says it carries a credential: key, api-key, api_key, token, access_token, password,
# secret, signature, sig, auth, credential, ... (any name containing one of these words).
SECRET_PARAM = re.compile(r"(?i)(?P<name>[?&;](?:[\w.\-]*?)(?:key|token|passw(?:or)?d|pwd|secret|sig(?:nature)?|auth\w*|"
                          r"credential|session)[\w.\-]*=)(?P<value>[^&#;\s'\"<>]+)")
QUIET_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "urllib3")

_known: set[str] = set()


def register(*values: str | None) -> None:
    """Remember secret values (and their Basic-auth and URL-quoted forms) for `scrub`."""
    for value in values:
        if value and len(value) >= MIN_LENGTH:
            _known.add(value)


def register_credentials(user: str, password: str) -> None:
    register(password, f"{user}:{password}", base64.b64encode(f"{user}:{password}".encode()).decode())


def public_url(url: str | None) -> str | None:
    """The URL without user:password@ (registered as secrets on the way) and without query or fragment."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password:
        register_credentials(unquote(parts.username or ""), unquote(parts.password))
        register(parts.password)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def scrub(text: str) -> str:
    """`text` with URL credentials and every registered secret replaced by ***."""
    if not text:
        return text
    text = URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    if "://" in text:
        text = URL.sub(lambda m: SECRET_PARAM.sub(lambda q: f"{q['name']}{MASK}", m[0]), text)
    for secret in sorted(_known, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def from_config(node: Any) -> None:
    """Register the secrets a configuration points at: URL credentials, keys named by `*api_key_env`."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str) and str(key).endswith("api_key_env"):
                register(os.environ.get(value))
            from_config(value)
    elif isinstance(node, list | tuple):
        for value in node:
            from_config(value)
    elif isinstance(node, str) and "://" in node:
        for url in URL.finditer(node):  # credential-like query parameters: their values wherever they appear
            register(*(unquote(q["value"]) for q in SECRET_PARAM.finditer(url[0])))
            register(*(q["value"] for q in SECRET_PARAM.finditer(url[0])))
        for match in URL_CREDENTIALS.finditer(node):
            user, _, password = match["userinfo"].partition(":")
            if password:
                register_credentials(unquote(user), unquote(password))
                register(password)


class ScrubFilter(logging.Filter):
    """Scrubs each log record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


def guard_logging() -> None:
    """Scrub every root handler's output and silence the HTTP clients' per-request INFO lines."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ScrubFilter) for f in handler.filters):
            handler.addFilter(ScrubFilter())
