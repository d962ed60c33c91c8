"""The example shop's Django project; the Celery app is loaded with it so ``@shared_task`` finds it."""

from .celery import app as celery_app

__all__ = ("celery_app",)
