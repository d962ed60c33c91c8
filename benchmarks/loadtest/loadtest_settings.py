"""Settings of the example shop under load: the shop's own settings plus a probe, and the knobs run.py turns.

Everything of ``example_project.settings`` is kept (DATABASE_URL, CELERY_BROKER_URL, ALIPAY with its
``NOTIFY_MAX_IN_FLIGHT`` of 8, CONN_MAX_AGE 60 with health checks ...); added or changed:

* the ``loadtest_probe`` app, which appends one line per django_alipay signal to ``LOADTEST_SIGNAL_LOG``
  (so the run can check that no effect was applied twice), and its middleware (first of all), which logs the
  timing, answer and database work of each notify request to ``LOADTEST_QUERY_LOG``;
* ``LOADTEST_CONN_MAX_AGE`` (seconds), when set, as the database's CONN_MAX_AGE (health checks on); left
  unset, the shop's own value is used;
* ``LOADTEST_NOTIFY_MAX_IN_FLIGHT``, when set, as ``ALIPAY["NOTIFY_MAX_IN_FLIGHT"]``: a positive integer, or
  ``none`` (or 0) for no limit; left unset, the shop's own value is used.
"""

from __future__ import annotations

import os

from example_project.settings import *  # noqa: F403
from example_project.settings import ALIPAY, DATABASES, INSTALLED_APPS, MIDDLEWARE

INSTALLED_APPS = [*INSTALLED_APPS, "loadtest_probe.LoadTestProbe"]
MIDDLEWARE = ["loadtest_probe.ProbeMiddleware", *MIDDLEWARE]

# New dicts, so that example_project.settings keeps the shop's own values (run.py reports both).
if os.environ.get("LOADTEST_CONN_MAX_AGE", "").strip():
    _conn = {"CONN_MAX_AGE": int(os.environ["LOADTEST_CONN_MAX_AGE"]), "CONN_HEALTH_CHECKS": True}
    DATABASES = {**DATABASES, "default": {**DATABASES["default"], **_conn}}

_limit = os.environ.get("LOADTEST_NOTIFY_MAX_IN_FLIGHT", "").strip().lower()
if _limit:
    ALIPAY = {**ALIPAY, "NOTIFY_MAX_IN_FLIGHT": None if _limit in ("none", "0") else int(_limit)}
