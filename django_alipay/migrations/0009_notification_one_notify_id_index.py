# Notification.notify_id keeps one plain index for the lookups by equality: on PostgreSQL ``db_index`` also
# made a varchar_pattern_ops copy (for LIKE 'x%' searches nothing makes) that every stored request paid for.

# ruff: noqa: RUF012
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_alipay", "0008_notification_flag_wording"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="notification",
            index=models.Index(fields=["notify_id"], name="django_alipay_notify_id_idx"),
        ),
        migrations.AlterField(
            model_name="notification",
            name="notify_id",
            field=models.CharField(blank=True, max_length=128, verbose_name="notify ID"),
        ),
    ]
