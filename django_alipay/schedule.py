"""Celery beat entries and task routing for django_alipay, each added to a shop's settings in one line.

::

    # settings.py
    import django_alipay.schedule

    CELERY_BEAT_SCHEDULE = {**django_alipay.schedule.beat_schedule(), ...}
    CELERY_TASK_ROUTES = django_alipay.schedule.task_routes()

Neither reads Django settings when called (settings.py is still being read then): the router reads
``ALIPAY["TASK_QUEUE"]`` and ``ALIPAY["REFUND_TASK_QUEUE"]`` each time a task is sent. This module imports
nothing from Celery, so settings that use it load without Celery installed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, Final

__all__ = [
    "PERIODIC_TASKS",
    "REFUND_TASKS",
    "TASK_PREFIX",
    "beat_schedule",
    "route_task",
    "task_routes",
]

TASK_PREFIX: Final = "django_alipay.tasks."
#: Tasks that call the refund services: they go to ``ALIPAY["REFUND_TASK_QUEUE"]``.
REFUND_TASKS: Final = frozenset({f"{TASK_PREFIX}submit_refund", f"{TASK_PREFIX}submit_reverse"})
#: The periodic tasks :func:`beat_schedule` schedules.
PERIODIC_TASKS: Final = (
    f"{TASK_PREFIX}reconcile_open_trades",
    f"{TASK_PREFIX}reconcile_unknown_refunds",
    f"{TASK_PREFIX}settle_refunds_from_files",
    f"{TASK_PREFIX}sweep_stranded_refunds",
)

Router = Callable[..., "dict[str, str] | None"]


def _interval(value: float | timedelta, name: str) -> timedelta:
    interval = value if isinstance(value, timedelta) else timedelta(seconds=float(value))
    if interval.total_seconds() <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
    return interval


def beat_schedule(
    *,
    trades_every: float | timedelta = 300,
    refunds_every: float | timedelta = 300,
    files_every: float | timedelta = 3600,
    stranded_every: float | timedelta = 15,
    queue: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Celery beat entries for the periodic tasks: the two reconciliations, every ``trades_every`` /
    ``refunds_every`` s, the settlement from the daily transaction files, every ``files_every`` s, and the
    sweep of refunds no task is sending (``sweep_stranded_refunds``), every ``stranded_every`` s.

    Alipay publishes a day's transaction file the next morning (Beijing time); the hourly default picks it
    up within an hour, and a run with nothing to settle makes no gateway call. Each run expires when the
    next one is due, so a beat left running while the workers are down does not pile up runs. ``queue``
    fixes the queue of all four; by default the router of :func:`task_routes` (or Celery's default queue
    when no router is set) decides.
    """
    entries: dict[str, dict[str, Any]] = {}
    everies = (trades_every, refunds_every, files_every, stranded_every)
    for name, every in zip(PERIODIC_TASKS, everies, strict=True):
        interval = _interval(every, name.removeprefix(TASK_PREFIX))
        options: dict[str, Any] = {"expires": interval.total_seconds()}
        if queue:
            options["queue"] = queue
        entries[name] = {"task": name, "schedule": interval, "options": options}
    return entries


def route_task(
    name: str, args: Any = None, kwargs: Any = None, options: Any = None, task: Any = None, **extra: Any
) -> dict[str, str] | None:
    """A Celery router: refund calls to ``ALIPAY["REFUND_TASK_QUEUE"]``, other django_alipay tasks to
    ``ALIPAY["TASK_QUEUE"]``, anything else left to the next router (None)."""
    if not name.startswith(TASK_PREFIX):
        return None
    from django_alipay.conf import app_settings

    queue = app_settings.REFUND_TASK_QUEUE if name in REFUND_TASKS else app_settings.TASK_QUEUE
    return {"queue": str(queue)}


def task_routes() -> tuple[Router, ...]:
    """The value for ``CELERY_TASK_ROUTES`` (add your own routers to the tuple)."""
    return (route_task,)
