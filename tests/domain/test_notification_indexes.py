"""The notification table's indexes on PostgreSQL: a stored request enters as few as possible, and every
lookup of the notify path and of a trade's timeline is served by one.

Every delivery is kept, so the table is the largest of the app's: each index a row enters is written on
its insert and again on its processing update (which sets indexed columns, so it is never a HOT update).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_alipay.admin.timeline import build_timeline
from django_alipay.models import Merchant, Notification, Trade
from tests.domain.test_notifications import deliver, sign_form, trade_params
from tests.indexes import app_indexes
from tests.statements import statements

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgresql")]


def _indexes_holding(row: Notification) -> set[tuple[str, ...]]:
    """The columns of each index of the notification table that ``row`` is an entry of."""
    table = Notification._meta.db_table
    held = set()
    with connection.cursor() as cursor:
        for index in app_indexes():
            if index.table != table:
                continue
            if index.condition is not None:
                # Our own index's condition, read back from the catalog, on our own table.
                cursor.execute(f'SELECT {index.condition} FROM "{table}" WHERE id = %s', [row.pk])  # noqa: S608
                if not cursor.fetchone()[0]:
                    continue
            held.add(index.columns)
    return held


def test_a_stored_request_enters_only_the_key_and_arrival_time_indexes(merchant: Merchant) -> None:
    # As the notify path stores a request, before anything in it is read.
    stored = Notification.objects.create(merchant=merchant, body=b"notify_id=abc&sign=x", body_size=20)
    assert _indexes_holding(stored) == {("id",), ("received_at",)}


def test_a_processed_notification_enters_the_indexes_its_lookups_use(
    merchant: Merchant, make_trade: Callable[..., Trade]
) -> None:
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None)
    answer = deliver(merchant, sign_form(trade_params(trade)))
    assert answer.status == 200
    assert answer.notification is not None
    assert _indexes_holding(Notification.objects.get(pk=answer.notification.pk)) == {
        ("id",),
        ("received_at",),
        ("merchant_id", "notify_id"),  # the duplicate checks, and the unique key of applied deliveries
        ("trade_id",),
    }


def _read_by_index(sql: list[str]) -> list[str]:
    """The statements among ``sql`` that read the notification table without an index."""
    whole = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table: only what no index serves scans
        for text in sql:
            cursor.execute(f"EXPLAIN {text}")
            plan = "\n".join(line for (line,) in cursor.fetchall())
            if f"Seq Scan on {Notification._meta.db_table}" in plan:
                whole.append(f"{text}\n{plan}")
    return whole


def test_the_notify_paths_lookups_are_served_by_indexes(
    merchant: Merchant, make_trade: Callable[..., Trade]
) -> None:
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None)
    body = sign_form(trade_params(trade))
    deliver(merchant, body)
    with CaptureQueriesContext(connection) as captured:
        deliver(merchant, body)  # a resend: the acknowledged deliveries of its notify_id
        deliver(merchant, sign_form(trade_params(trade)))  # the same status again: the trade's applied ones
    assert _read_by_index(statements(captured)) == []


def _rows_read_and_dropped(sql: str) -> int:
    """How many notification rows running ``sql`` read only to drop them (filtered out after an index scan
    or a whole-table scan): none when an index finds exactly its rows."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
        (plan,) = cursor.fetchone()
    plan = json.loads(plan) if isinstance(plan, str) else plan
    dropped = 0
    nodes = [plan[0]["Plan"]]
    while nodes:
        node = nodes.pop()
        nodes.extend(node.get("Plans", []))
        if node.get("Relation Name") == Notification._meta.db_table:
            dropped += node.get("Rows Removed by Filter", 0) + node.get("Rows Removed by Index Recheck", 0)
    return dropped


def test_a_trades_timeline_finds_its_notifications_by_index(
    merchant: Merchant, make_trade: Callable[..., Trade]
) -> None:
    trade = make_trade(status="WAIT_BUYER_PAY", paid_at=None)
    deliver(merchant, sign_form(trade_params(trade)))
    # One that names the order but was never linked to the trade (it came before the order was known) ...
    early = Notification.objects.create(merchant=merchant, out_trade_no=trade.out_trade_no, notify_id="early")
    # ... among the merchant's notifications about other orders, which the timeline must not read.
    Notification.objects.bulk_create(
        Notification(merchant=merchant, out_trade_no=f"OTHER-{n}", notify_id=f"other-{n}") for n in range(200)
    )
    with CaptureQueriesContext(connection) as captured:
        events = build_timeline(trade)
    linked = Notification.objects.get(trade=trade)
    shown = {event.link.rstrip("/").split("/")[-2] for event in events if "/notification/" in event.link}
    assert shown == {str(linked.pk), str(early.pk)}
    notes = [sql for sql in statements(captured) if Notification._meta.db_table in sql]
    assert notes
    assert [_rows_read_and_dropped(sql) for sql in notes] == [0] * len(notes)
