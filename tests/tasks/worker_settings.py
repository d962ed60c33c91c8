"""Settings of the Celery workers the task tests start: the test settings, on the test database and Redis.

The test process tells a worker, through environment variables, which database pytest-django created
(``ALIPAY_TEST_DATABASE_NAME``), which ``ALIPAY`` values to change (``ALIPAY_TEST_WORKER_ALIPAY``, JSON),
which task annotations to apply (``ALIPAY_TEST_TASK_ANNOTATIONS``, JSON) and Redis's visibility timeout.
Celery itself is configured the way a shop configures it: ``CELERY_*`` settings read by ``celery_app``.
"""

import json
import os

from django_alipay import schedule
from tests.settings import *  # noqa: F403
from tests.settings import ALIPAY as TEST_ALIPAY
from tests.settings import DATABASES as TEST_DATABASES

DATABASES = {"default": {**TEST_DATABASES["default"], "NAME": os.environ["ALIPAY_TEST_DATABASE_NAME"]}}
_OVERRIDES = json.loads(os.environ.get("ALIPAY_TEST_WORKER_ALIPAY", "{}"))
ALIPAY = {**TEST_ALIPAY, "CELERY_ENABLED": True, **_OVERRIDES}

CELERY_BROKER_URL = os.environ["REDIS_URL"]
CELERY_RESULT_BACKEND = os.environ["REDIS_URL"]
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": float(os.environ.get("ALIPAY_TEST_VISIBILITY_TIMEOUT", "3600")),
    # Look for messages of dead workers every second, so a short visibility timeout shows quickly.
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
CELERY_TASK_ROUTES = schedule.task_routes()
# The one line a shop writes; the tests run it every few seconds instead of every five minutes.
_EVERY = float(os.environ.get("ALIPAY_TEST_BEAT_EVERY", "300"))
_SWEEP_EVERY = float(os.environ.get("ALIPAY_TEST_SWEEP_EVERY", "300"))
CELERY_BEAT_SCHEDULE = {
    **schedule.beat_schedule(trades_every=_EVERY, refunds_every=_EVERY, stranded_every=_SWEEP_EVERY)
}
CELERY_TASK_ANNOTATIONS = json.loads(os.environ.get("ALIPAY_TEST_TASK_ANNOTATIONS", "{}"))
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = True
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"django_alipay": {"level": "INFO"}},
}
