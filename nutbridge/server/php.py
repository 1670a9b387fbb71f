"""The few PHP 8 behaviours Solar Protocol's v1 API shows its clients, so the legacy routes answer byte for byte:
``json_encode`` with its default flags, ``intval``, numeric strings and their loose comparison, ``echo`` of a float.
"""

from __future__ import annotations

import decimal
import json
import math
import re
from collections.abc import Iterable
from typing import Any

# PHP 8's numeric strings: optional whitespace, a sign, digits with an optional fraction and exponent.
NUMERIC = re.compile(r"^[ \t\n\r\v\f]*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?[ \t\n\r\v\f]*$")
LEADING_NUMERIC = re.compile(r"^[ \t\n\r\v\f]*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
WHITESPACE = " \t\n\r\v\f"
INTEGER = re.compile(r"^[ \t\n\r\v\f]*[+-]?\d+[ \t\n\r\v\f]*$")  # a numeric string PHP makes an int of
INT_MAX, INT_MIN = 2**63 - 1, -(2**63)


def json_encode(value: Any, *, unescaped_slashes: bool = False) -> str:
    """``json_encode($value)``: no spaces, ``/`` escaped (not with ``unescaped_slashes``: JSON_UNESCAPED_SLASHES),
    non-ASCII as ``\\uXXXX``; an empty array is ``[]``; floats as PHP writes them (``10``, ``1.0e-5``)."""

    floats = False

    def php(v: Any) -> Any:
        nonlocal floats
        if isinstance(v, dict):
            return {k: php(x) for k, x in v.items()} if v or isinstance(v, JsonObject) else []
        if isinstance(v, list | tuple):
            return [php(x) for x in v]
        if isinstance(v, float):
            floats = True
            return f"{FLOAT_MARK}{json_float(v)}{FLOAT_MARK}"
        return v

    text = json.dumps(php(value), separators=(",", ":"), ensure_ascii=True)
    if floats:  # json writes floats its own way (10.0, 1e-05): PHP's numbers went in as marked strings
        text = MARKED_FLOAT.sub(r"\1", text)
    return text if unescaped_slashes else text.replace("/", "\\/")


class JsonObject(dict[str, Any]):
    """A JSON object as ``json_decode`` without ``true`` gives it: encoded back as an object even when empty."""


FLOAT_MARK = "\0\1"  # no answer's own text holds it: cells, names and settings have no control characters
MARKED_FLOAT = re.compile(r'"\\u0000\\u0001([-0-9.e+]+)\\u0000\\u0001"')


def json_float(value: float) -> str:
    """A float as PHP's json_encode writes it (serialize_precision -1): the shortest digits that read back, no
    ``.0`` on a whole number, an exponent below 1e-4 and from 1e17 on (``1.0e-5``, ``1.0e+17``)."""
    if not math.isfinite(value):
        return "0"  # PHP fails to encode the whole answer; no answer of ours holds one
    sign, digits, exponent = decimal.Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    point = len(digits) + int(exponent)  # where the decimal point goes after the first digit's position
    minus = "-" if sign else ""
    if text == "0":
        return f"{minus}0"
    if -4 < point <= 17:
        if point <= 0:
            return f"{minus}0.{'0' * -point}{text}"
        if point >= len(text):
            return f"{minus}{text}{'0' * (point - len(text))}"
        return f"{minus}{text[:point]}.{text[point:]}"
    return f"{minus}{text[0]}.{text[1:] or '0'}e{'+' if point > 0 else '-'}{abs(point - 1)}"


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


def leading_number(text: str) -> float:
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
    (``a[b.c`` is ``a_b_c``); a name that is empty before its ``[`` is dropped; a name nested deeper than
    ``max_input_nesting_level`` unsets its variable. An array is kept as its values only: the routes look at
    whether a parameter is an array, never into it (PHP's ``a[x][y]`` is ``{"x": {"y": "1"}}``, here ``["1"]``).
    """
    params: dict[str, Param] = {}
    for raw, value in pairs:
        key = raw.split("\0", 1)[0].lstrip(" ")
        name, bracket, rest = key.partition("[")
        name = name.replace(" ", "_").replace(".", "_")
        if not name:
            continue
        if bracket and "]" in rest and nesting(rest) > MAX_NESTING:
            params.pop(name, None)  # php_register_variable_ex deletes the variable, earlier values too
        elif bracket and "]" in rest:
            current = params.get(name)
            params[name] = [*current, value] if isinstance(current, list) else [value]
        else:
            params[name + ("_" + re.sub(r"[ .\[]", "_", rest) if bracket else "")] = value
    return params


MAX_NESTING = 64  # PHP's default max_input_nesting_level


def nesting(rest: str) -> int:
    """How many ``[`` levels PHP walks in a name whose first ``[`` is followed by ``rest``: one per index, the
    next starting right after a ``]`` (``a[x]y[z]`` is one, an unclosed last ``[`` counts)."""
    level, start = 1, 0
    while (end := rest.find("]", start)) >= 0 and rest[end + 1 : end + 2] == "[":
        level, start = level + 1, end + 2
    return level


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


def multiply(text: str, factor: float | int | None) -> float | int:
    """``$numericString * $factor``: an integer when both are (``"2" * 1``), else a float; null counts as 0."""
    if isinstance(factor, float) or not INTEGER.match(text):
        return leading_number(text) * (factor or 0)
    product = int(text) * (factor or 0)
    return product if INT_MIN <= product <= INT_MAX else float(product)
