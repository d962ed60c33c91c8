"""The emulator's Python API for in-process use (a project's tests): the control endpoints as functions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from . import alipay_keys
from .actions import PaymentOutcome, buyer_pays, find_buyer, find_trade
from .conf import reset_runtime, runtime
from .faults import FaultPlan
from .models import Delivery, Partner
from .notifier import deliver_due_notifications
from .operations import PaymentRefused
from .partners import register_partner as _register_partner

__all__ = [
    "PaymentRefused",
    "configure",
    "deliver_due_notifications",
    "deliveries",
    "pay_trade",
    "public_keys",
    "register_partner",
    "reset",
    "set_clock",
    "set_faults",
    "set_time_scale",
]


def register_partner(
    partner: str,
    *,
    md5_key: str = "",
    merchant_public_key: str = "",
    sign_types: str | Iterable[str] | None = None,
    services: str | Iterable[str] | None = None,
    refund_interval: float | None = None,
) -> Partner:
    """Create or replace a merchant account (see ``partners.register_partner``); PartnerError when invalid."""
    return _register_partner(
        partner,
        md5_key=md5_key,
        merchant_public_key=merchant_public_key,
        sign_types=sign_types,
        services=services,
        refund_interval=refund_interval,
    )


def pay_trade(
    partner: str,
    *,
    out_trade_no: str | None = None,
    partner_trans_id: str | None = None,
    trade_no: str | None = None,
    buyer: str | None = None,
) -> PaymentOutcome:
    """Pay a trade as a buyer would (return data + notification); PaymentRefused / LookupError otherwise.

    ``buyer`` is a seeded buyer's login id, user id or barcode; by default the buyer who scanned (spot
    payments) or ``buyer@alitest.com``.
    """
    trade = find_trade(partner, out_trade_no=out_trade_no or partner_trans_id, trade_no=trade_no)
    if trade is None:
        raise LookupError(f"no trade {out_trade_no or partner_trans_id or trade_no!r} for partner {partner}")
    payer = trade.buyer if (buyer is None and trade.buyer is not None) else find_buyer(buyer)
    if payer is None:
        raise LookupError(f"no seeded buyer {buyer!r}")
    return buyer_pays(trade, payer)


def set_clock(now: datetime | str | None) -> datetime:
    """Stand the emulator clock at ``now`` (aware, or ISO-8601 with offset); None/"real" frees it."""
    state = runtime()
    if now is None or now == "real":
        state.set_clock(None)
    else:
        when = datetime.fromisoformat(now) if isinstance(now, str) else now
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError("set_clock needs an aware datetime (with a UTC offset)")
        state.set_clock(when)
    return state.now()


def set_time_scale(scale: float) -> None:
    """Make durations (retries, notify_id lifetime, refund spacing) run ``scale`` times faster."""
    runtime().set_time_scale(scale)


def configure(**knobs: Any) -> None:
    """Change run-time knobs (refund_interval, notify_id_ttl, retry_schedule, timestamp_tolerance ...)."""
    runtime().configure(**knobs)


def set_faults(plan: Mapping[str, Any] | None) -> FaultPlan:
    """Replace the fault plan (see ``faults``); None or ``{}`` clears it; FaultPlanError if invalid."""
    state = runtime()
    state.faults = FaultPlan.parse(dict(plan or {}))
    return state.faults


def deliveries(*, partner: str | None = None, out_trade_no: str | None = None) -> list[dict[str, Any]]:
    """Every notification send so far (oldest first), as control/notifications lists them."""
    found = Delivery.objects.select_related("notification__partner", "notification__trade")
    if partner:
        found = found.filter(notification__partner__partner=partner)
    if out_trade_no:
        found = found.filter(notification__trade__out_trade_no=out_trade_no)
    return [delivery.as_dict() for delivery in found]


def public_keys() -> dict[str, dict[str, Any]]:
    """The emulator's Alipay public keys per sign type: ``{"RSA2": {"public_key_pem": ..., ...}}``."""
    return alipay_keys.public_keys()


def reset() -> None:
    """Forget clock, time scale, knobs and faults (the database is the caller's: tests roll it back)."""
    reset_runtime()
