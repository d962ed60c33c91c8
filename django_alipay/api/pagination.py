"""Page the API's lists with ``limit`` and ``offset``, refusing values the schema does not promise to take."""

from __future__ import annotations

import re
from typing import Any, Final

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

__all__ = ["Pagination"]

_DIGITS: Final = re.compile(r"[0-9]{1,10}")


class Pagination(LimitOffsetPagination):
    """Limit/offset pages of 50 (at most 500); a malformed ``limit`` or ``offset`` is a 400, not ignored."""

    default_limit = 50
    max_limit = 500
    max_offset = 1_000_000_000

    def _number(self, request: Request, name: str, *, minimum: int, maximum: int) -> int | None:
        text = request.query_params.get(name)
        if text is None:
            return None
        if not _DIGITS.fullmatch(text) or not minimum <= int(text) <= maximum:
            raise ValidationError({name: [f"{name} must be a whole number from {minimum} to {maximum}."]})
        return int(text)

    def get_limit(self, request: Request) -> int:
        """The page size asked for, or the default."""
        limit = self._number(request, self.limit_query_param, minimum=1, maximum=self.max_limit)
        return self.default_limit if limit is None else limit

    def get_offset(self, request: Request) -> int:
        """The index of the first result asked for, or 0."""
        offset = self._number(request, self.offset_query_param, minimum=0, maximum=self.max_offset)
        return 0 if offset is None else offset

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        """The two query parameters, with their bounds."""
        limit, offset = super().get_schema_operation_parameters(view)
        limit["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_limit}
        offset["schema"] = {"type": "integer", "minimum": 0, "maximum": self.max_offset}
        return [limit, offset]
