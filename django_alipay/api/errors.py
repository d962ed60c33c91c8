"""Render every refusal of the REST API as one error body, carrying Alipay's code and catalog description.

Every error answer has the shape::

    {"error": {"code": "refund_amount_exceeded", "message": "...", "alipay_code": null,
               "description": null, "field": null}}

``code`` is this API's machine-readable reason (see :data:`ERROR_CODES`), ``message`` is for a person,
``alipay_code`` and ``description`` are the gateway's error code and its catalog description when Alipay
refused something, and ``field`` names the input (body field or header) that was wrong. Validation errors
add ``details``: every failing input with its messages.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import DatabaseError
from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from django_alipay.catalog_text import describe
from django_alipay.domain.errors import (
    DomainError,
    IdempotencyConflict,
    RefundAmountExceeded,
    RefundNotAllowed,
    RefundWindowClosed,
    ReverseNotAllowed,
    TradeNotAllowed,
)
from django_alipay.exceptions import AlipayConfigurationError
from django_alipay.protocol.codes import Verdict, lookup_error
from django_alipay.protocol.errors import (
    AlipayError,
    AmountError,
    InvalidParameterError,
    KeyFormatError,
)
from django_alipay.protocol.interpretation import verdict_of

__all__ = ["ERROR_CODES", "IDEMPOTENCY_HEADER", "error_body", "exception_handler"]

logger = logging.getLogger("django_alipay.api")

#: The request header naming a refund request once, so that sending it again cannot refund twice.
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"

#: The API's error codes and what each one means.
ERROR_CODES: Final[Mapping[str, str]] = {
    "invalid": "The request is malformed or a value is not acceptable (see field).",
    "invalid_amount": "An amount is not canonical decimal text of the currency, or is out of range.",
    "parse_error": "The body is not valid JSON (or nests arrays and objects more than 32 levels deep).",
    "not_authenticated": "No valid credentials were sent.",
    "permission_denied": "The user may not do this.",
    "not_found": "No such object, or not one of the user's merchants.",
    "method_not_allowed": "The method is not allowed on this URL.",
    "not_acceptable": "No response format matches the Accept header.",
    "unsupported_media_type": "The body is not JSON.",
    "throttled": "Too many requests.",
    "trade_not_allowed": "The trade cannot be created as asked (order number used, merchant inactive).",
    "refund_not_allowed": "The trade cannot be refunded (unpaid, closed, reversed or fully refunded).",
    "refund_window_closed": "The refund period of the trade has ended.",
    "refund_amount_exceeded": "The amount exceeds what is still refundable.",
    "reverse_not_allowed": "The trade cannot be reversed; the message says why and what to do instead.",
    "idempotency_conflict": "The Idempotency-Key was already used with different parameters.",
    "not_allowed": "The app's rules refuse the operation.",
    "gateway_refused": "Alipay refused the request (see alipay_code and description).",
    "gateway_unavailable": "Alipay could not be reached or its answer is unknown; try again later.",
    "configuration_error": "The merchant or the app is not configured correctly.",
    "database_unavailable": "The shop's database did not answer; try again later (see Retry-After).",
}

#: Seconds a client is asked to wait (Retry-After) before trying again while the shop's database is down.
DATABASE_RETRY_AFTER: Final = 30

# Domain refusals: nothing was changed, so the client gets a conflict with the current state (409), except a
# reused idempotency key, which is a client mistake about the request itself (422).
_DOMAIN_STATUS: Final[tuple[tuple[type[AlipayError], int, str], ...]] = (
    (IdempotencyConflict, status.HTTP_422_UNPROCESSABLE_ENTITY, "idempotency_conflict"),
    (RefundAmountExceeded, status.HTTP_409_CONFLICT, "refund_amount_exceeded"),
    (RefundWindowClosed, status.HTTP_409_CONFLICT, "refund_window_closed"),
    (ReverseNotAllowed, status.HTTP_409_CONFLICT, "reverse_not_allowed"),
    (RefundNotAllowed, status.HTTP_409_CONFLICT, "refund_not_allowed"),
    (TradeNotAllowed, status.HTTP_409_CONFLICT, "trade_not_allowed"),
    (DomainError, status.HTTP_409_CONFLICT, "not_allowed"),
)
_DRF_CODES: Final[tuple[tuple[type[exceptions.APIException], str], ...]] = (
    (exceptions.ParseError, "parse_error"),
    (exceptions.ValidationError, "invalid"),
    (exceptions.NotAuthenticated, "not_authenticated"),
    (exceptions.AuthenticationFailed, "not_authenticated"),
    (exceptions.PermissionDenied, "permission_denied"),
    (exceptions.NotFound, "not_found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.NotAcceptable, "not_acceptable"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.Throttled, "throttled"),
)
# Domain parameter names that reach the client as something else.
_FIELD_NAMES: Final[Mapping[str, str]] = {"idempotency_key": IDEMPOTENCY_HEADER}


def error_body(
    code: str,
    message: str,
    *,
    alipay_code: str | None = None,
    description: str | None = None,
    field: str | None = None,
    details: Mapping[str, list[str]] | None = None,
) -> dict[str, Any]:
    """The JSON body of an error answer (see the module docstring)."""
    body: dict[str, Any] = {
        "code": code,
        "message": message,
        "alipay_code": alipay_code,
        "description": description,
        "field": field,
    }
    if details is not None:
        body["details"] = dict(details)
    return {"error": body}


def _messages(detail: Any) -> list[str]:
    """Every message of a (possibly nested) DRF error detail, as plain strings."""
    if isinstance(detail, Mapping):
        return [message for value in detail.values() for message in _messages(value)]
    if isinstance(detail, list):
        return [message for value in detail for message in _messages(value)]
    return [str(detail)]


def _validation_body(exc: exceptions.ValidationError) -> dict[str, Any]:
    detail = exc.detail
    if isinstance(detail, Mapping):
        fields = {str(name): _messages(value) for name, value in detail.items()}
    else:
        fields = {"non_field_errors": _messages(detail)}
    field, messages = next(iter(fields.items()), ("non_field_errors", [_("Invalid input.")]))
    shown = None if field == "non_field_errors" else field
    code = "invalid_amount" if shown == "amount" else "invalid"
    return error_body(code, messages[0] if messages else _("Invalid input."), field=shown, details=fields)


def _drf_response(exc: exceptions.APIException) -> Response:
    headers: dict[str, str] = {}
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = str(auth_header)
    wait = getattr(exc, "wait", None)
    if wait:
        headers["Retry-After"] = f"{int(wait)}"
    if isinstance(exc, exceptions.ValidationError):
        body = _validation_body(exc)
    else:
        code = next((name for kind, name in _DRF_CODES if isinstance(exc, kind)), "invalid")
        body = error_body(code, " ".join(_messages(exc.detail)))
    return Response(body, status=exc.status_code, headers=headers)


def _alipay_response(exc: AlipayError) -> Response:
    if isinstance(exc, InvalidParameterError):
        field = _FIELD_NAMES.get(exc.parameter or "", exc.parameter)
        code = "invalid_amount" if isinstance(exc, AmountError) else "invalid"
        return Response(error_body(code, exc.message, field=field), status=status.HTTP_400_BAD_REQUEST)
    for kind, http_status, code in _DOMAIN_STATUS:
        if isinstance(exc, kind):
            return Response(error_body(code, exc.message), status=http_status)
    if isinstance(exc, KeyFormatError):
        logger.error("REST API request failed on a merchant key: %s", exc.message)
        return Response(
            error_body("configuration_error", exc.message), status=status.HTTP_500_INTERNAL_SERVER_ERROR
        )
    described = describe(exc.description or (lookup_error(exc.code).description if exc.code else ""))
    description = described or None
    if verdict_of(exc) is Verdict.REFUSED:
        return Response(
            error_body("gateway_refused", exc.message, alipay_code=exc.code, description=description),
            status=status.HTTP_502_BAD_GATEWAY,
        )
    # Transport failures, Alipay system errors, unknown outcomes, codes in no catalog (they prove nothing):
    # the same request may succeed later.
    return Response(
        error_body("gateway_unavailable", exc.message, alipay_code=exc.code, description=description),
        status=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "30"},
    )


def exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response | None:
    """DRF exception handler of the API views: every known error becomes an error body; others propagate."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    if isinstance(exc, exceptions.APIException):
        response = _drf_response(exc)
    elif isinstance(exc, AlipayError):
        response = _alipay_response(exc)
    elif isinstance(exc, AlipayConfigurationError):
        logger.error("REST API request failed on the configuration: %s", exc)
        response = Response(
            error_body("configuration_error", str(exc)), status=status.HTTP_500_INTERNAL_SERVER_ERROR
        )
    elif isinstance(exc, DatabaseError):
        # The database (or the connection to it) is down: a transient state the client can wait out, not a
        # bug. The driver's message may name hosts and users, so it goes to the log only.
        logger.error("REST API request failed on the database: %s", type(exc).__name__, exc_info=exc)
        response = Response(
            error_body(
                "database_unavailable",
                _("The shop's database is not answering right now; try again later."),
            ),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
        )
    else:
        return None
    set_rollback()
    _log(response, context)
    return response


def _log(response: Response, context: Mapping[str, Any]) -> None:
    """One line per refused request: who asked what, and why it was refused (never a body or a secret)."""
    request = context.get("request")
    # Only a user already authenticated: authenticating now may need the database that just failed.
    user = getattr(request, "_user", None)
    body = response.data["error"] if isinstance(response.data, Mapping) else {}
    logger.log(
        logging.WARNING if response.status_code >= 500 else logging.INFO,
        "REST API %s %s by user %s refused with %s %s: %s",
        getattr(request, "method", "?"),
        getattr(request, "path", "?"),
        getattr(user, "pk", None),
        response.status_code,
        body.get("code"),
        body.get("message"),
    )
