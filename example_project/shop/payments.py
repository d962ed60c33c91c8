"""How the shop uses django_alipay: start online and in-store payments, and describe an order's payment state.

Everything here goes through the library's public API: ``domain.trades.create_trade`` starts a payment,
``Merchant.objects.get_default()`` names the merchant, and the Trade row (kept up to date by notifications)
says where the payment is. Refunds and reverses are done in the admin or the REST API, not by shop code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.urls import reverse

from django_alipay.domain import trades
from django_alipay.enums import Product, RefundKind, RefundStatus
from django_alipay.models import Merchant
from django_alipay.protocol import money
from django_alipay.protocol.codes import TradeStatus
from django_alipay.protocol.errors import AlipayError
from shop.models import Order, OrderLine, new_order_number
from shop.models import Product as ShopProduct

__all__ = ["OrderState", "PaymentStart", "order_state", "place_order", "start_payment", "status_payload"]

#: The shop's channels and the django_alipay product each one uses.
CHANNEL_PRODUCTS = {
    Order.Channel.WEB: Product.ONLINE_WEB,
    Order.Channel.WAP: Product.ONLINE_WAP,
    Order.Channel.BARCODE: Product.IN_STORE_BARCODE,
    Order.Channel.QRCODE: Product.IN_STORE_QR,
}


@dataclass(frozen=True)
class PaymentStart:
    """Where the payment of a new order goes next: a URL to send the buyer to, a QR code, or a result."""

    order: Order
    url: str = ""
    qr_code: str = ""
    qr_image: str = ""
    problem: str = ""


def place_order(items: Iterable[tuple[ShopProduct, int]], channel: str, *, prefix: str = "SHOP") -> Order:
    """Store a new order with its lines (not paid yet); its number will be the trade's out_trade_no."""
    lines = [(product, quantity) for product, quantity in items if quantity > 0]
    if not lines:
        raise ValueError("an order needs at least one product")
    currency = lines[0][0].currency
    total = sum((product.price * quantity for product, quantity in lines), Decimal("0"))
    with transaction.atomic():
        order = Order.objects.create(
            number=new_order_number(prefix), channel=channel, total=total, currency=currency
        )
        OrderLine.objects.bulk_create(
            OrderLine(order=order, product=product, name=product.name, unit_price=product.price, quantity=qty)
            for product, qty in lines
        )
    return order


def start_payment(order: Order, *, return_url: str | None = None, barcode: str | None = None) -> PaymentStart:
    """Create the order's Alipay trade and start its payment (``create_trade``); never inside a transaction.

    Online: the cashier URL to redirect the buyer to (``return_url`` is where the cashier sends them back:
    django_alipay's return view). Barcode: the result is known at once (the order is paid, or the problem
    says why not). QR code: the code to show, and the emulator's picture of it.
    """
    try:
        merchant = Merchant.objects.get_default()
        start = trades.create_trade(
            merchant,
            out_trade_no=order.number,
            amount=order.total,
            currency=order.currency,
            subject=order.subject,
            product=CHANNEL_PRODUCTS[Order.Channel(order.channel)],
            buyer_identity_code=barcode,
            return_url=return_url,
        )
    except AlipayError as exc:
        return _failed(order, exc.message)
    except Exception as exc:  # a misconfigured demo (no merchant yet) must still show a page
        return _failed(order, f"{type(exc).__name__}: {exc}")
    order.trade = start.trade
    problem = ""
    if start.error is not None:
        problem = start.error.message
        if start.error.code and start.error.code not in problem:
            problem = f"{problem} ({start.error.code})"
    order.problem = problem[:300]
    order.save(update_fields=["trade", "problem"])
    response: dict[str, Any] = start.trade.gateway_response or {}
    return PaymentStart(
        order=order,
        url=start.url,
        qr_code=start.qr_code,
        qr_image=str(response.get("big_pic_url") or response.get("pic_url") or ""),
        problem=order.problem,
    )


def _failed(order: Order, message: str) -> PaymentStart:
    order.problem = message[:300]
    order.save(update_fields=["problem"])
    return PaymentStart(order=order, problem=order.problem)


def return_url_for(build_absolute_uri: Any) -> str:
    """The absolute URL of django_alipay's return view for the shop's merchant (cashier -> shop)."""
    merchant = Merchant.objects.get_default()
    return str(build_absolute_uri(reverse("django_alipay:return", args=[merchant.notify_token])))


@dataclass(frozen=True)
class OrderState:
    """An order's payment state in the shop's words."""

    code: str  # new, waiting, paid, partly_refunded, refunded, reversed, closed, failed
    label: str
    tone: str  # CSS class: wait, ok, info, stop
    final: bool  # nothing is on its way that would change it by itself: the order page stops polling


_STATES = {
    "new": ("Not sent to Alipay", "info", False),
    "waiting": ("Waiting for payment", "wait", False),
    "paid": ("Paid", "ok", False),
    "partly_refunded": ("Paid, partly refunded", "ok", False),
    "refunded": ("Refunded", "info", True),
    "reversed": ("Reversed (payment cancelled)", "info", True),
    "closed": ("Closed without payment", "stop", True),
    "failed": ("Payment failed", "stop", True),
}


_PAID = frozenset({"paid", "partly_refunded"})


def order_state(order: Order) -> OrderState:
    """Where the order's payment is, from the order (marked by the signal receivers) and its Trade."""
    trade = order.trade
    if trade is None:
        code = "failed" if order.problem else "new"
    elif order.paid_at is not None or trade.is_paid:
        reversed_ = trade.refunds.filter(kind=RefundKind.REVERSE, status=RefundStatus.SUCCEEDED).exists()
        if reversed_:
            code = "reversed"
        elif trade.refunded_amount >= trade.amount:
            code = "refunded"
        elif trade.refunded_amount > 0:
            code = "partly_refunded"
        else:
            code = "paid"
    elif trade.status == TradeStatus.TRADE_CLOSED:
        code = "failed" if order.problem else "closed"
    else:
        code = "waiting"
    label, tone, final = _STATES[code]
    if code in _PAID and trade is not None and trade.refund_pending_amount <= 0:
        final = True  # nothing is on its way: a later refund in the admin shows on the next visit
    return OrderState(code, label, tone, final)


def _fmt(amount: Decimal, currency: str) -> str:
    return money.format_amount(amount, currency)


def order_problem(order: Order, state: OrderState) -> str:
    """The problem to show with the order: none once it is paid (an earlier UNKNOW answer was resolved)."""
    return order.problem if state.code in ("failed", "closed", "waiting", "new") else ""


def status_payload(order: Order) -> dict[str, Any]:
    """What the order page's poll reads (``/orders/<number>/status.json``)."""
    state = order_state(order)
    trade = order.trade
    payload: dict[str, Any] = {
        "number": order.number,
        "status": state.code,
        "label": state.label,
        "tone": state.tone,
        "final": state.final,
        "paid": order.paid_at is not None,
        "paid_at": order.paid_at.isoformat() if order.paid_at else None,
        "total": _fmt(order.total, order.currency),
        "currency": order.currency,
        "problem": order_problem(order, state),
        "in_store": order.is_in_store,
        "trade": None,
        "refunds": [],
    }
    if trade is not None:
        payload["trade"] = {
            "status": trade.status,
            "trade_no": trade.trade_no,
            "buyer": trade.buyer_login,
            "refunded": _fmt(trade.refunded_amount, trade.currency),
            "refund_pending": _fmt(trade.refund_pending_amount, trade.currency),
            "refundable": _fmt(max(trade.refundable_amount, Decimal(0)), trade.currency),
        }
        payload["refunds"] = [
            {
                "kind": refund.kind,
                "kind_label": refund.get_kind_display(),
                "amount": _fmt(refund.amount, refund.currency),
                "status": refund.status,
                "status_label": refund.get_status_display().split(" (")[0],
                "reason": refund.reason,
            }
            for refund in trade.refunds.order_by("created_at", "pk")
        ]
    return payload
