"""How deeply a JSON text nests, found without parsing it.

``json.loads`` recurses once per ``[`` or ``{``: a 200 KB body of brackets raises ``RecursionError``
before any validation runs. Both APIs check the depth with this scanner first and refuse deeper texts.
"""

from __future__ import annotations

import re

# Deeper than any sensible task input or WebSocket frame, far below Python's recursion limit.
MAX_JSON_DEPTH = 64

# A string (skipped whole, so brackets inside it do not count; an unterminated one runs to the end)
# or one bracket. Linear: no nested quantifiers.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


def nesting_depth_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """True as soon as ``text`` opens more than ``limit`` arrays or objects inside each other."""
    depth = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                return True
        elif token in "]}":
            depth = max(0, depth - 1)
    return False
