"""The emulated Alipay cashier: a test buyer logs in, then pays or cancels, and is sent back to the shop."""

from __future__ import annotations

import contextlib
from typing import Any, Final

from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_POST

from django_alipay.protocol.codes import lookup_error

from .actions import buyer_cancels, buyer_pays
from .conf import runtime
from .models import Buyer, Trade
from .operations import WAIT, PaymentRefused, expire_if_due, fmt, locked_partner
from .seed import BUYERS, PASSWORD, ensure_buyers
from .views import emulator_view

__all__ = ["cancel", "login", "page", "pay"]

_SALT: Final = "django_alipay_emulator.cashier"
_LOGIN_MAX_AGE: Final = 30 * 60


def _trade(token: str) -> Trade:
    trade = Trade.objects.select_related("partner", "buyer").filter(cashier_token=token).first()
    if trade is None:
        raise Http404("no such trade at the cashier")
    if trade.status == WAIT:
        with locked_partner(trade.partner):
            expire_if_due(Trade.objects.select_for_update().get(pk=trade.pk), runtime().now())
        trade.refresh_from_db()
    return trade


def _context(trade: Trade, **extra: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        "trade": trade,
        "total": fmt(trade.total_fee, trade.currency),
        "total_cny": fmt(trade.amount_cny, "CNY"),
        "rate": trade.exchange_rate,
        "buyers": BUYERS,
        "password": PASSWORD,
        "waiting": trade.status == WAIT,
    }
    context.update(extra)
    return context


def _buyer_token(trade: Trade, buyer: Buyer) -> str:
    return signing.dumps({"trade": trade.pk, "buyer": buyer.pk}, salt=_SALT)


def _logged_in_buyer(request: HttpRequest, trade: Trade) -> Buyer | None:
    try:
        data = signing.loads(request.POST.get("buyer_token", ""), salt=_SALT, max_age=_LOGIN_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("trade") != trade.pk or not isinstance(data.get("buyer"), int):
        return None
    return Buyer.objects.filter(pk=data["buyer"]).first()


@emulator_view
@csrf_protect
def page(request: HttpRequest, token: str) -> HttpResponse:
    """The cashier for one trade: the login form while unpaid, its status otherwise."""
    ensure_buyers()
    trade = _trade(token)
    return render(request, "django_alipay_emulator/cashier.html", _context(trade))


@require_POST
@emulator_view
@csrf_protect
def login(request: HttpRequest, token: str) -> HttpResponse:
    """Check a test buyer's login and password, then show the confirmation with Pay and Cancel."""
    ensure_buyers()
    trade = _trade(token)
    login_id = request.POST.get("login_id", "").strip()
    buyer = Buyer.objects.filter(login_id=login_id).first()
    if buyer is None or buyer.password != request.POST.get("password", ""):
        context = _context(trade, error=_("Wrong account name or password."), login_id=login_id)
        return render(request, "django_alipay_emulator/cashier.html", context, status=200)
    context = _context(trade, buyer=buyer, buyer_token=_buyer_token(trade, buyer))
    return render(request, "django_alipay_emulator/confirm.html", context)


@require_POST
@emulator_view
@csrf_protect
def pay(request: HttpRequest, token: str) -> HttpResponse:
    """Pay: debit the buyer, queue the notification, and send the browser to the signed return_url."""
    trade = _trade(token)
    buyer = _logged_in_buyer(request, trade)
    if buyer is None:
        context = _context(trade, error=_("Your login has expired; please log in again."))
        return render(request, "django_alipay_emulator/cashier.html", context)
    try:
        outcome = buyer_pays(trade, buyer)
    except PaymentRefused as refused:
        description = lookup_error(refused.code).description
        context = _context(
            trade,
            buyer=buyer,
            buyer_token=_buyer_token(trade, buyer),
            error=f"{refused.note or description} ({refused.code})",
        )
        return render(request, "django_alipay_emulator/confirm.html", context)
    if outcome.return_url:
        return HttpResponseRedirect(outcome.return_url)
    return render(request, "django_alipay_emulator/done.html", _context(outcome.trade, paid=True))


@require_POST
@emulator_view
@csrf_protect
def cancel(request: HttpRequest, token: str) -> HttpResponse:
    """Cancel: the buyer gives up; the unpaid trade is closed."""
    trade = _trade(token)
    with contextlib.suppress(PaymentRefused):
        trade = buyer_cancels(trade)
    return render(request, "django_alipay_emulator/done.html", _context(trade, cancelled=True))
