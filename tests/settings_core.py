"""Django settings of the core-only run (``tox -e core``): the test settings without DRF and drf-spectacular.

That environment installs neither Django REST framework, drf-spectacular nor Celery; the app must still
start, pass its checks, take payments, refunds and notifications, and leave the REST API out of its URLs.
"""

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS as _ALL_APPS

INSTALLED_APPS = [app for app in _ALL_APPS if app not in ("rest_framework", "drf_spectacular")]
