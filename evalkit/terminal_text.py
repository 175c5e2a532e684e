"""Text from result files and model names, made safe for a terminal.

A model name or task file may hold ANSI escape sequences (`\\x1b[2J` clears the screen, OSC 8 makes
links, a carriage return overwrites a line). Before such text reaches stdout or stderr, every
control character except newline and tab is shown as a visible escape (`\\u001b`), so it reads as
what it is and drives nothing (the escape is also valid inside a JSON string, so `--format json`
output stays JSON).
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with control characters (C0 but newline and tab, DEL, C1, bidi overrides) escaped."""
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
