"""The Celery app of the workers the task tests start, made the way a shop makes its project's celery.py."""

import os

from celery import Celery
from celery.signals import task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.tasks.worker_settings")

app = Celery("django_alipay_tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def _refunds_sync_on_the_real_clock(**kwargs: object) -> None:
    """As the test kit's plugin does in the test process: the suite's results do not depend on whether it
    runs between 00:00 and 01:30 Beijing time (when refunds are otherwise sent asynchronously)."""
    from django_alipay.domain import refunds
    from django_alipay.testing.plugin import blackout_only_on_a_fixed_clock

    refunds.blackout_applies = blackout_only_on_a_fixed_clock
