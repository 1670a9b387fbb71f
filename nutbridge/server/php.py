"""The few PHP 8 behaviours Solar Protocol's v1 API shows its clients, so the legacy routes answer byte for byte:
``json_encode`` with its default flags, ``intval``, numeric strings and their loose comparison, ``echo`` of a float.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

# PHP 8's numeric strings: optional whitespace, a sign, digits with an optional fraction and exponent.
NUMERIC = re.compile(r"^[ \t\n\r\v\f]*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?[ \t\n\r\v\f]*$")
LEADING_NUMERIC = re.compile(r"^[ \t\n\r\v\f]*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
LEADING_INT = re.compile(r"^[ \t\n\r\v\f]*([+-]?\d+)")


def json_encode(value: Any) -> str:
    """``json_encode($value)``: no spaces, ``/`` escaped, non-ASCII as ``\\uXXXX``; an empty array is ``[]``."""

    def php(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: php(x) for k, x in v.items()} if v else []
        if isinstance(v, list | tuple):
            return [php(x) for x in v]
        return v

    return json.dumps(php(value), separators=(",", ":"), ensure_ascii=True).replace("/", "\\/")


def intval(text: str) -> int:
    """``intval($string)``: the leading integer, 0 if there is none."""
    match = LEADING_INT.match(text)
    return int(match[1]) if match else 0


def is_numeric(text: str) -> bool:
    """PHP 8's numeric string."""
    return NUMERIC.match(text) is not None


def number(text: str) -> float:
    """The value PHP 8 takes from a numeric or leading-numeric string in arithmetic (0 when there is none)."""
    match = LEADING_NUMERIC.match(text)
    return float(match[0]) if match else 0.0


def compare(text: str, n: int) -> int:
    """``$text <=> $n`` in PHP 8: numerically for a numeric string, else ``$n`` as a string, compared as strings."""
    if is_numeric(text):
        value = float(text)
        return (value > n) - (value < n)
    other = str(n)
    return (text > other) - (text < other)


def echo_float(value: float) -> str:
    """``echo $float`` with PHP's default precision (14): ``13.35``, ``0``, ``1.0E-5``."""
    text = f"{value:.14G}"
    if "E" not in text:
        return text
    mantissa, exponent = text.split("E")
    if "." not in mantissa:
        mantissa += ".0"
    sign = "-" if exponent.startswith("-") else "+"
    return f"{mantissa}E{sign}{int(exponent.lstrip('+-'))}"


Param = str | list[str]


def get_params(pairs: Iterable[tuple[str, str]]) -> dict[str, Param]:
    """``$_GET`` from a query: the last value of a key wins, and ``key[]=`` / ``key[x]=`` make an array."""
    params: dict[str, Param] = {}
    for key, value in pairs:
        base, bracket, _ = key.partition("[")
        if bracket and key.endswith("]") and base:
            current = params.get(base)
            params[base] = [*current, value] if isinstance(current, list) else [value]
        else:
            params[key] = value
    return params


def intval_param(value: Param) -> int:
    """``intval()`` of a parameter: an array is 1 when it has elements."""
    return (1 if value else 0) if isinstance(value, list) else intval(value)


def echo(value: Any) -> str:
    """``echo $value`` for what json_decode gives: a string as is, true as 1, null and false as nothing."""
    if isinstance(value, bool):
        return "1" if value else ""
    if value is None:
        return ""
    if isinstance(value, float):
        return echo_float(value)
    if isinstance(value, list | dict):
        return "Array"
    return str(value)
