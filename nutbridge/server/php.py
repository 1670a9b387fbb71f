"""The few PHP 8 behaviours Solar Protocol's v1 API shows its clients, so the legacy routes answer byte for byte:
``json_encode`` with its default flags, ``intval``, numeric strings and their loose comparison, ``echo`` of a float.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

# PHP 8's numeric strings: optional whitespace, a sign, digits with an optional fraction and exponent.
NUMERIC = re.compile(r"^[ \t\n\r\v\f]*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?[ \t\n\r\v\f]*$")
LEADING_NUMERIC = re.compile(r"^[ \t\n\r\v\f]*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
WHITESPACE = " \t\n\r\v\f"
INT_MAX, INT_MIN = 2**63 - 1, -(2**63)


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
    """``intval($string)`` (PHP 7.1+): the leading number, fraction and exponent included, truncated toward zero
    (``"1e1"`` is 10, ``"0.7e1"`` 7); 0 when there is none or it is infinite, PHP_INT_MAX/MIN beyond them."""
    match = LEADING_NUMERIC.match(text)
    if match is None:
        return 0
    digits = match[0].lstrip(WHITESPACE)
    if "." not in match[1] and match[3] is None:
        return max(INT_MIN, min(INT_MAX, int(digits)))  # an integer beyond 64 bits is a float in PHP: capped
    value = float(digits)
    if not math.isfinite(value):
        return 0
    if not INT_MIN <= value < INT_MAX:
        return INT_MAX if value > 0 else INT_MIN
    return int(value)


def array_key(value: float) -> int:
    """The integer key PHP 8 makes of a float array offset: truncated toward zero; NaN and ±INF are 0, and
    beyond 64 bits it wraps modulo 2**64 (so ``$a[-1.0E21]`` is ``$a[-3875820019684212736]``)."""
    if not math.isfinite(value):
        return 0
    return (int(value) - INT_MIN) % 2**64 + INT_MIN


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
    """``$_GET`` from a query: the last value of a key wins, and ``key[]=`` / ``key[x]=`` make an array.

    Names as PHP registers them: cut at a NUL byte, leading spaces dropped, spaces and dots before the first
    ``[`` made ``_``; when no ``]`` follows it, that ``[`` and any space, dot or ``[`` after it too
    (``a[b.c`` is ``a_b_c``); a name that is empty before its ``[`` is dropped.
    """
    params: dict[str, Param] = {}
    for raw, value in pairs:
        key = raw.split("\0", 1)[0].lstrip(" ")
        name, bracket, rest = key.partition("[")
        name = name.replace(" ", "_").replace(".", "_")
        if not name:
            continue
        if bracket and "]" in rest:
            current = params.get(name)
            params[name] = [*current, value] if isinstance(current, list) else [value]
        else:
            params[name + ("_" + re.sub(r"[ .\[]", "_", rest) if bracket else "")] = value
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
