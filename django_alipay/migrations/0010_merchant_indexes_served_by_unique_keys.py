# Trade.merchant and Refund.merchant lose the index of their own: the unique (merchant, out_trade_no) and
# (merchant, gateway_refund_id) indexes lead with the merchant and serve every lookup by it, while the extra
# index was written on every insert and on every status update (which is never a HOT update).
# Only the two indexes are dropped (on PostgreSQL concurrently, so not in a transaction); the foreign keys'
# constraints are left alone.

# ruff: noqa: RUF012
from django.db import migrations

from django_alipay.migrations._online import DropForeignKeyIndex


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("django_alipay", "0009_notification_one_notify_id_index"),
    ]

    operations = [
        DropForeignKeyIndex(model_name="refund", name="merchant"),
        DropForeignKeyIndex(model_name="trade", name="merchant"),
    ]
