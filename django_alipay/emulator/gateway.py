"""gateway.do: the gateway's checks in their documented order, dispatch to the services, and fault injection.

Order of the checks, as the gateway makes them: the service is known (ILLEGAL_SERVICE), the partner is
known (ILLEGAL_PARTNER), the sign type is allowed for that partner (ILLEGAL_SIGN_TYPE), the signature
holds (ILLEGAL_SIGN), the partner has contracted the service (ILLEGAL_PARTNER_EXTERFACE), the charset is
supported (ILLEGAL_CHARSET); only then does the service validate its own parameters. Gateway refusals
are unsigned ``is_success=F`` envelopes (an HTML error page naming the code for the page services).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Final

from cryptography.hazmat.primitives.asymmetric import rsa
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.http import http_date

from django_alipay.protocol import dsa
from django_alipay.protocol.codes import lookup_error
from django_alipay.protocol.errors import InvalidParameterError, KeyFormatError
from django_alipay.protocol.keys import KeyMaterial, load_public_key
from django_alipay.protocol.signing import verify

from . import files, instore, online
from .call import Call, GatewayRefusal
from .conf import runtime
from .models import Delivery, GatewayCall, Partner
from .wire import (
    Outcome,
    WireRequest,
    bad_gateway,
    drop_connection,
    http_outcome,
    parse_request,
    render,
    text_outcome,
    truncated,
    xml_outcome,
)

__all__ = ["PAGE_SERVICES", "SERVICES", "handle_gateway", "usable_sign_types"]

logger = logging.getLogger("django_alipay.emulator.gateway")

Handler = Callable[[Call], Outcome]

NOTIFY_VERIFY: Final = "notify_verify"
PAGE_SERVICES: Final = frozenset({"create_forex_trade", "create_forex_trade_wap"})
SERVICES: Final[dict[str, Handler]] = {
    "create_forex_trade": online.create_forex_trade,
    "create_forex_trade_wap": online.create_forex_trade,
    "single_trade_query": online.single_trade_query,
    "forex_refund": online.forex_refund,
    "alipay.acquire.overseas.spot.pay": instore.spot_pay,
    "alipay.acquire.precreate": instore.precreate,
    "alipay.acquire.overseas.query": instore.overseas_query,
    "alipay.acquire.overseas.spot.refund": instore.spot_refund,
    "alipay.acquire.overseas.spot.reverse": instore.spot_reverse,
    "alipay.acquire.cancel": instore.acquire_cancel,
    "forex_rate_file": files.forex_rate_file,
    "forex_compare_file": files.forex_compare_file,
    "forex_liquidation_file": files.forex_liquidation_file,
}
_EXCERPT: Final = 2000
_SANDBOX_NOTE: Final = "the sandbox supports MD5 signatures only (RSA, RSA2 and DSA are refused)"


def _merchant_key(partner: Partner) -> KeyMaterial | None:
    if not partner.merchant_public_key:
        return None
    try:
        return load_public_key(partner.merchant_public_key)
    except KeyFormatError:
        return None


def usable_sign_types(partner: Partner) -> list[str]:
    """The partner's allowed sign types that it also has key material for."""
    key = _merchant_key(partner)
    usable = []
    for sign_type in partner.sign_type_list:
        md5 = sign_type == "MD5" and bool(partner.md5_key)
        rsa_ok = sign_type in ("RSA", "RSA2") and isinstance(key, rsa.RSAPublicKey)
        dsa_ok = sign_type == "DSA" and isinstance(key, dsa.DSAPublicKey)
        if md5 or rsa_ok or dsa_ok:
            usable.append(sign_type)
    return usable


def _signature_holds(wire: WireRequest, partner: Partner, sign_type: str) -> bool:
    key: KeyMaterial | None = partner.md5_key if sign_type == "MD5" else _merchant_key(partner)
    if not key or not wire.params.get("sign"):
        return False
    try:
        return verify(wire.params, key=key, sign_type=sign_type, charset=wire.codec)
    except (InvalidParameterError, KeyFormatError):
        return False


def _refusal(wire: WireRequest, service: str, code: str, note: str = "") -> Outcome:
    """A gateway refusal: unsigned is_success=F, or an HTML page naming the code for a page service."""
    if service in PAGE_SERVICES:
        page = render_to_string(
            "django_alipay_emulator/error.html",
            {"code": code, "description": lookup_error(code).description, "note": note},
        )
        return http_outcome(
            HttpResponse(page, content_type="text/html; charset=utf-8"), label=code, note=note
        )
    return xml_outcome(charset=wire.response_charset, is_success=False, error=code, label=code, note=note)


def _notify_verify(wire: WireRequest, partner: Partner | None) -> Outcome:
    """notify_verify: ``true``, ``false`` or ``invalid`` as text; a signature is checked only if sent."""
    charset = wire.response_charset
    params = {name: value for name, value in wire.params.items() if value != ""}
    notify_id = params.get("notify_id")
    if partner is None or not notify_id:
        return text_outcome("invalid", charset=charset, note="partner or notify_id missing or unknown")
    state = runtime()
    if state.get("NOTIFY_VERIFY_METHOD") == "get_only" and wire.method != "GET":
        return text_outcome("invalid", charset=charset, note=f"notify_verify by {wire.method}, not GET")
    if "sign" in params:
        sign_type = params.get("sign_type", "")
        if state.get("SANDBOX") == "on" and sign_type != "MD5":
            return text_outcome("invalid", charset=charset, note=_SANDBOX_NOTE)
        if sign_type not in usable_sign_types(partner) or not _signature_holds(wire, partner, sign_type):
            return text_outcome("invalid", charset=charset, note="the optional signature does not verify")
    if not partner.is_contracted(NOTIFY_VERIFY):
        return text_outcome("invalid", charset=charset, note="notify_verify is not contracted")
    deliveries = list(
        Delivery.objects.filter(notify_id=notify_id, notification__partner=partner).order_by("id")
    )
    if not deliveries:
        return text_outcome("false", charset=charset, note="unknown notify_id")
    if any(delivery.outcome == Delivery.ACKNOWLEDGED for delivery in deliveries):
        return text_outcome("false", charset=charset, note="the merchant already acknowledged this notify_id")
    ttl = float(state.get("NOTIFY_ID_TTL"))
    if state.real_now() - deliveries[0].sent_at > timedelta(seconds=state.real_seconds(ttl)):
        return text_outcome("false", charset=charset, note=f"notify_id older than {ttl:g}s")
    return text_outcome("true", charset=charset)


def _dispatch(request: HttpRequest, wire: WireRequest) -> tuple[Outcome, Partner | None]:
    params = wire.params
    service = params.get("service", "")
    if wire.conflicts:
        names = ", ".join(sorted(wire.conflicts))
        return _refusal(
            wire, service, "ILLEGAL_ARGUMENT", f"given twice with different values: {names}"
        ), None
    known = service in SERVICES or service == NOTIFY_VERIFY
    if not known:
        return _refusal(wire, "", "ILLEGAL_SERVICE", f"unknown service {service!r}"), None
    partner = (
        Partner.objects.filter(partner=params.get("partner", "")).first() if params.get("partner") else None
    )
    if service == NOTIFY_VERIFY:
        return _notify_verify(wire, partner), partner
    if partner is None:
        return _refusal(wire, service, "ILLEGAL_PARTNER"), None
    sign_type = params.get("sign_type", "")
    if runtime().get("SANDBOX") == "on" and sign_type != "MD5":
        return _refusal(wire, service, "ILLEGAL_SIGN_TYPE", _SANDBOX_NOTE), partner
    if sign_type not in usable_sign_types(partner):
        return _refusal(wire, service, "ILLEGAL_SIGN_TYPE", f"sign_type {sign_type!r} not allowed"), partner
    if not _signature_holds(wire, partner, sign_type):
        return _refusal(wire, service, "ILLEGAL_SIGN"), partner
    if not partner.is_contracted(service):
        return _refusal(wire, service, "ILLEGAL_PARTNER_EXTERFACE", f"{service} is not contracted"), partner
    if wire.charset is None or wire.undecodable:
        note = f"_input_charset {wire.declared_charset!r}" if wire.charset is None else "undecodable bytes"
        return _refusal(wire, service, "ILLEGAL_CHARSET", note), partner
    call = Call(
        http=request, wire=wire, service=service, partner=partner, sign_type=sign_type, now=runtime().now()
    )
    try:
        return SERVICES[service](call), partner
    except GatewayRefusal as refusal:
        return _refusal(wire, service, refusal.code, refusal.note), partner


def _record(
    wire: WireRequest, partner: Partner | None, outcome: Outcome, response: HttpResponse, fault: str | None
) -> None:
    excerpt = b"" if response.streaming else response.content[:_EXCERPT]
    params = {
        name: value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        for name, value in wire.params.items()
    }
    GatewayCall.objects.create(
        service=wire.params.get("service", "")[:64],
        partner=partner.partner if partner is not None else wire.params.get("partner", "")[:32],
        method=wire.method[:8],
        params=params,
        status_code=response.status_code,
        outcome=outcome.label[:64],
        fault=fault or "",
        note=outcome.note,
        response_excerpt=excerpt.decode(outcome.charset if outcome.kind != "http" else "utf-8", "replace"),
    )


def handle_gateway(request: HttpRequest) -> HttpResponse:
    """Answer one gateway.do call, applying the fault plan around the real processing."""
    wire = parse_request(request)
    service = wire.params.get("service", "")
    decision = runtime().faults.gateway_decision(service)
    if decision.latency:
        time.sleep(decision.latency)
    partner: Partner | None = None
    if decision.system_error:
        # Refused before any processing: retrying the very same request is safe.
        outcome = _refusal(wire, service, "SYSTEM_ERROR", "fault injection")
    else:
        outcome, partner = _dispatch(request, wire)
    response = render(outcome, unsigned=decision.unsigned)
    if decision.http_502:
        response = bad_gateway()
    elif decision.truncate:
        response = truncated(response)
    try:
        _record(wire, partner, outcome, response, decision.name)
    except Exception:  # the log is a convenience; it must never change an answer
        logger.exception("could not record a gateway call")
    if decision.drop:
        return drop_connection(request)
    # Say how long the body is, as the real gateway does, so clients can tell a complete answer.
    response["Content-Length"] = str(len(response.content))
    # The gateway's Date is its own clock's: a moved emulator clock shows as clock skew to the client, which
    # then explains a refused timestamp instead of leaving a bare ILLEGAL_ARGUMENT.
    response["Date"] = http_date(runtime().now().timestamp())
    return response
