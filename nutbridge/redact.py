"""Keep secrets out of messages: a URL's password never reaches a log line or an error."""

from __future__ import annotations

import urllib.parse

HIDDEN = "***"


def has_password(url: str) -> bool:
    """True when ``url`` carries a password (``mqtt://user:pw@host``)."""
    try:
        return urllib.parse.urlsplit(url).password is not None
    except ValueError:
        return "@" in url  # unparseable: assume the worst


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``; anything unparseable after ``//`` is hidden up to ``@``."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    netloc = f"{user}:{HIDDEN}@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
