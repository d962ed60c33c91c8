"""Every index of the app's tables earns its writes: none is a plain prefix of another index on its table.

Each index is written on every insert, and on every update that changes one of its columns (no status update
of a trade, refund or notification is a HOT update, since their statuses are indexed), so an index that a
wider one already serves costs every write and speeds up no read.
"""

from __future__ import annotations

import pytest

from tests.indexes import app_indexes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("postgresql")]


def test_no_index_is_a_plain_prefix_of_another_on_its_table() -> None:
    indexes = app_indexes()
    redundant = [
        f"{index.table}.{index.name} {index.columns} is served by {other.name} {other.columns}"
        for index in indexes
        if not index.unique and not index.partial
        for other in indexes
        if other.table == index.table and other.name != index.name and not other.partial
        and len(other.columns) > len(index.columns) and other.columns[: len(index.columns)] == index.columns
    ]  # fmt: skip
    assert indexes, "no index found: the query looked in the wrong schema"
    assert redundant == []
