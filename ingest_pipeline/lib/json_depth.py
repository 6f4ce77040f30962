"""How deep a JSON text nests, judged before it is parsed.

JSON nested deeper than MAX_JSON_DEPTH levels is refused before it is parsed (`json_too_deep`):
deep enough nesting would exhaust Python's recursion limit in the parser and after it. Every
reader of JSON from an upload (JSON log lines, NDJSON lines, webhook bodies, JSON cells of CSV)
asks first and refuses with TOO_DEEP. The elements of a JSON array are judged once the parser
has found where each ends (lib/json_arrays.py: its RecursionError is caught there, and such an
element skipped by its brackets), each too-deep element a reject of its own.
"""

from __future__ import annotations

import re

MAX_JSON_DEPTH = 64  # arrays/objects nested deeper than this are refused, not parsed
TOO_DEEP = f"nested deeper than {MAX_JSON_DEPTH} levels"


def json_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests arrays/objects deeper than limit. Counting brackets first keeps it
    one fast pass for almost every record; brackets inside strings are not nesting."""
    if text.count("{") + text.count("[") <= limit:
        return False
    depth = 0
    for match in _JSON_BRACKETS.finditer(_JSON_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth = max(depth - 1, 0)
    return False


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_JSON_BRACKETS = re.compile(r"[\[\]{}]")
