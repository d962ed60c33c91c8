"""The REST API's views: parse the request with a serializer, call the domain, render its answer.

No business rule lives here: what may be refunded, reversed or created, and when, is decided by
``django_alipay.domain``; its refusals are rendered by :mod:`django_alipay.api.errors`. The views only pick
the objects the user may see (404 otherwise) and check :mod:`django_alipay.api.permissions`.
Every view runs outside ``ATOMIC_REQUESTS`` because the domain commits before it calls the gateway.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import urlsplit

from django.db.models import QuerySet
from django.urls import NoReverseMatch, Resolver404, resolve
from django.utils.translation import gettext as _
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, UnsupportedMediaType
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import BasePermission, IsAdminUser
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request, override_method
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.routers import APIRootView
from rest_framework.views import APIView

from django_alipay.access import access_for
from django_alipay.api import errors
from django_alipay.api.pagination import Pagination
from django_alipay.api.parsers import StrictJSONParser
from django_alipay.api.permissions import (
    CanCreateTrade,
    CanRefundTrade,
    CanReverseTrade,
    CanSyncTrade,
    api_permission_classes,
)
from django_alipay.api.schema import document
from django_alipay.api.serializers import (
    ErrorSerializer,
    NotificationFilterSerializer,
    NotificationSerializer,
    RefundCreateSerializer,
    RefundFilterSerializer,
    RefundFormSerializer,
    RefundSerializer,
    ReverseSerializer,
    SyncResultSerializer,
    TradeCreateSerializer,
    TradeFilterSerializer,
    TradeSerializer,
    TradeStartSerializer,
)
from django_alipay.domain import refunds as refund_domain
from django_alipay.domain import trades as trade_domain
from django_alipay.models import Notification, Refund, Trade

__all__ = ["NotFoundView", "NotificationViewSet", "RefundViewSet", "RootView", "TradeViewSet"]

_ID_MAX = 2**63 - 1  # the largest primary key (bigint)

_ERRORS: dict[int, str] = {
    400: "The request is invalid (see error.field).",
    401: "No credentials (with an authentication scheme that asks for them).",
    403: "Not authenticated, or not allowed.",
    404: "No such object among the user's merchants.",
    406: "No acceptable response format.",
    409: "Refused by the app's rules in the object's current state (see error.code).",
    415: "The body is not JSON.",
    422: "The Idempotency-Key was already used with different parameters.",
    502: "Alipay refused the request (see error.alipay_code).",
    503: "Alipay could not be reached or did not answer clearly; try again later.",
}
_READ = (401, 403, 406)
#: Request bodies of HTML forms (the browsable API's refund form); every other client sends JSON.
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_WRITE = (400, 401, 403, 404, 406, 415, 502, 503)


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: OpenApiResponse(ErrorSerializer, description=_ERRORS[code]) for code in codes}


def _responses(ok: dict[int, Any], *codes: int) -> dict[int, Any]:
    return {**ok, **_errors(*codes)}


_IDEMPOTENCY_REQUIRED = OpenApiParameter(
    errors.IDEMPOTENCY_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    pattern=r"^[!-~]{1,255}$",
    description=(
        "A key naming this refund request (1-255 printable ASCII characters, e.g. a UUID). Sending the same "
        "key with the same body again answers with the same refund and refunds nothing more; the same key "
        "with other parameters is refused with 422."
    ),
)
_IDEMPOTENCY_OPTIONAL = OpenApiParameter(
    errors.IDEMPOTENCY_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    pattern=r"^[!-~]{1,255}$",
    description="Optional key naming this reversal (1-255 printable ASCII characters).",
)


class BrowsableRenderer(BrowsableAPIRenderer):
    """The browsable API, without a "Not Found" breadcrumb for partial paths only the catch-all answers.

    An action listed in its view's ``html_forms`` gets that serializer as its HTML form (and no raw-data
    form, which cannot send the headers the action needs). After a refused post the form shows what was
    sent, with a new idempotency key, instead of starting empty.
    """

    def get_context(self, data: Any, accepted_media_type: Any, renderer_context: Any) -> Any:
        """DRF's context; remembers the response so that the form knows whether the post was refused."""
        self._response = renderer_context.get("response")
        return super().get_context(data, accepted_media_type, renderer_context)

    def _html_form(self, view: Any, method: str) -> Any:
        forms = getattr(view, "html_forms", {})
        return forms.get(getattr(view, "action", None)) if method == "POST" else None

    def get_rendered_html_form(self, data: Any, view: Any, method: str, request: Any) -> Any:
        """The action's own HTML form when it has one, else DRF's."""
        form = self._html_form(view, method)
        if form is None:
            return super().get_rendered_html_form(data, view, method, request)
        refused = (
            request.method == "POST" and getattr(getattr(self, "_response", None), "status_code", 200) >= 400
        )
        sent = request.data.copy() if refused and hasattr(request.data, "copy") else None
        with override_method(view, request, method) as form_request:
            if not self.show_form_for_method(view, method, form_request, None):
                return None
            context = view.get_serializer_context()
            if sent is None:
                return self.render_form_for_serializer(form(context=context))
            sent["idempotency_key"] = str(uuid.uuid4())
            return self.render_form_for_serializer(form(data=sent, context=context))

    def get_raw_data_form(self, data: Any, view: Any, method: str, request: Any) -> Any:
        """None for an action with its own HTML form; DRF's raw-data form otherwise."""
        if self._html_form(view, method) is not None:
            return None
        return super().get_raw_data_form(data, view, method, request)

    def get_breadcrumbs(self, request: Any) -> list[tuple[str, str]]:
        """DRF's breadcrumbs, minus those that lead to :class:`NotFoundView`."""
        crumbs: list[tuple[str, str]] = super().get_breadcrumbs(request)
        return [(name, url) for name, url in crumbs if not _answered_by_catch_all(url)]


def _answered_by_catch_all(url: str) -> bool:
    try:
        match = resolve(urlsplit(url).path)
    except Resolver404:
        return False
    return getattr(match.func, "cls", None) is NotFoundView


def _permissions(*extra: type[BasePermission]) -> list[BasePermission]:
    return [permission() for permission in (*api_permission_classes(), *extra)]


class APIViewSet(viewsets.GenericViewSet[Any]):
    """The API's common policies: JSON in, JSON or the browsable API out, its permissions and error bodies."""

    schema = AutoSchema()
    parser_classes = (StrictJSONParser,)
    renderer_classes = (JSONRenderer, BrowsableRenderer)
    pagination_class = Pagination
    #: Permission classes added to the configured ones, by "action:METHOD" ("*": every request).
    extra_permissions: ClassVar[dict[str, tuple[type[BasePermission], ...]]] = {}
    #: What POST to an action takes (also the form the browsable API shows for it).
    input_serializers: ClassVar[dict[str, type[serializers.Serializer[Any]]]] = {}
    #: The browsable API's HTML form of a POST action, when it differs from its input serializer.
    html_forms: ClassVar[dict[str, type[serializers.Serializer[Any]]]] = {}

    def get_permissions(self) -> list[BasePermission]:
        """``ALIPAY["API_PERMISSION_CLASSES"]``, plus what this view or action needs on top."""
        key = f"{self.action}:{(self.request.method or '').upper()}"
        return _permissions(*self.extra_permissions.get("*", ()), *self.extra_permissions.get(key, ()))

    def get_exception_handler(self) -> Callable[..., Response | None]:
        """Every error answers with the API's error body."""
        return errors.exception_handler

    def get_serializer_class(self) -> Any:
        """The input serializer of a POST, else the representation of the objects."""
        method = getattr(getattr(self, "request", None), "method", None)
        if method == "POST" and self.action in self.input_serializers:
            return self.input_serializers[self.action]
        return super().get_serializer_class()

    def get_object(self) -> Any:
        """The object named in the URL among the user's; 404 for anything else, ids out of range included."""
        value = str(self.kwargs.get(self.lookup_url_kwarg or self.lookup_field, ""))
        if not value.isascii() or not value.isdigit() or int(value) > _ID_MAX:
            raise NotFound()
        return super().get_object()


class NotFoundView(APIView):
    """Any other URL under the API's prefix: a 404 with the API's error body (not Django's HTML page)."""

    schema = None
    permission_classes = ()
    renderer_classes = (JSONRenderer, BrowsableRenderer)
    parser_classes = (StrictJSONParser,)

    def get_exception_handler(self) -> Callable[..., Response | None]:
        """Every error answers with the API's error body."""
        return errors.exception_handler

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """Whatever the method (OPTIONS included): not found."""
        super().initial(request, *args, **kwargs)
        raise NotFound()


def _valid(serializer_class: type[serializers.Serializer[Any]], data: Any, **context: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data, context=context)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class RootView(APIRootView):
    """The API's entry point: links to the lists, the schema and (when installed) the interactive docs."""

    schema = None
    renderer_classes = (JSONRenderer, BrowsableRenderer)

    def get(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        """DRF's links to the lists, then ``schema`` and ``docs``."""
        response: Response = super().get(request, *args, **kwargs)
        namespace = getattr(request.resolver_match, "namespace", "")
        for name in ("schema", "docs"):
            try:
                url = reverse(f"{namespace}:{name}" if namespace else name, request=request)
            except NoReverseMatch:
                continue  # the docs without drf-spectacular-sidecar
            response.data[name] = url
        return response

    def get_permissions(self) -> list[BasePermission]:
        """``ALIPAY["API_PERMISSION_CLASSES"]``."""
        return _permissions()

    def get_exception_handler(self) -> Callable[..., Response | None]:
        """Every error answers with the API's error body."""
        return errors.exception_handler


@extend_schema(tags=["trades"])
class TradeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, APIViewSet):
    """Trades of the user's merchants: list, get, create (start a payment), query, refund and reverse."""

    queryset = Trade.objects.none()
    serializer_class = TradeSerializer
    lookup_value_regex = "[0-9]+"
    extra_permissions: ClassVar[dict[str, tuple[type[BasePermission], ...]]] = {
        "create:POST": (CanCreateTrade,),
        "sync:POST": (CanSyncTrade,),
        "refund_list_create:POST": (CanRefundTrade,),
        "reverse_trade:POST": (CanReverseTrade,),
    }
    input_serializers: ClassVar[dict[str, type[serializers.Serializer[Any]]]] = {
        "create": TradeCreateSerializer,
        "refund_list_create": RefundCreateSerializer,
        "reverse_trade": ReverseSerializer,
    }
    html_forms: ClassVar[dict[str, type[serializers.Serializer[Any]]]] = {
        "refund_list_create": RefundFormSerializer,
    }

    def get_queryset(self) -> QuerySet[Trade]:
        """The user's trades, newest first, filtered by the list's query parameters."""
        queryset = (
            access_for(self.request.user)
            .scope(Trade.objects.all())
            .select_related("merchant")
            .order_by("-created_at", "-pk")
        )
        if self.action == "list":
            wanted = _valid(TradeFilterSerializer, self.request.query_params)
            queryset = queryset.filter(**wanted)
        return queryset

    @document(
        summary="List trades",
        parameters=[TradeFilterSerializer],
        responses=_responses({200: TradeSerializer(many=True)}, 400, *_READ),
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The user's trades, a page at a time."""
        return super().list(request, *args, **kwargs)

    @document(summary="Get a trade", responses=_responses({200: TradeSerializer}, 404, *_READ))
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """One trade."""
        return super().retrieve(request, *args, **kwargs)

    @document(
        summary="Create a trade and start its payment",
        description=(
            "Needs the permission django_alipay.add_trade. "
            "Online products answer with the cashier URL (and an auto-submitting form); a QR code payment "
            "with the code to show; a barcode payment with its result (the trade's status, and payment.error "
            "when Alipay refused it or its outcome is not known yet)."
        ),
        request=TradeCreateSerializer,
        responses=_responses({201: TradeStartSerializer}, 400, 409, 401, 403, 406, 415, 502, 503),
    )
    def create(self, request: Request) -> Response:
        """Start a payment (domain: trades.create_trade)."""
        data = _valid(TradeCreateSerializer, request.data, request=request)
        start = trade_domain.create_trade(
            data["merchant"],
            out_trade_no=data["out_trade_no"],
            amount=data["amount"],
            currency=data.get("currency"),
            subject=data["subject"],
            product=data["product"],
            body=data["body"],
            buyer_identity_code=data.get("buyer_identity_code"),
            return_url=data.get("return_url"),
        )
        body = TradeStartSerializer(start, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_201_CREATED, headers=self._location("trade", start.trade.pk))

    @document(
        summary="Query a trade at Alipay and apply what it says",
        description="Needs the permission django_alipay.sync_trade.",
        request=None,
        responses=_responses({200: SyncResultSerializer}, *_WRITE),
    )
    @action(detail=True, methods=["post"], name="Query Alipay")
    def sync(self, request: Request, pk: str | None = None) -> Response:
        """Ask Alipay about the trade (domain: trades.sync_trade)."""
        trade = self.get_object()
        change = trade_domain.sync_trade(trade)
        trade.refresh_from_db()
        result = {
            "found": change is not None,
            "changed": change.changed if change else False,
            "previous_status": change.previous_status if change else trade.status,
            "status": trade.status,
            "flag": change.flag if change else "",
            "message": change.message if change else "",
            "trade": trade,
        }
        return Response(SyncResultSerializer(result, context=self.get_serializer_context()).data)

    @document(
        methods=["GET"],
        summary="List a trade's refunds and reversals",
        request=None,
        responses=_responses({200: RefundSerializer(many=True)}, 404, 400, *_READ),
    )
    @document(
        methods=["POST"],
        summary="Refund part or all of a trade",
        description=(
            "Needs the permission django_alipay.refund_trade and an Idempotency-Key header. The refund is "
            "sent to Alipay at once; its status says how far it got: succeeded, submitted, unknown or failed."
        ),
        parameters=[_IDEMPOTENCY_REQUIRED],
        request={"application/json": RefundCreateSerializer},  # the browsable API's form is not the API
        responses=_responses({201: RefundSerializer}, 409, 422, *_WRITE),
    )
    @action(
        detail=True,
        methods=["get", "post"],
        url_path="refunds",
        url_name="refunds",
        name="Refunds",
        # Form posts are the browsable API's refund form only: it sends its key as a field.
        parser_classes=(StrictJSONParser, FormParser, MultiPartParser),
    )
    def refund_list_create(self, request: Request, pk: str | None = None) -> Response:
        """GET: the trade's refunds. POST: refund it (domain: refunds.request_refund)."""
        trade = self.get_object()
        if request.method == "GET":
            page = self.paginate_queryset(
                trade.refunds.select_related("trade").order_by("-created_at", "-pk")
            )
            context = self.get_serializer_context()
            return self.get_paginated_response(RefundSerializer(page, many=True, context=context).data)
        key = request.headers.get(errors.IDEMPOTENCY_HEADER)
        if request.content_type.startswith(_FORM_TYPES):
            # Only the browsable API's form posts a form (its key as a field, no header); clients send JSON.
            if key is not None or "idempotency_key" not in request.data:
                raise UnsupportedMediaType(request.content_type)
            key = _valid(RefundFormSerializer, request.data)["idempotency_key"]
        if key is None:
            raise serializers.ValidationError(
                {
                    errors.IDEMPOTENCY_HEADER: [
                        _(
                            "A refund needs an Idempotency-Key header naming this request (e.g. a UUID), so "
                            "that sending it again cannot refund twice."
                        )
                    ]
                }
            )
        data = _valid(RefundCreateSerializer, request.data)
        refund = refund_domain.request_refund(
            trade, data["amount"], reason=data["reason"], idempotency_key=key, currency=data.get("currency")
        )
        body = RefundSerializer(refund, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_201_CREATED, headers=self._location("refund", refund.pk))

    @document(
        summary="Reverse an in-store trade (full amount, on its Beijing payment day)",
        description=(
            "Needs the permission django_alipay.reverse_trade. Answers 202 with the reversal (asking again "
            "answers with the same one), or 409 saying why the trade cannot be reversed and what to do "
            "instead."
        ),
        parameters=[_IDEMPOTENCY_OPTIONAL],
        request=ReverseSerializer,
        responses=_responses({202: RefundSerializer}, 409, 422, *_WRITE),
    )
    @action(detail=True, methods=["post"], url_path="reverse", url_name="reverse", name="Reverse")
    def reverse_trade(self, request: Request, pk: str | None = None) -> Response:
        """Reverse the trade (domain: refunds.reverse)."""
        trade = self.get_object()
        data = _valid(ReverseSerializer, request.data)
        refund = refund_domain.reverse(
            trade, reason=data["reason"], idempotency_key=request.headers.get(errors.IDEMPOTENCY_HEADER)
        )
        body = RefundSerializer(refund, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers=self._location("refund", refund.pk))

    def _location(self, kind: str, pk: int) -> dict[str, str]:
        namespace = getattr(self.request.resolver_match, "namespace", "")
        name = f"{namespace}:{kind}-detail" if namespace else f"{kind}-detail"
        return {"Location": reverse(name, kwargs={"pk": pk}, request=self.request)}


@extend_schema(tags=["refunds"])
class RefundViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, APIViewSet):
    """Refunds and reversals of the user's merchants (created under their trade)."""

    queryset = Refund.objects.none()
    serializer_class = RefundSerializer
    lookup_value_regex = "[0-9]+"

    def get_queryset(self) -> QuerySet[Refund]:
        """The user's refunds, newest first, filtered by the list's query parameters."""
        queryset = (
            access_for(self.request.user)
            .scope(Refund.objects.all())
            .select_related("trade")
            .order_by("-created_at", "-pk")
        )
        if self.action == "list":
            wanted = _valid(RefundFilterSerializer, self.request.query_params)
            queryset = queryset.filter(**{("trade_id" if k == "trade" else k): v for k, v in wanted.items()})
        return queryset

    @document(
        summary="List refunds and reversals",
        parameters=[RefundFilterSerializer],
        responses=_responses({200: RefundSerializer(many=True)}, 400, *_READ),
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The user's refunds, a page at a time."""
        return super().list(request, *args, **kwargs)

    @document(summary="Get a refund or reversal", responses=_responses({200: RefundSerializer}, 404, *_READ))
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """One refund or reversal."""
        return super().retrieve(request, *args, **kwargs)


@extend_schema(tags=["notifications"])
class NotificationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, APIViewSet):
    """Notifications received for the user's merchants, as stored on arrival; staff only."""

    queryset = Notification.objects.none()
    serializer_class = NotificationSerializer
    lookup_value_regex = "[0-9]+"
    extra_permissions: ClassVar[dict[str, tuple[type[BasePermission], ...]]] = {"*": (IsAdminUser,)}

    def get_queryset(self) -> QuerySet[Notification]:
        """The user's notifications (those naming no merchant: superusers only), newest first."""
        queryset = (
            access_for(self.request.user)
            .scope(Notification.objects.all(), unassigned=True)
            .order_by("-received_at", "-pk")
        )
        if self.action == "list":
            queryset = queryset.filter(**_valid(NotificationFilterSerializer, self.request.query_params))
        return queryset

    @document(
        summary="List notifications (staff only)",
        parameters=[NotificationFilterSerializer],
        responses=_responses({200: NotificationSerializer(many=True)}, 400, *_READ),
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The user's notifications, a page at a time."""
        return super().list(request, *args, **kwargs)

    @document(
        summary="Get a notification (staff only)",
        responses=_responses({200: NotificationSerializer}, 404, *_READ),
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """One notification."""
        return super().retrieve(request, *args, **kwargs)
