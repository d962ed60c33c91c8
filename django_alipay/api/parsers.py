"""Read the REST API's JSON bodies so that every malformed one is a ``parse_error``, never a server error."""

from __future__ import annotations

import codecs
import json
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils import json as drf_json

__all__ = ["MAX_DEPTH", "StrictJSONParser"]

#: How deeply arrays and objects may nest; the API's bodies are flat objects (two levels at most).
MAX_DEPTH = 32


def _depth(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON ``text`` (brackets inside strings do not count)."""
    deepest = depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, refusing bodies nested deeper than :data:`MAX_DEPTH` and any undecodable body.

    DRF's own parser turns a ``ValueError`` into a 400 but lets ``RecursionError`` (a few thousand nested
    brackets) through as a 500; here every malformed body raises ``ParseError``, which the API answers
    with its error body.
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        context = parser_context or {}
        encoding = context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
        except (ValueError, LookupError) as exc:
            raise ParseError(f"JSON parse error - the body is not text in {encoding}") from exc
        # Counting brackets is quick; the exact scan runs only for a body with enough of them to matter.
        if text.count("[") + text.count("{") > MAX_DEPTH and _depth(text) > MAX_DEPTH:
            raise ParseError(f"JSON parse error - nested more than {MAX_DEPTH} levels deep")
        try:
            return json.loads(text, parse_constant=drf_json.strict_constant if self.strict else None)
        except (ValueError, RecursionError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
