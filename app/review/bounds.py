"""Bounds on the shape of an untrusted request document (pure).

One walk over the whole parsed JSON body, before field validation, enforces what no single field
type can: a nesting depth cap for every free-form object (``params``, ``account``, positions,
market-context ``domains`` ...), size caps (keys per object, items per array, string length,
nodes in total), no control characters in any string that is stored, and JSON numbers that
serialise back (finite floats, integers within 64 bits). A violation is a 422 naming the path.

Control characters: none at all in object keys; in string values TAB, LF and CR are allowed
(free text such as a rationale may carry line breaks), every other C0 control, DEL and the C1
controls are refused (PostgreSQL cannot store NUL, and the rest only corrupt logs and audit).
"""

from __future__ import annotations

import re
from typing import Any, cast

MAX_DEPTH = 32  # nesting levels of the whole request (the fixed schema itself uses 5)
MAX_OBJECT_KEYS = 1_000
MAX_ARRAY_ITEMS = 5_000
MAX_STRING_CHARS = 8_192
MAX_KEY_CHARS = 256
MAX_NODES = 50_000
_INT64 = 2**63

_VALUE_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# The same rule as a field pattern, for stored strings outside the review request.
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
_KEY_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


# A node's path as a linked list (parent, key): pushing a child is one small tuple, not a copy
# of its parent's path; the dotted path is spelled out only for the node that breaks a bound.
_Path = tuple["_Path", object] | None


def _where(path: _Path) -> str:
    names: list[str] = []
    while path is not None:
        path, name = path
        names.append(str(name))
    return ".".join(reversed(names)) or "body"


def document_problem(data: Any) -> tuple[str, str] | None:
    """``(path, problem)`` for the first bound ``data`` breaks, or ``None``."""
    stack: list[tuple[Any, _Path, int]] = [(data, None, 1)]
    nodes = 0
    while stack:
        node, path, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            return _where(path), f"more than {MAX_NODES} values in the request"
        if isinstance(node, dict):
            obj = cast(dict[Any, Any], node)
            if depth > MAX_DEPTH:
                return _where(path), f"nested deeper than {MAX_DEPTH} levels"
            if len(obj) > MAX_OBJECT_KEYS:
                return _where(path), f"more than {MAX_OBJECT_KEYS} keys"
            for key, value in obj.items():
                name = str(key)
                if len(name) > MAX_KEY_CHARS:
                    return _where(path), f"a key is longer than {MAX_KEY_CHARS} characters"
                if _KEY_CONTROLS.search(name):
                    return _where(path), "a key contains a control character"
                stack.append((value, (path, name), depth + 1))
        elif isinstance(node, list):
            items = cast(list[Any], node)
            if depth > MAX_DEPTH:
                return _where(path), f"nested deeper than {MAX_DEPTH} levels"
            if len(items) > MAX_ARRAY_ITEMS:
                return _where(path), f"more than {MAX_ARRAY_ITEMS} items"
            stack.extend((value, (path, i), depth + 1) for i, value in enumerate(items))
        elif isinstance(node, str):
            if len(node) > MAX_STRING_CHARS:
                return _where(path), f"string longer than {MAX_STRING_CHARS} characters"
            if _VALUE_CONTROLS.search(node):
                return _where(path), "string contains a control character"
        elif isinstance(node, float):
            if node != node or node in (float("inf"), float("-inf")):
                return _where(path), "number is not finite"
        elif isinstance(node, int) and not isinstance(node, bool) and not -_INT64 <= node < _INT64:
            return _where(path), "integer outside the 64-bit range"
    return None


def nesting_exceeds(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether a JSON text nests deeper than ``limit`` (for bodies the parser refused).

    Strings are cut out first so brackets inside them do not count. Used only on the error
    path, to tell "too deep" (422) from "not JSON" (400).
    """
    depth = 0
    for byte in _JSON_STRING.sub(b"", raw):
        if byte in b"[{":
            depth += 1
            if depth > limit:
                return True
        elif byte in b"]}":
            depth -= 1
    return False
