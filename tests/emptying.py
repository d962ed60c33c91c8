"""Empty the tables after a transactional test with one DELETE per table instead of Django's flush.

Django's ``TransactionTestCase`` ends each test with ``flush``: a TRUNCATE of every table, which takes an
exclusive lock and new files for each table and index, then the ``post_migrate`` signal to create the content
types and permissions again. The suite has hundreds of transactional tests (live servers, emulators, worker
threads, the on-commit refund dispatch) and most leave a few rows behind, so this module deletes those rows
instead, in one transaction, and keeps the content types and permissions that flush would only recreate.
The database ends in the state flush leaves. Tests that ask for more (``reset_sequences``,
``serialized_rollback``, ``available_apps``) and databases other than PostgreSQL keep Django's flush.
"""

from __future__ import annotations

from django.db import connections, transaction
from django.test import TransactionTestCase

#: Tables that flush would empty and post_migrate fill again with the same rows.
KEPT = frozenset({"django_content_type", "auth_permission"})

_flush = TransactionTestCase._fixture_teardown


def _empty(self: TransactionTestCase) -> None:
    if self.reset_sequences or self.serialized_rollback or self.available_apps is not None:
        _flush(self)
        return
    for alias in self._databases_names(include_mirrors=False):
        connection = connections[alias]
        if connection.vendor != "postgresql":
            _flush(self)
            return
        tables = [
            name
            for name in connection.introspection.django_table_names(only_existing=True, include_views=False)
            if name not in KEPT
        ]
        # Table names from Django's own introspection, quoted by the backend.
        statements = "; ".join(f"DELETE FROM {connection.ops.quote_name(name)}" for name in tables)  # noqa: S608
        # One transaction: the foreign keys are deferred, so the order of the tables does not matter.
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            cursor.execute(statements)


def install() -> None:
    """Make every transactional test of this run end with :func:`_empty` instead of flush."""
    setattr(TransactionTestCase, "_fixture_teardown", _empty)  # noqa: B010 - replaced on purpose


def uninstall() -> None:
    """Give transactional tests Django's flush back."""
    setattr(TransactionTestCase, "_fixture_teardown", _flush)  # noqa: B010


__all__ = ["KEPT", "install", "uninstall"]
