"""parseconf's words and quoting, checked against lines from NUT's own docs (docs/sock-protocol.txt) and sources
(common/parseconf.c, drivers/dstate.c, server/netset.c)."""

from __future__ import annotations

import pytest

from nutbridge.nut.sock_wire import MAX_ARGS, MAX_VALUE, MAX_WORD, WireError, escape, quote, split


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('SETINFO ups.status "OB LB"\n', ["SETINFO", "ups.status", "OB LB"]),
        (
            "INSTCMD load.on 10 TRACKING 1bd31808-cb49-4aec-9d75-d056e6f018d2\n",
            ["INSTCMD", "load.on", "10", "TRACKING", "1bd31808-cb49-4aec-9d75-d056e6f018d2"],
        ),
        ('SET ups.id "Data room" TRACKING 2dedb58a\n', ["SET", "ups.id", "Data room", "TRACKING", "2dedb58a"]),
        ("SETFLAGS ups.id RW STRING", ["SETFLAGS", "ups.id", "RW", "STRING"]),
        ("ADDRANGE input.transfer.low 95 100\n", ["ADDRANGE", "input.transfer.low", "95", "100"]),
        ('PID "StrangeOS process identifier"', ["PID", "StrangeOS process identifier"]),
        ("DUMPALL\r\n", ["DUMPALL"]),  # \r is space to C's isspace
        ("", []),
        ("   # only a comment\n", []),
        ("PING # and a comment", ["PING"]),
        ("driver=nutbridge", ["driver", "=", "nutbridge"]),  # = is a word of its own
        ('a\\ b "c\\"d" e\\#f', ["a b", 'c"d', "e#f"]),  # \ takes the next character literally
        ('ab"cd', ['ab"cd']),  # a quote inside a bare word is an ordinary character
        ('""', [""]),
        ('SETINFO x "t\tab\x01"', ["SETINFO", "x", "tab"]),  # parseconf drops what is not 0x20..0x7f
    ],
)
def test_split_follows_parseconf(line: str, words: list[str]) -> None:
    assert split(line) == words


@pytest.mark.parametrize(
    "line",
    [
        'SETINFO x "a # b"',  # parseconf: "Unbalanced word due to unescaped # in quotes"
        'SETINFO x "never closed',
        "PING \\",
        "PING " + "x" * (MAX_WORD + 1),
        " ".join(["w"] * (MAX_ARGS + 1)),
    ],
)
def test_split_refuses_what_parseconf_cannot_take_whole(line: str) -> None:
    with pytest.raises(WireError):
        split(line)


def test_split_takes_a_line_at_the_bounds() -> None:
    assert split(" ".join(["w" * MAX_WORD] * MAX_ARGS)) == ["w" * MAX_WORD] * MAX_ARGS


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        ("OB LB", '"OB LB"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("C:\\ups", '"C:\\\\ups"'),
        ("#1", '"\\#1"'),  # PCONF_ESCAPE is #, \ and "
    ],
)
def test_quote_is_pconf_encode_in_quotes_and_split_undoes_it(value: str, wire: str) -> None:
    assert quote(value) == wire
    assert split(f"SETINFO x {wire}") == ["SETINFO", "x", value]


def test_escape_cuts_at_the_limit_never_inside_an_escape() -> None:
    assert escape("a" * 300) == "a" * MAX_VALUE
    assert escape("ab#", limit=3) == "ab"
    assert escape("ab#", limit=4) == "ab\\#"
