"""What a test buyer does to a trade, from the cashier page, control/pay or the Python API: pay or cancel."""

from __future__ import annotations

from dataclasses import dataclass

from .conf import runtime
from .instore import SPOT_PAY, spot_fields
from .models import Buyer, Trade
from .operations import CLOSED, WAIT, PaymentRefused, close_trade, expire_if_due, locked_partner, pay_trade
from .operations import return_url_for as _return_url_for
from .seed import DEFAULT_BUYER, ensure_buyers

__all__ = ["PaymentOutcome", "buyer_cancels", "buyer_pays", "find_buyer", "find_trade"]


@dataclass(frozen=True)
class PaymentOutcome:
    """The result of a buyer's payment: the paid trade and, for online trades, the signed return URL."""

    trade: Trade
    return_url: str | None

    def as_dict(self) -> dict[str, str | None]:
        """JSON-ready data (what control/pay answers)."""
        trade = self.trade
        return {
            "partner": trade.partner.partner,
            "out_trade_no": trade.out_trade_no,
            "trade_no": trade.trade_no,
            "trade_status": trade.status,
            "buyer": trade.buyer.login_id if trade.buyer else None,
            "return_url": self.return_url,
        }


def find_buyer(identifier: str | None) -> Buyer | None:
    """A seeded buyer by login id, user id or barcode (the default buyer when ``identifier`` is empty)."""
    ensure_buyers()
    if not identifier:
        identifier = DEFAULT_BUYER
    for field in ("login_id", "user_id", "barcode"):
        buyer = Buyer.objects.filter(**{field: identifier}).first()
        if buyer is not None:
            return buyer
    return None


def find_trade(partner: str, *, out_trade_no: str | None = None, trade_no: str | None = None) -> Trade | None:
    """A trade of ``partner`` by out_trade_no / partner_trans_id, or by Alipay trade number."""
    trades = Trade.objects.select_related("partner", "buyer").filter(partner__partner=partner)
    if trade_no:
        return trades.filter(trade_no=trade_no).first()
    if out_trade_no:
        return trades.filter(out_trade_no=out_trade_no).first()
    return None


def buyer_pays(trade: Trade, buyer: Buyer) -> PaymentOutcome:
    """``buyer`` pays ``trade`` now (emulator clock): balance debited, notification queued.

    A spot payment that was waiting for the buyer's confirmation (UNKNOW) is completed, and a repeat of its
    spot.pay then answers SUCCESS. Raises PaymentRefused (TRADE_HAS_SUCCESS, TRADE_HAS_CLOSE, buyer codes).
    """
    now = runtime().now()
    with locked_partner(trade.partner):
        paid = pay_trade(trade, buyer, now=now)
        if paid.service == SPOT_PAY:
            paid.pay_result = spot_fields(paid)
            paid.save(update_fields=["pay_result"])
    paid = Trade.objects.select_related("partner", "buyer").get(pk=paid.pk)
    return PaymentOutcome(trade=paid, return_url=_return_url_for(paid) if paid.is_online else None)


def buyer_cancels(trade: Trade) -> Trade:
    """The buyer gives up at the cashier: an unpaid trade is closed (TRADE_CLOSED, notification sent)."""
    now = runtime().now()
    with locked_partner(trade.partner):
        locked = expire_if_due(Trade.objects.select_for_update().get(pk=trade.pk), now)
        if locked.status == WAIT:
            close_trade(locked, now=now, reason="buyer_cancel")
        elif locked.status != CLOSED:
            raise PaymentRefused("TRADE_HAS_SUCCESS", "the trade is already paid")
    return Trade.objects.select_related("partner", "buyer").get(pk=trade.pk)
