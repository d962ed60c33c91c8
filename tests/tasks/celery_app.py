"""The Celery app of the workers the task tests start, made the way a shop makes its project's celery.py."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.tasks.worker_settings")

app = Celery("django_alipay_tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
