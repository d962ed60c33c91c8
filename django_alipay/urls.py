"""URLs of django_alipay: each merchant's notify and return endpoints, and the REST API when switched on.

Mount them under a prefix of your choice, e.g. ``path("alipay/", include("django_alipay.urls"))``; the
notify URL Alipay is told (``ALIPAY["NOTIFY_URL_BASE"]`` + the merchant's token) must point at ``notify/``.
The REST API is mounted at ``api/`` when ``ALIPAY["API_ENABLED"]`` is True and Django REST framework can be
imported. That is decided when Django first loads the URLconf (after the settings are ready), like any URLconf
that reads a setting.
"""

from __future__ import annotations

import importlib.util

from django.urls import URLPattern, URLResolver, include, path

from django_alipay import views
from django_alipay.conf import app_settings

app_name = "django_alipay"


def _api_available() -> bool:
    """True when Django REST framework is importable and the app's API module exists."""
    if importlib.util.find_spec("rest_framework") is None:
        return False
    try:
        return importlib.util.find_spec("django_alipay.api.urls") is not None
    except ImportError:
        return False


urlpatterns: list[URLPattern | URLResolver] = [
    path("notify/<str:token>/", views.notify, name="notify"),
    path("return/<str:token>/", views.return_page, name="return"),
]

if app_settings.API_ENABLED and _api_available():
    urlpatterns.append(path("api/", include("django_alipay.api.urls")))
