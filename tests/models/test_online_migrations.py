"""The index migrations of the trade, refund and notification tables leave them writable on PostgreSQL.

A shop upgrades with its notify URL live: Alipay keeps posting notifications and the shop keeps taking
orders. An index built without CONCURRENTLY locks its table against writes for as long as the build takes,
and a foreign key's constraint added again checks every row while it and the table it references are locked.
"""

from __future__ import annotations

import logging
import re

import pytest
from django.core.management import call_command

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgresql")]

#: The last migration before the index migrations.
BEFORE = "0009_notification_one_notify_id_index"


class _Statements(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.sql: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.sql.append(str(getattr(record, "sql", "")))


def _schema_statements(*targets: tuple[str, ...]) -> list[str]:
    """The schema statements that migrating django_alipay to each of ``targets`` in turn sends."""
    handler = _Statements()
    logger = logging.getLogger("django.db.backends.schema")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        for target in targets:
            call_command("migrate", "django_alipay", *target, verbosity=0)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return handler.sql


def _blocking(sql: list[str]) -> list[str]:
    return [
        text
        for text in sql
        if re.search(r"\b(ADD|DROP) CONSTRAINT\b", text)
        or (re.search(r"\b(CREATE|DROP) INDEX\b", text) and "CONCURRENTLY" not in text)
    ]


def test_the_index_migrations_lock_no_table_against_writes() -> None:
    call_command("migrate", "django_alipay", BEFORE, verbosity=0)
    try:
        forwards = _schema_statements(())
    finally:
        call_command("migrate", "django_alipay", verbosity=0)
    assert forwards, "no schema statement was logged"
    assert _blocking(forwards) == []


def test_going_back_over_them_locks_nothing_either_and_they_apply_again() -> None:
    try:
        backwards = _schema_statements((BEFORE,))
    finally:
        call_command("migrate", "django_alipay", verbosity=0)
    assert backwards, "no schema statement was logged"
    assert _blocking(backwards) == []
