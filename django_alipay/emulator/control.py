"""The control API tests and demos drive the emulator with: partners, payments, clock, faults, notifications.

Every endpoint answers JSON. POST bodies may be JSON (``Content-Type: application/json``) or a form.
Reading (GET) is open; changing anything (POST) needs either the per-run control token in the
``X-Emulator-Token`` header (scripts and :mod:`django_alipay.testing`) or, from a browser, Django's CSRF
token (a form of a page served by the emulator), so that another site cannot pay trades or replace a
partner's keys through a visitor's browser.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from typing import Any, Final

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from django_alipay.protocol.clock import FixedClock, format_datetime

from . import alipay_keys, notifier
from .actions import buyer_pays, find_buyer, find_trade
from .conf import CONTROL_TOKEN_HEADER, control_token, reset_runtime, runtime
from .console import parse_clock_time
from .faults import FaultPlan, FaultPlanError
from .models import Buyer, Delivery, GatewayCall, Notification, Partner, Refund, Trade
from .operations import PaymentRefused, fmt
from .partners import PartnerError, partner_summary, register_partner
from .seed import BUYERS, PASSWORD, ensure_buyers, reset_buyers
from .views import emulator_view

__all__ = [
    "buyers",
    "calls",
    "clock",
    "config",
    "deliver",
    "faults",
    "keys",
    "notifications",
    "partners",
    "pay",
    "reset",
    "trades",
]

_LIST_LIMIT: Final = 500


class BadRequest(Exception):
    """The control request is malformed; answered with HTTP 400 and the message."""


def _body(request: HttpRequest) -> dict[str, Any]:
    if request.content_type == "application/json":
        if not request.body.strip():
            return {}
        try:
            data = json.loads(request.body)
        except ValueError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise BadRequest("the JSON body must be an object")
        return data
    return {name: request.POST.get(name) for name in request.POST}


def _error(status: int, error: str, message: str) -> JsonResponse:
    return JsonResponse({"error": error, "message": message}, status=status)


_SAFE_METHODS: Final = ("GET", "HEAD", "OPTIONS")


def _no_view(request: HttpRequest) -> HttpResponse:  # what the CSRF check is told it guards (not exempt)
    return HttpResponse()


def _unauthorized(request: HttpRequest) -> HttpResponse | None:
    """None when the request may change the emulator, else the 403 to answer.

    A request carrying ``X-Emulator-Token`` is judged by that token alone; any other needs to pass Django's
    CSRF check (the token of a form the emulator served, with its cookie).
    """
    if request.method in _SAFE_METHODS:
        return None
    sent = request.headers.get(CONTROL_TOKEN_HEADER)
    if sent is not None:
        if secrets.compare_digest(sent.encode(), control_token().encode()):
            return None
        return _error(403, "bad_control_token", f"the {CONTROL_TOKEN_HEADER} header is not this emulator's")
    csrf = CsrfViewMiddleware(lambda request: HttpResponse())
    refused = csrf.process_view(request, _no_view, (), {})
    if refused is None:
        return None
    return _error(
        403,
        "forbidden",
        f"changing the emulator needs its control token (header {CONTROL_TOKEN_HEADER}) or, from a "
        "browser, a form of an emulator page (CSRF token)",
    )


def control_view(
    methods: list[str],
) -> Callable[[Callable[[HttpRequest], HttpResponse]], Callable[..., HttpResponse]]:
    """A JSON control endpoint: guarded like every emulator view; a POST needs the control token or a CSRF
    token (checked here, so that scripts without a CSRF cookie pass on the token); 400 on BadRequest."""

    def decorate(view: Callable[[HttpRequest], HttpResponse]) -> Callable[..., HttpResponse]:
        def wrapped(request: HttpRequest) -> HttpResponse:
            refused = _unauthorized(request)
            if refused is not None:
                return refused
            try:
                return view(request)
            except BadRequest as exc:
                return _error(400, "bad_request", str(exc))

        wrapped.__name__ = view.__name__
        wrapped.__doc__ = view.__doc__
        return csrf_exempt(require_http_methods(methods)(emulator_view(wrapped)))

    return decorate


def _float(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be a number") from None


@control_view(["GET", "POST"])
def partners(request: HttpRequest) -> HttpResponse:
    """GET: the registered partners. POST: register or replace one (partner, md5_key, merchant_public_key,
    sign_types, services, refund_interval)."""
    if request.method == "GET":
        return JsonResponse({"partners": [partner_summary(p) for p in Partner.objects.all()]})
    data = _body(request)
    interval = data.get("refund_interval")
    try:
        partner = register_partner(
            str(data.get("partner") or ""),
            md5_key=str(data.get("md5_key") or ""),
            merchant_public_key=str(data.get("merchant_public_key") or ""),
            sign_types=data.get("sign_types") or None,
            services=data.get("services") or None,
            refund_interval=None if interval in (None, "") else _float(interval, "refund_interval"),
        )
    except PartnerError as exc:
        return _error(400, "invalid_partner", str(exc))
    return JsonResponse(partner_summary(partner))


@control_view(["POST"])
def pay(request: HttpRequest) -> HttpResponse:
    """Pay a trade as a buyer would: partner, out_trade_no (or partner_trans_id, or trade_no), buyer."""
    data = _body(request)
    partner = str(data.get("partner") or "")
    out_trade_no = data.get("out_trade_no") or data.get("partner_trans_id")
    trade = find_trade(partner, out_trade_no=out_trade_no, trade_no=data.get("trade_no"))
    if trade is None:
        return _error(404, "TRADE_NOT_EXIST", "no such trade for this partner")
    buyer_id = data.get("buyer")
    buyer = trade.buyer if (not buyer_id and trade.buyer is not None) else find_buyer(buyer_id)
    if buyer is None:
        return _error(404, "BUYER_NOT_EXIST", f"no seeded buyer {buyer_id!r}")
    try:
        outcome = buyer_pays(trade, buyer)
    except PaymentRefused as refused:
        return _error(409, refused.code, refused.note)
    return JsonResponse(outcome.as_dict())


def _clock_state() -> dict[str, Any]:
    state = runtime()
    now = state.now()
    return {
        "now": now.isoformat(),
        "beijing": format_datetime(now),
        "fixed": isinstance(state.clock, FixedClock),
        "time_scale": state.time_scale,
    }


@control_view(["GET", "POST"])
def clock(request: HttpRequest) -> HttpResponse:
    """GET: the clock. POST: ``now`` (ISO-8601 with an offset, or ``real``), ``advance`` (seconds),
    ``time_scale`` (durations run this many times faster)."""
    if request.method == "POST":
        data = _body(request)
        state = runtime()
        now = data.get("now")
        if now == "real":
            state.set_clock(None)
        elif now:
            try:  # a "+08:00" that form decoding turned into " 08:00" is accepted too
                when = parse_clock_time(str(now))
            except ValueError as exc:
                raise BadRequest(f"{exc}, or 'real'") from None
            state.set_clock(when)
        if data.get("advance") not in (None, ""):
            state.advance_clock(_float(data["advance"], "advance"))
        if data.get("time_scale") not in (None, ""):
            try:
                state.set_time_scale(_float(data["time_scale"], "time_scale"))
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
            notifier.wake()
    return JsonResponse(_clock_state())


@control_view(["GET", "POST"])
def faults(request: HttpRequest) -> HttpResponse:
    """GET: the fault plan. POST: replace it with the JSON body (``{}`` clears every fault)."""
    state = runtime()
    if request.method == "POST":
        try:
            state.faults = FaultPlan.parse(_body(request))
        except FaultPlanError as exc:
            return _error(400, "invalid_fault_plan", str(exc))
    return JsonResponse(state.faults.as_dict())


@control_view(["GET", "POST"])
def config(request: HttpRequest) -> HttpResponse:
    """GET/POST the run-time knobs: refund_interval, notify_id_ttl, retry_schedule, timestamp_tolerance,
    notify_timeout, and the open-point knobs (conf.OPEN_POINT_KNOBS)."""
    state = runtime()
    if request.method == "POST":
        try:
            state.configure(**_body(request))
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    return JsonResponse({name.lower(): value for name, value in state.config.items()})


def _filtered(queryset: Any, request: HttpRequest, fields: Mapping[str, str]) -> Any:
    for param, lookup in fields.items():
        value = request.GET.get(param)
        if value:
            queryset = queryset.filter(**{lookup: value})
    return queryset


@control_view(["GET"])
def notifications(request: HttpRequest) -> HttpResponse:
    """Every notification send (delivery) as JSON, oldest first; filters: partner, out_trade_no, notify_type,
    notify_id."""
    # Notifications first: a notification read as settled then has all its deliveries settled too.
    pending = list(
        _filtered(
            Notification.objects.select_related("partner", "trade"),
            request,
            {
                "partner": "partner__partner",
                "out_trade_no": "trade__out_trade_no",
                "notify_type": "notify_type",
            },
        )[:_LIST_LIMIT]
    )
    deliveries = _filtered(
        Delivery.objects.select_related("notification__partner", "notification__trade"),
        request,
        {
            "partner": "notification__partner__partner",
            "out_trade_no": "notification__trade__out_trade_no",
            "notify_type": "notification__notify_type",
            "notify_id": "notify_id",
        },
    )
    return JsonResponse(
        {
            "deliveries": [d.as_dict() for d in deliveries[:_LIST_LIMIT]],
            "notifications": [
                {
                    "id": n.pk,
                    "notify_type": n.notify_type,
                    "partner": n.partner.partner,
                    "out_trade_no": n.trade.out_trade_no,
                    "url": n.url,
                    "state": n.state,
                    "attempts": n.attempts,
                    "next_attempt_at": n.next_attempt_at.isoformat() if n.next_attempt_at else None,
                }
                for n in pending
            ],
        }
    )


@control_view(["POST"])
def deliver(request: HttpRequest) -> HttpResponse:
    """Send every notification that is due now (the notifier thread does this on its own)."""
    made = notifier.deliver_due_notifications()
    return JsonResponse({"deliveries": [d.as_dict() for d in made]})


@control_view(["GET"])
def keys(request: HttpRequest) -> HttpResponse:
    """The emulator's Alipay public keys per sign type (PEM, one-line Base64, fingerprint)."""
    return JsonResponse({"keys": alipay_keys.public_keys()})


@control_view(["GET"])
def buyers(request: HttpRequest) -> HttpResponse:
    """The seeded buyers with their barcodes and current balances (CNY)."""
    ensure_buyers()
    notes = {seed.login_id: seed.note for seed in BUYERS}
    return JsonResponse(
        {
            "password": PASSWORD,
            "buyers": [
                {
                    "login_id": b.login_id,
                    "name": b.name,
                    "user_id": b.user_id,
                    "barcode": b.barcode,
                    "balance": fmt(b.balance, "CNY"),
                    "payment_inst": b.payment_inst,
                    "enabled": b.enabled,
                    "needs_confirmation": b.needs_confirmation,
                    "note": notes.get(b.login_id, ""),
                }
                for b in Buyer.objects.all()
            ],
        }
    )


@control_view(["GET"])
def trades(request: HttpRequest) -> HttpResponse:
    """Trades as JSON, newest first; filters: partner, out_trade_no, trade_no, status."""
    found = _filtered(
        Trade.objects.select_related("partner", "buyer").order_by("-id"),
        request,
        {
            "partner": "partner__partner",
            "out_trade_no": "out_trade_no",
            "trade_no": "trade_no",
            "status": "status",
        },
    )
    return JsonResponse(
        {
            "trades": [
                {
                    "partner": t.partner.partner,
                    "service": t.service,
                    "out_trade_no": t.out_trade_no,
                    "trade_no": t.trade_no,
                    "status": t.status,
                    "currency": t.currency,
                    "total_fee": fmt(t.total_fee, t.currency),
                    "refunded": fmt(t.refunded_amount, t.currency),
                    "amount_cny": fmt(t.amount_cny, "CNY"),
                    "buyer": t.buyer.login_id if t.buyer else None,
                    "gmt_create": format_datetime(t.gmt_create),
                    "gmt_payment": format_datetime(t.gmt_payment) if t.gmt_payment else None,
                    "close_reason": t.close_reason or None,
                }
                for t in found[:_LIST_LIMIT]
            ]
        }
    )


@control_view(["GET"])
def calls(request: HttpRequest) -> HttpResponse:
    """The gateway.do call log, oldest first; filters: partner, service, outcome."""
    found = _filtered(
        GatewayCall.objects.all(), request, {"partner": "partner", "service": "service", "outcome": "outcome"}
    )
    return JsonResponse({"calls": [c.as_dict() for c in found[:_LIST_LIMIT]]})


@control_view(["POST"])
def reset(request: HttpRequest) -> HttpResponse:
    """Forget trades, refunds, notifications and calls; restore buyers, clock, scale, knobs and faults.

    Partners and keys stay, unless the body says ``{"partners": true}``.
    """
    data = _body(request)
    with transaction.atomic():
        Delivery.objects.all().delete()
        Notification.objects.all().delete()
        Refund.objects.all().delete()
        Trade.objects.all().delete()
        GatewayCall.objects.all().delete()
        if data.get("partners") in (True, "true", "1"):
            Partner.objects.all().delete()
        ensure_buyers()
        reset_buyers()
    reset_runtime()
    return JsonResponse({"reset": True, **_clock_state()})
