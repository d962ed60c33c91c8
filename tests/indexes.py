"""The indexes of the app's tables on PostgreSQL, from its catalog, for the tests of what they cost."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection

#: Each index on a column list of the app's tables (the emulator's left out).
_INDEXES = """
SELECT t.relname, i.relname, array_agg(a.attname ORDER BY k.ord), x.indisunique,
       pg_get_expr(x.indpred, x.indrelid)
FROM pg_index x
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = current_schema()
CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
WHERE t.relname LIKE 'django\\_alipay\\_%%' AND t.relname NOT LIKE 'django\\_alipay\\_emulator\\_%%'
  AND x.indexprs IS NULL
GROUP BY t.relname, i.relname, x.indisunique, x.indpred, x.indrelid
"""


@dataclass(frozen=True)
class Index:
    table: str
    name: str
    columns: tuple[str, ...]
    unique: bool
    condition: str | None  # None: every row of the table has an entry

    @property
    def partial(self) -> bool:
        return self.condition is not None


def app_indexes() -> list[Index]:
    with connection.cursor() as cursor:
        cursor.execute(_INDEXES)
        return [
            Index(table, name, tuple(columns), unique, condition)
            for table, name, columns, unique, condition in cursor.fetchall()
        ]
