"""Interpretation: turn the gateway's answer to a call into its typed result or its typed error.

Parsing the envelope, checking the response signature, reading ``result_code`` and choosing the exception type
of an Alipay error code by its catalog category all happen here, and nowhere else; the client only sends.
A call returns its result only when the gateway did what was asked (``is_success=T`` and, for the services
that have one, ``result_code`` SUCCESS); every other answer raises, and :func:`verdict_of` says what the
error means for the operation (the tables are :mod:`django_alipay.protocol.codes`' verdicts).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from django_alipay.protocol import envelope, services, signing
from django_alipay.protocol.codes import ResultCode, Verdict, lookup_error, result_code_verdict
from django_alipay.protocol.errors import (
    AlipayBusinessError,
    AlipayError,
    AlipayGatewayError,
    AlipaySystemError,
    GatewayResponseError,
    InvalidParameterError,
    OutcomeUnknownError,
    SignatureError,
    TransportError,
)
from django_alipay.protocol.services import ForexRefundResult, ServiceDefinition

__all__ = [
    "TIMESTAMP_VALIDITY",
    "Reply",
    "check_result_code",
    "interpret_file",
    "interpret_verify",
    "interpret_xml",
    "refusal",
    "verdict_of",
]

#: The gateway lets a request ``timestamp`` expire after 30 minutes (cancel, precreate).
TIMESTAMP_VALIDITY: Final = timedelta(minutes=30)

_CHARSET_PARAM = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_.-]+)", re.IGNORECASE)


@dataclass
class Reply:
    """A 200 answer to interpret: the URL it came from, its headers and body."""

    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    #: The gateway's clock minus ours, from this response's Date header.
    clock_skew: timedelta | None = None


def context_of(definition: ServiceDefinition, wire: Mapping[str, str], raw: bytes) -> dict[str, Any]:
    """The fields every error of this call carries: service, out_trade_no and the raw answer."""
    return {"service": definition.name, "out_trade_no": definition.trade_id(wire), "raw_response": raw}


def interpret_xml(
    definition: ServiceDefinition,
    wire: Mapping[str, str],
    reply: Reply,
    result_type: type[Any],
    *,
    sign_type: str,
    verify_key: Any,
    max_bytes: int,
    charset: str,
) -> Any:
    """The ``result_type`` of an XML answer, or the typed error it stands for.

    ``verify_key`` (None: not verified) checks the signature of a service whose answers are signed; an
    answer that cannot be trusted is an OutcomeUnknownError, never a refusal.
    """
    context = context_of(definition, wire, reply.body)
    verify_key = verify_key if definition.signs_response else None
    try:
        parsed = envelope.parse_response(
            reply.body,
            sign_type=sign_type if verify_key is not None else None,
            key=verify_key,
            max_bytes=max_bytes,
            request_charset=charset,
        )
    except SignatureError as exc:
        raise OutcomeUnknownError(
            f"the response signature cannot be trusted ({exc.message}); query before acting", **context
        ) from exc
    except GatewayResponseError as exc:
        raise GatewayResponseError(exc.message, **context) from exc
    note = skew_note(definition, reply.clock_skew)
    skew = reply.clock_skew if note else None
    if not parsed.is_success:
        raise refusal(definition, parsed.error, context, gateway_level=True, note=note, clock_skew=skew)
    if parsed.response_element is None:
        if result_type is ForexRefundResult:
            return ForexRefundResult(
                service=definition.name, fields={}, raw=reply.body, request=parsed.request
            )
        raise GatewayResponseError("the response has is_success=T but no <response> block", **context)
    if verify_key is not None and parsed.sign_verified is not True:
        raise OutcomeUnknownError(
            "the response is not signed; it cannot be trusted, query before acting", **context
        )
    result_code = parsed.fields.get("result_code")
    if "result_code" in result_type.FIELD_TYPES:
        check_result_code(definition, parsed.fields, result_code, context, note, skew)
    return result_type(
        service=definition.name,
        fields=parsed.fields,
        raw=reply.body,
        request=parsed.request,
        sign_verified=parsed.sign_verified,
        sign_charset=parsed.sign_charset,
    )


def check_result_code(
    definition: ServiceDefinition,
    fields: Mapping[str, str],
    result_code: str | None,
    context: dict[str, Any],
    note: str = "",
    clock_skew: timedelta | None = None,
) -> None:
    """Return for a DONE result code (SUCCESS); raise the refusal for a REFUSED one (FAIL, FAILED), whose
    ``retry_flag=Y`` makes it retryable; OutcomeUnknownError for anything else, known (UNKNOW, UNKNOWN) or
    not; GatewayResponseError when there is none."""
    code = fields.get("detail_error_code") or fields.get("error")
    if result_code is None:
        raise GatewayResponseError("the response has no result_code", **context)
    verdict = result_code_verdict(result_code)
    if verdict is Verdict.DONE:
        return
    if verdict is Verdict.REFUSED:
        retry_flag = fields.get("retry_flag")
        raise refusal(
            definition,
            code,
            context,
            gateway_level=False,
            retryable=True if retry_flag == "Y" else None,
            note=note,
            clock_skew=clock_skew,
        )
    entry = lookup_error(code) if code else None
    if result_code in {member.value for member in ResultCode}:
        message = f"the gateway reports result_code={result_code}: the outcome is not known yet; query it"
    else:
        message = f"the gateway reports an unrecognised result_code {result_code[:40]!r}; query before acting"
    raise OutcomeUnknownError(
        message, code=code or None, description=entry.description if entry else None, **context
    )


def verdict_of(error: AlipayError) -> Verdict:
    """What an error of a call says became of the operation, read from its type, its code and ``retryable``.

    TransportError: NOT_SENT. OutcomeUnknownError (a lost, unparsable or untrusted answer, a system error of a
    state-changing call, an UNKNOW/UNKNOWN result code): UNKNOWN. A refusal (AlipayGatewayError,
    AlipayBusinessError, AlipaySystemError): RETRY when repeating it can help (a retryable system error,
    ``retry_flag=Y``), else its code's :attr:`~django_alipay.protocol.codes.ErrorCode.verdict` (REFUSED for
    a catalog refusal that proves nothing was done). Any other error (one raised before the request was
    built or sent) proves nothing of the gateway's side: UNKNOWN.
    """
    if isinstance(error, TransportError):
        return Verdict.NOT_SENT
    if isinstance(error, OutcomeUnknownError):
        return Verdict.UNKNOWN
    if isinstance(error, AlipayGatewayError | AlipayBusinessError | AlipaySystemError):
        return Verdict.RETRY if error.retryable else lookup_error(error.code).verdict
    return Verdict.UNKNOWN


def refusal(
    definition: ServiceDefinition,
    code: str | None,
    context: dict[str, Any],
    *,
    gateway_level: bool,
    retryable: bool | None = None,
    note: str = "",
    clock_skew: timedelta | None = None,
) -> AlipayError:
    """The typed error for an Alipay error code, chosen by the code's catalog category.

    ``clock_skew`` (set when ``note`` explains a timestamp refusal) is kept on the error for the caller.
    """
    error = _refusal_of(
        definition, code, context, gateway_level=gateway_level, retryable=retryable, note=note
    )
    error.clock_skew = clock_skew
    return error


def _refusal_of(
    definition: ServiceDefinition,
    code: str | None,
    context: dict[str, Any],
    *,
    gateway_level: bool,
    retryable: bool | None,
    note: str,
) -> AlipayError:
    if not code:
        where = "is_success=F" if gateway_level else "a failed result_code"
        return (AlipayGatewayError if gateway_level else AlipayBusinessError)(
            f"the gateway answered {where} without an error code{note}", **context
        )
    entry = lookup_error(code)
    message = f"{entry.code or code}: {entry.description}{note}"
    details = {"code": entry.code or code, "description": entry.description, **context}
    if entry.category == "system":
        if gateway_level or definition.idempotent:
            return AlipaySystemError(message, retryable=entry.retryable, **details)
        # A state-changing call that failed "for a system error" may still have been carried out.
        return OutcomeUnknownError(
            f"{message} (the operation may or may not have happened; query it)", **details
        )
    if entry.category == "gateway":
        return AlipayGatewayError(message, retryable=retryable, **details)
    if entry.category == "business":
        return AlipayBusinessError(message, retryable=retryable, **details)
    # Not in the catalog: a gateway-level refusal is still a refusal; a business one stays business.
    cls = AlipayGatewayError if gateway_level else AlipayBusinessError
    return cls(message, retryable=retryable, **details)


def interpret_verify(reply: Reply, *, max_bytes: int) -> bool:
    """notify_verify's answer: True only for exactly ``true``; an XML refusal raises its mapped error."""
    text = reply.body.strip(b" \t\r\n\x0b\x0c")
    if text == b"true":
        return True
    if text.startswith((b"<?xml", b"<alipay")):
        definition = services.NOTIFY_VERIFY
        context: dict[str, Any] = {"service": definition.name, "raw_response": reply.body}
        try:
            parsed = envelope.parse_response(reply.body, max_bytes=max_bytes)
        except GatewayResponseError:
            return False
        if not parsed.is_success:
            raise refusal(definition, parsed.error, context, gateway_level=True)
    return False


def interpret_file(
    definition: ServiceDefinition, wire: Mapping[str, str], reply: Reply, *, max_bytes: int, charset: str
) -> Any:
    """A file service's records; an XML refusal, an HTML page or undecodable bytes raise."""
    context = context_of(definition, wire, reply.body)
    head = reply.body[:256].lstrip()
    if head.startswith((b"<?xml", b"<alipay")):
        try:
            parsed = envelope.parse_response(reply.body, max_bytes=max_bytes)
        except GatewayResponseError as exc:
            raise GatewayResponseError(exc.message, **context) from exc
        if not parsed.is_success:
            raise refusal(definition, parsed.error, context, gateway_level=True)
        raise GatewayResponseError(f"{definition.name} answered an XML envelope instead of a file", **context)
    if head.lower().startswith((b"<!doctype html", b"<html")):
        raise GatewayResponseError(f"{definition.name} answered an HTML page instead of a file", **context)
    declared = _declared_charset(reply.headers.get("Content-Type", "")) or charset
    try:
        text = reply.body.decode(declared)
    except UnicodeDecodeError as exc:
        raise GatewayResponseError(
            f"{definition.name} answered bytes that are not {declared}", **context
        ) from exc
    return services.parse_file(definition, text, reply.body)


def skew_note(definition: ServiceDefinition, skew: timedelta | None) -> str:
    """For calls with an expiring timestamp: say so when a refusal comes with a large clock difference."""
    if not definition.has_timestamp or skew is None or abs(skew) <= TIMESTAMP_VALIDITY:
        return ""
    return (
        f" (the gateway's clock differs from this server's by {skew.total_seconds():+.0f} s, more than the "
        f"{TIMESTAMP_VALIDITY.total_seconds() // 60:.0f}-minute timestamp validity: fix this server's clock)"
    )


def _declared_charset(content_type: str) -> str | None:
    match = _CHARSET_PARAM.search(content_type)
    if match is None:
        return None
    try:
        return signing.normalize_charset(match.group(1))
    except InvalidParameterError:
        return None
