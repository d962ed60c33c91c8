# The exactly-once constraint covers applied notifications only: an ignored delivery never blocks a later one.
# ruff: noqa: RUF012

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_alipay", "0004_merchant_notify_verify"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="notification",
            name="django_alipay_notification_once",
        ),
        migrations.AddConstraint(
            model_name="notification",
            constraint=models.UniqueConstraint(
                condition=models.Q(("outcome", "processed"), models.Q(("notify_id", ""), _negated=True)),
                fields=("merchant", "notify_id"),
                name="django_alipay_notification_once",
            ),
        ),
    ]
