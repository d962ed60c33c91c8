"""Every index of the app's tables earns its writes: none is a plain prefix of another index on its table.

Each index is written on every insert, and on every update that changes one of its columns (no status update
of a trade, refund or notification is a HOT update, since their statuses are indexed), so an index that a
wider one already serves costs every write and speeds up no read.
"""

from __future__ import annotations

import pytest
from django.db import connection

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("postgresql")]

#: Each index of the app's tables: table, name, columns in order, unique, partial.
_INDEXES = """
SELECT t.relname, i.relname, array_agg(a.attname ORDER BY k.ord), x.indisunique, x.indpred IS NOT NULL
FROM pg_index x
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = current_schema()
CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
WHERE t.relname LIKE 'django\\_alipay\\_%%' AND t.relname NOT LIKE 'django\\_alipay\\_emulator\\_%%'
  AND x.indexprs IS NULL
GROUP BY t.relname, i.relname, x.indisunique, x.indpred
"""


def test_no_index_is_a_plain_prefix_of_another_on_its_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(_INDEXES)
        indexes = cursor.fetchall()
    redundant = [
        f"{table}.{name} {columns} is served by {other} {wider}"
        for table, name, columns, unique, partial in indexes
        if not unique and not partial
        for other_table, other, wider, _unique, other_partial in indexes
        if other_table == table and other != name and not other_partial
        and len(wider) > len(columns) and wider[: len(columns)] == columns
    ]  # fmt: skip
    assert indexes, "no index found: the query looked in the wrong schema"
    assert redundant == []
