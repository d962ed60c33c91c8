"""Settle refunds whose outcome the gateway would not tell, from the daily transaction file that lists them.

A ``forex_refund`` resent after a lost answer gets ``REPEATED_REFUNDMENT_REQUEST`` (the out_return_no is used
already), which says the first request arrived but not whether it refunded. Such a refund stays UNKNOWN (and
an accepted asynchronous one SUBMITTED) until evidence comes: its notification, or the transaction file
(``forex_compare_file``), which lists every payment (type ``P``) and refund (type ``R``) of a Beijing day once
that day is over. :func:`settle_from_files` downloads the files of the days such refunds may be listed in,
matches refund rows by gateway id (``out_return_no`` / ``partner_refund_id``, in the row's transaction id or
remarks), and records each match through :func:`~django_alipay.domain.refunds.record_result`.

A refund absent from the files is left as it is: Alipay retries an accepted refund that lacks funds for up
to 180 days, so absence proves nothing; it is reported for a person to check.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Final

from django.db.models import Q, QuerySet

from django_alipay import gateway
from django_alipay.domain import clock, refunds
from django_alipay.domain.lifecycle import RefundEvent
from django_alipay.enums import RefundKind, RefundStatus
from django_alipay.exceptions import AlipayConfigurationError
from django_alipay.models import Merchant, Refund
from django_alipay.protocol import clock as protocol_clock
from django_alipay.protocol.errors import AlipayError
from django_alipay.protocol.services import TransactionRecord

__all__ = [
    "ANSWERS_AWAITING_FILE",
    "FILE_LOOKBACK_DAYS",
    "FILE_SPAN_DAYS",
    "FileSettlementReport",
    "awaiting_file",
    "refund_file_date",
    "refunds_awaiting_files",
    "settle_from_files",
]

logger = logging.getLogger("django_alipay.settlement")

#: Days of one forex_compare_file request (the gateway refuses a range longer than 10 days).
FILE_SPAN_DAYS = 10
#: Files further back than this many days before yesterday are not asked for.
FILE_LOOKBACK_DAYS = 31
#: Answers to a resend that prove the request arrived but not what became of it: asking again cannot tell
#: more, so reconciliation stops resending such a refund and leaves it to its notification or file.
ANSWERS_AWAITING_FILE: Final = frozenset({"REPEATED_REFUNDMENT_REQUEST"})
#: Status column values of a transaction that happened (the emulator writes ``S``).
_DONE = frozenset({"S", "SUCCESS"})


@dataclass
class FileSettlementReport:
    """What one :func:`settle_from_files` run did: files fetched, refunds settled, what needs a person."""

    files: list[str] = field(default_factory=list)
    #: Gateway ids of the refunds settled (``settled_refunds``: the refunds, as they were before).
    settled: list[str] = field(default_factory=list)
    settled_refunds: list[Refund] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    #: What a person should look at (``problems``: the same, with the refund each is about).
    mismatches: list[str] = field(default_factory=list)
    problems: list[tuple[Refund, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def mismatch(self, refund: Refund, message: str) -> None:
        """Note something about ``refund`` that needs a person."""
        self.mismatches.append(message)
        self.problems.append((refund, message))


def refund_file_date(refund: Refund) -> date:
    """The Beijing day whose transaction file should list ``refund``: the day its request was first sent.

    Read from the stored request's ``gmt_return`` (every resend repeats it), else from when it was sent or
    created.
    """
    stamp = str((refund.request_params or {}).get("gmt_return", ""))
    if stamp:
        try:
            return protocol_clock.beijing_date(protocol_clock.parse_any_datetime(stamp))
        except AlipayError:
            pass
    return protocol_clock.beijing_date(refund.submitted_at or refund.created_at)


def _awaits(refund: Refund) -> bool:
    return (
        refund.kind == RefundKind.REFUND
        and refund.attempts > 0
        and refund.status in (RefundStatus.UNKNOWN, RefundStatus.SUBMITTED)
    )


def awaiting_file(refund: Refund) -> date | None:
    """The day whose transaction file will settle ``refund``, or None when no file is needed for it.

    A REFUND that was sent and whose outcome is unknown, or accepted and not reported yet, is settled by its
    notification or, failing that, by the transaction file of the day it was sent (available the next day).
    """
    return refund_file_date(refund) if _awaits(refund) else None


def refunds_awaiting_files(*, merchant: Merchant | None = None) -> QuerySet[Refund]:
    """Refunds sent and not settled (UNKNOWN, SUBMITTED) that a transaction file can settle."""
    queryset = Refund.objects.filter(
        Q(status=RefundStatus.UNKNOWN) | Q(status=RefundStatus.SUBMITTED),
        kind=RefundKind.REFUND,
        attempts__gt=0,
    )
    return queryset.filter(merchant=merchant) if merchant is not None else queryset


def _periods(first: date, last: date) -> Iterator[tuple[date, date]]:
    start = first
    while start <= last:
        end = min(last, start + timedelta(days=FILE_SPAN_DAYS - 1))
        yield start, end
        start = end + timedelta(days=1)


def _refund_rows(records: Iterable[TransactionRecord]) -> dict[str, TransactionRecord]:
    rows: dict[str, TransactionRecord] = {}
    for record in records:
        if record.transaction_type.upper() != "R":
            continue
        for key in (record.partner_transaction_id, record.remarks):
            if key:
                rows.setdefault(key.strip(), record)
    return rows


def _settle(refund: Refund, record: TransactionRecord, report: FileSettlementReport) -> None:
    label = f"{refund.gateway_refund_id}"
    if record.status.strip().upper() not in _DONE:
        report.mismatch(
            refund, f"refund {label}: the transaction file lists it with status {record.status!r}"
        )
        return
    if record.currency != refund.currency or record.amount != refund.amount:
        report.mismatch(
            refund,
            f"refund {label}: the transaction file lists {record.amount} {record.currency}, the refund is "
            f"{refund.amount} {refund.currency}",
        )
        return
    before = Refund.objects.get(pk=refund.pk)
    settled = refunds.record_result(
        refund,
        outcome=RefundStatus.SUCCEEDED,
        response={"source": "forex_compare_file", "line": record.line},
        event=RefundEvent.FILE,
    )
    if settled.status == RefundStatus.SUCCEEDED:
        report.settled.append(label)
        report.settled_refunds.append(before)
    else:
        report.mismatch(refund, f"refund {label} is {settled.status}, yet the transaction file lists it")


def _settle_merchant(group: list[Refund], yesterday: date, report: FileSettlementReport) -> None:
    owner = group[0].merchant
    # The domain's clock decides which days are over (the file of today does not exist yet).
    client = gateway.client(owner, clock=clock.get_clock())
    days = {refund.pk: refund_file_date(refund) for refund in group}
    first = max(min(days.values()), yesterday - timedelta(days=FILE_LOOKBACK_DAYS))
    rows: dict[str, TransactionRecord] = {}
    fetched = True
    for start, end in _periods(first, yesterday):
        try:
            result = client.forex_compare_file(
                start_date=protocol_clock.format_date(start), end_date=protocol_clock.format_date(end)
            )
        except AlipayError as exc:
            fetched = False
            reason = f"{type(exc).__name__} {exc.code or ''}".strip()
            report.errors.append(f"{owner.name}: forex_compare_file {start}..{end}: {reason}")
            continue
        report.files.append(f"{owner.name}: {start.isoformat()}..{end.isoformat()}")
        rows.update(_refund_rows(result))
    for refund in group:
        record = rows.get(refund.gateway_refund_id)
        if record is not None:
            _settle(refund, record, report)
        elif days[refund.pk] > yesterday or not fetched:
            report.waiting.append(
                f"refund {refund.gateway_refund_id}: waiting for the settlement file of "
                f"{days[refund.pk].isoformat()}"
            )
        else:
            report.mismatch(
                refund,
                f"refund {refund.gateway_refund_id} ({refund.status}) is not listed in the "
                f"transaction files from {days[refund.pk].isoformat()} to {yesterday.isoformat()}",
            )


def settle_from_files(*, merchant: Merchant | None = None) -> FileSettlementReport:
    """Fetch the transaction files that may list unsettled refunds and settle those they list.

    Per merchant with refunds awaiting a file: the files from the earliest such refund's day (at most
    FILE_LOOKBACK_DAYS back) to yesterday, Beijing time, in requests of FILE_SPAN_DAYS days. A listed refund
    with the same amount and currency becomes SUCCEEDED; one listed differently is reported, not settled.
    Gateway errors are reported, never raised; what the file cannot settle yet stays as it is.
    """
    report = FileSettlementReport()
    yesterday = protocol_clock.beijing_date(clock.now()) - timedelta(days=1)
    pending = refunds_awaiting_files(merchant=merchant).select_related("merchant").order_by("pk")
    by_merchant: dict[int, list[Refund]] = {}
    for refund in pending:
        by_merchant.setdefault(refund.merchant_id, []).append(refund)
    for group in by_merchant.values():
        try:
            _settle_merchant(group, yesterday, report)
        except AlipayConfigurationError as exc:
            report.errors.append(f"{group[0].merchant.name}: {exc}")
    for line in report.mismatches:
        logger.error("settlement files: %s", line)
    return report
