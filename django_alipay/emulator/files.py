"""The plain-text file services: forex_rate_file, forex_compare_file (transactions), forex_liquidation_file.

Records are ``|``-separated lines. The compare and liquidation files share Kaligo's column order:
partner_transaction_id | amount | currency | transaction time | settlement time | type (P payment, R refund) |
service charge | status | remarks. Settlement is T+1 (Beijing date), at 10:00:00; the compare file leaves the
settlement time empty; the service charge is zero; the status is ``S``; the remarks carry the Alipay trade
number (payments) or the refund's own id (refunds).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Final

from django_alipay.protocol.clock import BEIJING, beijing_date, format_compact, format_date, parse_date
from django_alipay.protocol.errors import TimeFormatError

from .call import Call
from .conf import runtime
from .models import Refund, Trade
from .operations import fmt
from .seed import RATES
from .wire import Outcome, text_outcome

__all__ = ["forex_compare_file", "forex_liquidation_file", "forex_rate_file"]

_MAX_SPAN_DAYS: Final = 10
_FAILED: Final = "File download failed:"
_SETTLEMENT_HOUR: Final = time(10, 0, 0)


def forex_rate_file(call: Call) -> Outcome:
    """Today's rates: ``yyyyMMdd|HHmmss|CCY|rate`` (CNY per one unit of the currency), one line each."""
    stamp = format_compact(call.now)
    lines = [
        f"{stamp[:8]}|{stamp[8:]}|{currency}|{rate}" for currency, rate in RATES.items() if currency != "CNY"
    ]
    return text_outcome("\n".join(lines) + "\n", charset=call.charset, label=f"{len(lines)} rates")


def _period(call: Call) -> tuple[date, date] | str:
    """The requested start/end dates, or the text error the gateway answers with."""
    try:
        start = parse_date(call.params.get("start_date", ""), parameter="start_date")
        end = parse_date(call.params.get("end_date", ""), parameter="end_date")
    except TimeFormatError:
        # Recorded against the real gateway for a missing or invalid date (an independent SDK's README);
        # "Date format incorrect YYYYMMDD" is listed there too but was never reproduced: a knob plays it.
        if runtime().get("FILE_DATE_ERROR") == "date_format_incorrect":
            return "Date format incorrect YYYYMMDD"
        return _FAILED + "Illegal Date period!"
    if end < start:
        return _FAILED + "Finish date ahead of begin date"
    if (end - start).days > _MAX_SPAN_DAYS:
        return _FAILED + "Over 10 days to Date period"
    if end >= beijing_date(call.now):
        return _FAILED + "Finish date not ahead of today"
    return start, end


def _settlement(moment: datetime) -> datetime:
    return datetime.combine(beijing_date(moment) + timedelta(days=1), _SETTLEMENT_HOUR, tzinfo=BEIJING)


def _records(call: Call, *, settled: bool) -> list[tuple[datetime, str]]:
    """(sort key, line) of every payment and refund of the partner, with their transaction time."""
    rows: list[tuple[datetime, str]] = []
    trades = Trade.objects.filter(partner=call.partner, gmt_payment__isnull=False)
    for trade in trades:
        assert trade.gmt_payment is not None
        rows.append(
            (
                trade.gmt_payment,
                _line(
                    trade.out_trade_no,
                    trade.total_fee,
                    trade.currency,
                    trade.gmt_payment,
                    "P",
                    trade.trade_no,
                    settled,
                ),
            )
        )
    for refund in Refund.objects.filter(partner=call.partner).select_related("trade"):
        rows.append(
            (
                refund.gmt_refund,
                _line(
                    refund.trade.out_trade_no,
                    refund.amount,
                    refund.currency,
                    refund.gmt_refund,
                    "R",
                    refund.refund_id or refund.kind,
                    settled,
                ),
            )
        )
    return rows


def _line(
    partner_transaction_id: str,
    amount: Decimal,
    currency: str,
    moment: datetime,
    kind: str,
    remark: str,
    settled: bool,
) -> str:
    settlement = format_compact(_settlement(moment)) if settled else ""
    return "|".join(
        (
            partner_transaction_id,
            fmt(amount, currency),
            currency,
            format_compact(moment),
            settlement,
            kind,
            fmt(Decimal(0), currency),
            "S",
            remark,
        )
    )


def _file(call: Call, *, settled: bool, empty: str) -> Outcome:
    period = _period(call)
    if isinstance(period, str):
        return text_outcome(period, charset=call.charset, label="file error", note=period)
    start, end = period
    selected = []
    for moment, line in sorted(_records(call, settled=settled)):
        day = beijing_date(_settlement(moment) if settled else moment)
        if start <= day <= end:
            selected.append(line)
    if not selected:
        return text_outcome(empty, charset=call.charset, label="no data")
    note = f"{len(selected)} records {format_date(start)}-{format_date(end)}"
    return text_outcome("\n".join(selected) + "\n", charset=call.charset, label=note)


def forex_compare_file(call: Call) -> Outcome:
    """Transactions (payments and refunds) whose Beijing transaction date is in the period."""
    return _file(call, settled=False, empty="No balance account data in the period")


def forex_liquidation_file(call: Call) -> Outcome:
    """Settlements (T+1) whose Beijing settlement date is in the period."""
    return _file(call, settled=True, empty="No balance amount data in the period")
