"""Serve the OpenAPI 3 schema of the REST API (drf-spectacular), describing the API where it is mounted,
and its interactive documentation (Swagger UI, its files served by the shop from drf-spectacular-sidecar)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

from django.urls import include, path, reverse
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.settings import patched_settings
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from django_alipay.api import errors
from django_alipay.api.permissions import api_permission_classes

__all__ = ["SCHEMA_SETTINGS", "DocsView", "SchemaView", "document"]

F = TypeVar("F", bound=Callable[..., Any])

#: drf-spectacular settings used for this schema only (the project's own SPECTACULAR_SETTINGS are untouched).
SCHEMA_SETTINGS: Final[dict[str, Any]] = {
    "TITLE": "django-alipay-global REST API",
    "DESCRIPTION": (
        "Trades, refunds, reversals and notifications of Alipay cross-border (mapi) merchants. Amounts are "
        "decimal strings in the currency's exponent (JPY and KRW: no decimals), never JSON numbers. Every "
        'error answers with {"error": {"code", "message", "alipay_code", "description", "field"}}.'
    ),
    "VERSION": "1",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "TradeStatusEnum": "django_alipay.enums.TRADE_STATUS_CHOICES",
        "RefundStatusEnum": "django_alipay.enums.RefundStatus",
        "ProductEnum": "django_alipay.enums.Product",
        "RefundKindEnum": "django_alipay.enums.RefundKind",
    },
}
_SCHEMA_ROUTE: Final = "schema/"


def document(**kwargs: Any) -> Callable[[F], F]:
    """``extend_schema`` for a view method, built on drf-spectacular's AutoSchema.

    drf-spectacular bases a method's annotation on ``REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]``, which a shop
    need not have set to it; this names its AutoSchema explicitly. Stacking (one per HTTP method) works.
    """

    def decorator(function: F) -> F:
        context: dict[str, Any] | None = getattr(function, "kwargs", None)
        if context is None:
            context = {}
            function.kwargs = context  # type: ignore[attr-defined]
        context.setdefault("schema", AutoSchema)
        decorated: F = extend_schema(**kwargs)(function)
        return decorated

    return decorator


class _LikeTheApi(APIView):
    """What the schema and docs views share with the rest of the API: its permissions and its error body."""

    def get_permissions(self) -> list[BasePermission]:
        """Shown to whoever may use the API."""
        return [permission() for permission in api_permission_classes()]

    def get_exception_handler(self) -> Callable[..., Response | None]:
        """Refusals answer with the API's error body."""
        return errors.exception_handler

    def handle_exception(self, exc: Exception) -> Response:
        """A refusal is rendered as JSON, like every other error of the API, not as the page itself."""
        response = super().handle_exception(exc)
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return response


class SchemaView(_LikeTheApi, SpectacularAPIView):
    """The OpenAPI schema of the API's own URLs, with the paths of the prefix it is mounted under."""

    custom_settings = SCHEMA_SETTINGS

    # drf-spectacular's deploy check (drf_spectacular.E001) walks every URL of the project with the project's
    # DEFAULT_SCHEMA_CLASS, which a shop need not point at drf-spectacular: document() names its AutoSchema.
    @document(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The schema, generated for the API's URL patterns under the current mount point."""
        from django_alipay.api.urls import api_urlpatterns

        self.patterns = [path(_mount_point(request), include(api_urlpatterns))]
        return super().get(request, *args, **kwargs)


class DocsView(_LikeTheApi, SpectacularSwaggerView):
    """Swagger UI for the API's schema, with its scripts and styles from drf-spectacular-sidecar (offline)."""

    title = str(SCHEMA_SETTINGS["TITLE"])

    # document(), not extend_schema(): drf-spectacular's deploy check needs its own AutoSchema here too.
    @document(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The Swagger UI page, reading the schema of this mount point."""
        namespace = getattr(request.resolver_match, "namespace", "")
        self.url = reverse(f"{namespace}:schema" if namespace else "schema")
        with patched_settings({"SWAGGER_UI_DIST": "SIDECAR", "SWAGGER_UI_FAVICON_HREF": "SIDECAR"}):
            return super().get(request, *args, **kwargs)


def _mount_point(request: Request) -> str:
    """The route the API is included under, e.g. "alipay/api/" (converters such as <int:x> kept)."""
    match = request.resolver_match
    route = getattr(match, "route", "") or ""
    if route.endswith(_SCHEMA_ROUTE) and not route.startswith("^"):
        return route[: -len(_SCHEMA_ROUTE)]
    return request.path_info.lstrip("/")[: -len(_SCHEMA_ROUTE)]
