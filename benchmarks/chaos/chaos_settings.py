"""Settings of the example shop in the chaos run: the shop's own settings, a probe app, one prefetched task.

Everything of ``example_project.settings`` is kept (DATABASE_URL, CELERY_BROKER_URL, ALIPAY with Celery on,
the beat schedule with the sweeper every 15 s ...); added:

* the ``chaos_probe`` app, which appends one line per django_alipay signal to ``CHAOS_SIGNAL_LOG`` (so the
  run can check that no payment or refund was applied twice);
* ``CELERY_WORKER_PREFETCH_MULTIPLIER = 1``, the broker setting docs/celery.md asks a shop to use;
* ``CHAOS_REFUND_SPACING``, when set, as ``ALIPAY["REFUND_SPACING"]`` (run.py's ``--refund-spacing``: a shop
  spacing its refunds too closely, to see the spacing audit fail);
* in the run's own process (``CHAOS_SCRIPT=1``), connections that are not kept: it has no requests whose end
  would close a connection broken by a PostgreSQL restart.
"""

from __future__ import annotations

import os

from example_project.settings import *  # noqa: F403
from example_project.settings import ALIPAY, DATABASES, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "chaos_probe.ChaosProbe"]
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

if os.environ.get("CHAOS_SCRIPT") == "1":
    DATABASES = {**DATABASES, "default": {**DATABASES["default"], "CONN_MAX_AGE": 0}}

if os.environ.get("CHAOS_REFUND_SPACING", "").strip():
    ALIPAY = {**ALIPAY, "REFUND_SPACING": float(os.environ["CHAOS_REFUND_SPACING"])}
