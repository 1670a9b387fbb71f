"""NUT's driver-socket wire: a value quoted as parseconf's ``pconf_encode`` does, and a received line split into
words by parseconf's rules (common/parseconf.c), within NUT's bounds. Pure: no I/O.

parseconf's rules, as its state machine applies them: words are split on whitespace; ``"`` starts and ends a
word that may hold spaces; ``\\`` takes the next character literally (inside quotes too); ``#`` starts a comment
outside quotes and is an error inside them; ``=`` is a word of its own; characters outside 0x20..0x7f are dropped.
NUT bounds a word to 512 characters and a line to 32 words (it silently truncates or drops what is past them);
here a line past them is refused, as is one that ends inside quotes or after a ``\\`` (parseconf would join it
to the next line, which a line-based reader never does).
"""

from __future__ import annotations

from nutbridge.errors import NutbridgeError

MAX_ARGS = 32  # PCONF_DEFAULT_ARG_LIMIT
MAX_WORD = 512  # PCONF_DEFAULT_WORDLEN_LIMIT
MAX_VALUE = 255  # ST_MAX_VALUE_LEN - 1: what dstate_setinfo keeps of a value, raw and encoded alike
ESCAPED = '#\\"'  # PCONF_ESCAPE
SPACE = " \t\n\v\f\r"  # C's isspace


class WireError(NutbridgeError):
    """A line that is not parseconf text, or past NUT's bounds."""


def escape(value: str, limit: int = MAX_VALUE) -> str:
    """``value`` with ``#``, ``\\`` and ``"`` escaped by a ``\\``, cut at ``limit`` characters (never inside an
    escape), as pconf_encode does into a buffer of ``limit + 1``."""
    out: list[str] = []
    size = 0
    for ch in value:
        piece = "\\" + ch if ch in ESCAPED else ch
        if size + len(piece) > limit:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


def quote(value: str) -> str:
    """``value`` as one word on the wire: escaped, in double quotes (``"OB LB"``)."""
    return f'"{escape(value[:MAX_VALUE])}"'


class _Words:
    """parseconf's state machine over one line: ``feed`` each character, then ``finish``."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.word: list[str] = []
        self.in_word = self.quoted = self.literal = self.comment = False

    def end(self) -> None:
        text = "".join(self.word)
        if len(text) > MAX_WORD:
            raise WireError(f"a word longer than {MAX_WORD} characters")
        if len(self.words) >= MAX_ARGS:
            raise WireError(f"more than {MAX_ARGS} words")
        self.words.append(text)
        self.word.clear()
        self.in_word = False

    def add(self, ch: str) -> None:
        if 0x20 <= ord(ch) <= 0x7F:  # parseconf's addchar (CVE-2012-2944): nothing else reaches a word
            self.word.append(ch)

    def feed_quoted(self, ch: str) -> None:
        if ch == '"':
            self.quoted = False
            self.end()
        elif ch == "\\":
            self.literal = True
        elif ch == "#":
            raise WireError("unbalanced word due to unescaped # in quotes")
        else:
            self.add(ch)

    def feed(self, ch: str) -> None:
        if self.literal:
            self.literal = False
            self.add(ch)
        elif self.quoted:
            self.feed_quoted(ch)
        elif ch == "#":
            self.comment = True
        elif ch in SPACE:
            if self.in_word:
                self.end()
        elif ch == "\\":
            self.in_word = self.literal = True
        elif ch == '"' and not self.in_word:  # inside a bare word a quote is an ordinary character
            self.quoted = True
        elif ch == "=":  # a word of its own
            if self.in_word:
                self.end()
            self.word.append(ch)
            self.end()
        else:
            self.in_word = True
            self.add(ch)

    def finish(self) -> list[str]:
        if self.quoted:
            raise WireError("a quoted word not closed at the end of the line")
        if self.literal:
            raise WireError("a \\ at the end of the line")
        if self.in_word:
            self.end()
        return self.words


def split(line: str) -> list[str]:
    """The words of one line (its trailing newline optional). Raises WireError for an unbalanced line or one past
    NUT's bounds."""
    words = _Words()
    for ch in line.removesuffix("\n"):
        words.feed(ch)
        if words.comment:
            break
    return words.finish()
