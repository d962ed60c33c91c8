"""Counting the SQL statements a path sends, as the statement-budget tests of refunds and notifications do."""

from __future__ import annotations

import re

from django.test.utils import CaptureQueriesContext

#: Transaction control is not counted: only the statements that read or write rows.
CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def statements(captured: CaptureQueriesContext) -> list[str]:
    """The captured SQL statements less transaction control."""
    return [
        query["sql"]
        for query in captured.captured_queries
        if not query["sql"].lstrip().upper().startswith(CONTROL)
    ]


def listing(sql: list[str]) -> str:
    """One line a statement: its verb and table (and FOR UPDATE), so a failure says where they went."""
    lines = []
    for text in sql:
        table = re.search(r'(?:FROM|UPDATE|INTO)\s+"(\w+)"', text)
        lock = " FOR UPDATE" if "FOR UPDATE" in text else ""
        lines.append(f"{text.split(None, 1)[0]} {table.group(1) if table else text[:60]}{lock}")
    return f"{len(sql)} statements: " + "; ".join(lines)
