"""Name odd characters, and find the ones a web page or a word processor pastes in.

A no-break space after `key:` or typographic quotes around a value look right in an
editor, but YAML sees text where the person sees a space or quotes: the key is not a
key, the quotes are part of the name. The loader reports them by name and position
instead of the confusing error that follows from them.
"""

from __future__ import annotations

import unicodedata
from typing import Optional

# Unicode spaces other than U+0020 (category Zs, written out: start-up scans nothing).
LOOKALIKE_SPACES = frozenset(
    "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u202f\u205f\u3000"
)
OPENING_QUOTES = frozenset("\u201c\u2018\u201e\u201a\u201f\u201b\u00ab\u2039")
CLOSING_QUOTES = frozenset("\u201d\u2019\u00bb\u203a")
TYPOGRAPHIC_QUOTES = OPENING_QUOTES | CLOSING_QUOTES

_NAMES = {
    "\t": "TAB",
    "\n": "LINE FEED",
    "\r": "CARRIAGE RETURN",
    "\x00": "NUL",
    "\x85": "NEXT LINE",
    "\x1b": "ESCAPE",
    "\x7f": "DELETE",
}


def char_name(char: str) -> str:
    """U+00A0 (NO-BREAK SPACE): the code point and its Unicode name, never the raw character."""
    name = unicodedata.name(char, "") or _NAMES.get(char, "")
    if not name and 0xD800 <= ord(char) <= 0xDFFF:
        name = "lone surrogate"
    return f"U+{ord(char):04X}" + (f" ({name})" if name else "")


def _quotes_named(text: str) -> str:
    found = sorted({c for c in text if c in TYPOGRAPHIC_QUOTES})
    names = [char_name(c) for c in found]
    return " and ".join(names) if len(names) < 3 else ", ".join(names)


def _space_message(text: str, index: int) -> str:
    name = char_name(text[index])
    before = text[:index].rstrip("".join(LOOKALIKE_SPACES))
    if before.endswith(":"):
        key = before.split()[-1] if before.split() else before
        if len(key) > 40:
            return f"{name} after a colon is not a space to YAML: this is text, not a key"
        return f"{name} after '{key}' is not a space to YAML: this is text, not a key"
    if not before.strip():
        return f"{name} in the indentation: YAML indents with plain spaces only"
    return f"{name} looks like a space, but YAML reads it as part of the text"


PASTED_HINT = "retype it as a plain space; it was probably pasted from a web page"
QUOTES_HINT = (
    "use the straight quotes \" or ', or none; these were probably pasted from a web page "
    "or a word processor"
)


def pasted_in_value(value: str) -> Optional[tuple[int, str, str]]:
    """(index, message, hint) for a plain (unquoted) scalar that holds a lookalike space,
    or is wrapped in typographic quotes."""
    for index, char in enumerate(value):
        if char in LOOKALIKE_SPACES:
            return index, _space_message(value, index), PASTED_HINT
    if value[:1] in OPENING_QUOTES or value[-1:] in CLOSING_QUOTES:
        message = f"typographic quotes {_quotes_named(value)} are part of the value to YAML"
        return 0, message, QUOTES_HINT
    return None


def pasted_in_line(line: str) -> Optional[tuple[int, str, str]]:
    """The same for one source line that YAML could not parse: the first lookalike space
    or typographic quote outside quotes and comments."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
            continue
        if char == "#" and (index == 0 or line[index - 1] in " \t"):
            return None
        if char in "\"'" and (index == 0 or line[index - 1] in " \t[{,:-"):
            quote = char
        elif char in LOOKALIKE_SPACES:
            return index, _space_message(line, index), PASTED_HINT
        elif char in TYPOGRAPHIC_QUOTES:
            return index, f"typographic quote {char_name(char)} is not a YAML quote", QUOTES_HINT
    return None
