# Refund.answered_at makes "claimed for a call, no answer yet" explicit (it was "an empty response"), and
# error codes keep up to 255 characters.

# ruff: noqa: RUF012
from django.apps.registry import Apps
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.models import F


def mark_answered(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    """A refund with a recorded answer was answered when it was last written; the others are in flight."""
    refund = apps.get_model("django_alipay", "Refund")
    refund.objects.exclude(response={}).update(answered_at=F("updated_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("django_alipay", "0006_refund_slots_by_partner"),
    ]

    operations = [
        migrations.AddField(
            model_name="refund",
            name="answered_at",
            field=models.DateTimeField(blank=True, editable=False, null=True, verbose_name="answered at"),
        ),
        migrations.AlterField(
            model_name="refund",
            name="error_code",
            field=models.CharField(blank=True, max_length=255, verbose_name="error code"),
        ),
        migrations.RunPython(mark_answered, migrations.RunPython.noop, elidable=True),
    ]
