"""A transactional test leaves the database as Django's flush would: every table empty but the content types
and permissions, which flush recreates the same."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import TransactionTestCase

from django_alipay.models import Merchant
from tests import emptying


class _Probe(TransactionTestCase):
    __test__ = False  # only its teardown is called, by the tests below

    def runTest(self) -> None:
        """Never run: only its teardown is called."""


def _row_counts() -> dict[str, int]:
    counts = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.django_table_names(only_existing=True, include_views=False):
            cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(table)}")  # noqa: S608 - Django's names
            counts[table] = cursor.fetchone()[0]
    return counts


@pytest.mark.django_db(transaction=True)
def test_the_teardown_of_a_transactional_test_empties_every_table_but_content_types_and_permissions(
    postgresql: None, make_merchant: Callable[..., Merchant]
) -> None:
    make_merchant()
    User.objects.create_user("cashier", password="x")
    content_types = set(ContentType.objects.values_list("pk", "app_label", "model"))
    permissions = Permission.objects.count()
    assert content_types
    assert permissions
    assert {table for table, rows in _row_counts().items() if rows} > {"django_alipay_merchant", "auth_user"}

    _Probe()._fixture_teardown()

    left = {table: rows for table, rows in _row_counts().items() if rows}
    assert set(left) == set(emptying.KEPT)
    assert set(ContentType.objects.values_list("pk", "app_label", "model")) == content_types
    assert Permission.objects.count() == permissions


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("asks", [{"reset_sequences": True}, {"available_apps": ["django_alipay"]}])
def test_a_transactional_test_that_asks_for_more_than_empty_tables_gets_djangos_flush(
    postgresql: None, asks: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    flushed: list[str] = []
    monkeypatch.setattr("tests.emptying._flush", lambda case: flushed.append(type(case).__name__))
    probe = type("AskingProbe", (_Probe,), asks)()

    probe._fixture_teardown()

    assert flushed == ["AskingProbe"]
