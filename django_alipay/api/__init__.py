"""The optional REST API (Django REST framework): trades, refunds, reversals and notifications over HTTP.

It needs Django REST framework and drf-spectacular (the OpenAPI schema at ``schema/``). Mount it with
``path("alipay/api/", include("django_alipay.api.urls"))`` and add ``"rest_framework"`` to ``INSTALLED_APPS``.
Importing this package without them raises AlipayConfigurationError saying what to install.
"""

from __future__ import annotations

import importlib.util

from django_alipay.exceptions import AlipayConfigurationError

__all__ = ["APIDependencyMissing"]


class APIDependencyMissing(AlipayConfigurationError, ImportError):
    """Django REST framework or drf-spectacular is not installed.

    Also an ImportError, so that code probing whether the API can be imported (``django_alipay.urls``) simply
    leaves it out.
    """


_MISSING = [name for name in ("rest_framework", "drf_spectacular") if importlib.util.find_spec(name) is None]
if _MISSING:
    raise APIDependencyMissing(
        f"django_alipay.api needs {' and '.join(_MISSING)}: pip install djangorestframework drf-spectacular "
        "(the 'api' extra), then add 'rest_framework' to INSTALLED_APPS."
    )
