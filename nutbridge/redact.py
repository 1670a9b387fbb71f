"""Keep secrets out of what leaves: a URL's password never reaches a log line or an error, and a capture of a
device's answers (``nutbridge capture``) has its serials, addresses and ids replaced by stable placeholders."""

from __future__ import annotations

import re
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

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


# --- a capture's answers: what each key, tag or pattern holds, and its stand-in ---------------------------------

SECRET_WORDS = ("password", "passwd", "pwd", "token", "secret", "apikey", "cookie", "sessionid")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
MAC = re.compile(r"(?<![0-9A-Fa-f:-])[0-9A-Fa-f]{2}(?:([:-])[0-9A-Fa-f]{2})(?:\1[0-9A-Fa-f]{2}){4}(?![0-9A-Fa-f:-])")
XML_FIELD = re.compile(r"<([A-Za-z_][\w.-]{0,64})>([^<]{1,200})</\1>")
MIN_VALUE = 4  # shorter values ("1", "ok") identify nobody, and replacing them everywhere would wreck the text
# Words a flag holds (<web-tokens>true</web-tokens>): no secret, and JSON's bare words must stay as they are.
PLAIN_WORDS = frozenset({"true", "false", "null", "none", "yes", "no", "enabled", "disabled", "unknown"})
KINDS = {  # the words of the report, by kind
    "serial": "serial numbers",
    "id": "site and user ids",
    "name": "site and user names",
    "email": "e-mail addresses",
    "mac": "MAC addresses",
    "secret": "passwords and tokens",
}


def kind_of(key: str) -> str | None:
    """What a JSON key or XML tag holds that must not leave the house, judged by its name; None: nothing."""
    k = re.sub(r"[^a-z0-9]", "", key.lower())
    if any(word in k for word in SECRET_WORDS):
        return "secret"
    if "email" in k:
        return "email"
    if k in ("sn", "din", "vin") or k.endswith(("serial", "serialnum", "serialnumber", "serialno", "din", "gatewayid")):
        return "serial"
    if k.endswith(("siteid", "userid", "ownerid", "installerid", "accountid", "systemid", "customerid")):
        return "id"
    if k in ("mac", "macaddr", "macaddress") or k.endswith("mac"):
        return "mac"
    if k.endswith(("sitename", "username", "ownername", "installername")):
        return "name"
    return None


@dataclass
class Redactor:
    """Stable placeholders: ``learn`` what answers hold (by key, tag and pattern), then ``apply`` to each text.

    Learning everything first matters: a serial found under a key in one answer is replaced in all of them,
    also where it stands alone (in an XML tag, in a message). Placeholders keep a value's shape where a parser
    could care: a serial of digits becomes digits of the same length (9000…0001, still a JSON number if it was
    one), a MAC a MAC from the documentation range (RFC 7042), an e-mail an e-mail at example.com."""

    placeholders: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)  # value (as each answer may spell it) → kind
    values: Counter[str] = field(default_factory=Counter)  # kind → distinct values
    places: Counter[str] = field(default_factory=Counter)  # kind → replacements made

    def add(self, kind: str, value: object) -> None:
        import json  # here and in learn: only a capture redacts, and the configuration imports this module

        if isinstance(value, bool) or not isinstance(value, str | int):
            return
        text = str(value).strip()
        if len(text) < MIN_VALUE or text.lower() in PLAIN_WORDS or text in self.placeholders:
            return
        if text in self.placeholders.values():
            return
        self.values[kind] += 1
        stand_in = placeholder(kind, text, self.values[kind])
        # as the answer may spell it: JSON escapes non-ASCII (M\u00fcller) and some servers escape "/" too
        spellings = {text, json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]}
        for spelling in spellings | {s.replace("/", "\\/") for s in spellings}:
            self.kinds[spelling], self.placeholders[spelling] = kind, stand_in

    def learn(self, text: str) -> None:
        """Everything in ``text`` to replace: values under telling keys (JSON) or tags (XML), e-mails and MACs."""
        import json

        try:
            self._walk(json.loads(text))
        except ValueError:
            for tag, value in XML_FIELD.findall(text):
                if kind := kind_of(tag):
                    self.add(kind, value)
        for found in EMAIL.finditer(text):
            self.add("email", found.group())
        for found in MAC.finditer(text):
            self.add("mac", found.group())

    def _walk(self, data: Any, kind: str | None = None) -> None:
        if isinstance(data, dict):
            for key, value in data.items():
                self._walk(value, kind_of(str(key)) or kind)
        elif isinstance(data, list):
            for item in data:
                self._walk(item, kind)
        elif kind is not None:
            self.add(kind, data)

    def apply(self, text: str, *, count: bool = True) -> str:
        """``text`` with every learned value replaced, longest first (a serial inside a longer id goes too);
        ``count``: the replacements count in ``summary``."""
        if not self.placeholders:
            return text
        ordered = sorted(self.placeholders, key=len, reverse=True)
        pattern = re.compile("|".join(self._bounded(value) for value in ordered))

        def swap(found: re.Match[str]) -> str:
            self.places[self.kinds[found.group()]] += count
            return self.placeholders[found.group()]

        return pattern.sub(swap, text)

    def _bounded(self, value: str) -> str:
        """A pattern for ``value`` standing alone: a number not inside a longer one (but a serial of digits inside
        a meter's serial, 1220…01EIM1, goes), a word not inside a longer word; a secret wherever it is."""
        if self.kinds[value] == "secret":
            return re.escape(value)
        edge = r"\d" if value.isdigit() else "[A-Za-z0-9]"
        return rf"(?<!{edge}){re.escape(value)}(?!{edge})"

    def summary(self) -> dict[str, dict[str, int]]:
        """Per kind: how many distinct values were replaced, in how many places (never the values)."""
        return {kind: {"values": self.values[kind], "places": self.places[kind]} for kind in KINDS if self.values[kind]}


def placeholder(kind: str, value: str, n: int) -> str:
    """The stand-in for the ``n``th value of ``kind``; digits stay digits, so a bare JSON number stays one."""
    if value.isdigit():
        return "9" + str(n).zfill(len(value) - 1)
    if kind == "secret":
        return "REDACTED"
    if kind == "email":
        return f"user{n}@example.com"
    if kind == "mac":
        return f"00:00:5e:00:53:{n % 256:02x}"
    return f"{kind.upper()}{n:04d}"
