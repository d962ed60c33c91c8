# The notification table's indexes leave out the rows they can never find: a request is stored before its
# notify_id, trade, refund or duplicate is known, and most notifications never name a refund or repeat one,
# so most inserts and updates now skip most indexes. The merchant's own index goes: every lookup by merchant
# also names a notify_id or an order number. Unlinked notifications (no trade) get an index by order number
# for the trade's timeline, which used to read the whole table.
#
# On PostgreSQL the new indexes are built with CREATE INDEX CONCURRENTLY before the old ones are dropped
# (DROP INDEX CONCURRENTLY), and the foreign keys' constraints are left alone: notifications keep being stored
# while a large table is indexed (hence a non-atomic migration).

# ruff: noqa: RUF012
from django.db import migrations, models

from django_alipay.migrations._online import AddIndexOnline, DropForeignKeyIndex, RemoveIndexOnline


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("django_alipay", "0010_merchant_indexes_served_by_unique_keys"),
    ]

    operations = [
        AddIndexOnline(
            model_name="notification",
            index=models.Index(
                condition=~models.Q(notify_id=""),
                fields=["merchant", "notify_id"],
                name="django_alipay_notif_notify_id",
            ),
        ),
        AddIndexOnline(
            model_name="notification",
            index=models.Index(
                condition=models.Q(trade__isnull=False), fields=["trade"], name="django_alipay_notif_trade"
            ),
        ),
        AddIndexOnline(
            model_name="notification",
            index=models.Index(
                condition=models.Q(refund__isnull=False), fields=["refund"], name="django_alipay_notif_refund"
            ),
        ),
        AddIndexOnline(
            model_name="notification",
            index=models.Index(
                condition=models.Q(duplicate_of__isnull=False),
                fields=["duplicate_of"],
                name="django_alipay_notif_duplicate",
            ),
        ),
        AddIndexOnline(
            model_name="notification",
            index=models.Index(
                condition=models.Q(trade__isnull=True) & ~models.Q(out_trade_no=""),
                fields=["merchant", "out_trade_no"],
                name="django_alipay_notif_unlinked",
            ),
        ),
        RemoveIndexOnline(
            model_name="notification",
            name="django_alipay_notify_id_idx",
        ),
        DropForeignKeyIndex(model_name="notification", name="duplicate_of"),
        DropForeignKeyIndex(model_name="notification", name="merchant"),
        DropForeignKeyIndex(model_name="notification", name="refund"),
        DropForeignKeyIndex(model_name="notification", name="trade"),
    ]
