"""URLs of the REST API; mount them with ``path("alipay/api/", include("django_alipay.api.urls"))``."""

from __future__ import annotations

import importlib.util

from django.db import transaction
from django.urls import URLPattern, URLResolver, path, re_path
from rest_framework.routers import DefaultRouter

from django_alipay.api.schema import DocsView, SchemaView
from django_alipay.api.views import NotFoundView, NotificationViewSet, RefundViewSet, RootView, TradeViewSet

__all__ = ["api_urlpatterns", "app_name", "urlpatterns"]

app_name = "django_alipay_api"


class _Router(DefaultRouter):
    APIRootView = RootView
    include_format_suffixes = False


_router = _Router()
_router.register("trades", TradeViewSet, basename="trade")
_router.register("refunds", RefundViewSet, basename="refund")
_router.register("notifications", NotificationViewSet, basename="notification")


def _outside_atomic_requests(patterns: list[URLPattern | URLResolver]) -> list[URLPattern | URLResolver]:
    # The domain commits before it calls the gateway, so ATOMIC_REQUESTS must not wrap these views.
    for pattern in patterns:
        if isinstance(pattern, URLPattern):
            transaction.non_atomic_requests(pattern.callback)
    return patterns


#: The API's endpoints (what the schema describes).
api_urlpatterns = _outside_atomic_requests(list(_router.urls))

urlpatterns = [
    *api_urlpatterns,
    path("schema/", SchemaView.as_view(), name="schema"),
    # Interactive docs only with their files at hand: drf-spectacular-sidecar ships them (no CDN).
    *(
        [path("docs/", DocsView.as_view(), name="docs")]
        if importlib.util.find_spec("drf_spectacular_sidecar") is not None
        else []
    ),
    # Last: any other URL under the prefix answers a JSON 404 rather than Django's HTML page.
    re_path(r"^", NotFoundView.as_view(), name="not-found"),
]
