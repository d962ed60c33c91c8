"""manage.py alipay_sync_trades: ask Alipay about orders and bring their status here up to date."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from django_alipay.domain import trades
from django_alipay.exceptions import AlipayConfigurationError
from django_alipay.management.commands._shared import find_merchant, plural, trade_words
from django_alipay.models import Trade
from django_alipay.protocol.codes import TradeStatus
from django_alipay.protocol.errors import AlipayError, TransportError

ANY_STATUS = "any"


def _since(text: str) -> datetime:
    """A date (midnight, in the site's time zone) or a date and time; naive times are the site's."""
    moment = parse_datetime(text)
    if moment is None:
        day = parse_date(text)
        if day is None:
            raise CommandError(f"--since {text!r} is not a date: write it as 2024-05-01 or 2024-05-01T14:30.")
        moment = datetime.combine(day, time.min)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def _reason(exc: AlipayError) -> str:
    if isinstance(exc, TransportError):
        return "Alipay's gateway could not be reached"
    if exc.code:
        return f"Alipay answered {exc.code}" + (f" ({exc.description})" if exc.description else "")
    return exc.message


class Command(BaseCommand):
    help = (
        "Ask Alipay for the status of orders (by default those still waiting for payment) and update them "
        "here. Changes go through the same rules as notifications: a status only ever moves forward."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--merchant", help="Only this merchant's orders (its name or partner ID).")
        parser.add_argument(
            "--status",
            default=TradeStatus.WAIT_BUYER_PAY.value,
            help=f"Only orders with this status here (default WAIT_BUYER_PAY; '{ANY_STATUS}' for all).",
        )
        parser.add_argument("--since", help="Only orders created on or after this date (2024-05-01).")
        parser.add_argument(
            "--limit", type=int, default=100, help="Check at most this many orders, newest first (100)."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="List the orders that would be checked, and stop."
        )

    def _orders(self, options: dict[str, Any]) -> tuple[QuerySet[Trade], list[str]]:
        orders = Trade.objects.select_related("merchant")
        scope: list[str] = []
        if options["merchant"]:
            merchant = find_merchant(options["merchant"])
            orders = orders.filter(merchant=merchant)
            scope.append(f"merchant {merchant.name}")
        status = str(options["status"])
        if status.lower() != ANY_STATUS:
            if status.upper() not in {s.value for s in TradeStatus}:
                raise CommandError(
                    f"--status {status!r} is not an Alipay trade status; use one of "
                    f"{', '.join(s.value for s in TradeStatus)}, or '{ANY_STATUS}'."
                )
            orders = orders.filter(status=status.upper())
            scope.append(f"status {status.upper()} ({trade_words(status.upper())})")
        if options["since"]:
            since = _since(options["since"])
            orders = orders.filter(created_at__gte=since)
            scope.append(f"created since {timezone.localtime(since):%Y-%m-%d %H:%M}")
        if options["limit"] is None or options["limit"] < 1:
            raise CommandError("--limit must be a whole number of orders, 1 or more.")
        return orders.order_by("-created_at", "-pk")[: options["limit"]], scope

    def handle(self, *args: Any, **options: Any) -> None:
        orders, scope = self._orders(options)
        found = list(orders)
        where = f" ({', '.join(scope)})" if scope else ""
        if not found:
            self.stdout.write(f"No orders to check{where}.")
            return
        if options["dry_run"]:
            self.stdout.write(f"Would ask Alipay about {plural(len(found), 'order')}{where}:")
            for trade in found:
                self.stdout.write(f"  {trade.out_trade_no}  {trade.status} ({trade_words(trade.status)})")
            self.stdout.write("Nothing was asked or changed (--dry-run).")
            return

        self.stdout.write(f"Asking Alipay about {plural(len(found), 'order')}{where}...")
        updated = unchanged = unknown = flagged = failed = 0
        for trade in found:
            before = trade.status
            try:
                change = trades.sync_trade(trade)
            except (AlipayError, AlipayConfigurationError) as exc:
                failed += 1
                reason = _reason(exc) if isinstance(exc, AlipayError) else str(exc)
                self.stdout.write(self.style.ERROR(f"  {trade.out_trade_no}  could not be checked: {reason}"))
                continue
            if change is None:
                unknown += 1
                self.stdout.write(
                    f"  {trade.out_trade_no}  unknown to Alipay (the buyer never reached the payment page)"
                )
            elif change.flag:
                flagged += 1
                self.stdout.write(
                    self.style.WARNING(f"  {trade.out_trade_no}  not updated: {change.message}")
                )
            elif change.changed:
                updated += 1
                self.stdout.write(
                    self.style.SUCCESS(
                        f"  {trade.out_trade_no}  {trade_words(before)} -> {trade_words(change.status)} "
                        f"({before} -> {change.status})"
                    )
                )
            else:
                unchanged += 1
                self.stdout.write(f"  {trade.out_trade_no}  unchanged: {trade_words(trade.status)}")

        parts = [
            f"{updated} updated",
            f"{unchanged} unchanged",
            f"{unknown} unknown to Alipay",
            f"{flagged} need{'s' if flagged == 1 else ''} a look" if flagged else "",
            f"{failed} could not be checked" if failed else "",
        ]
        summary = f"Checked {plural(len(found), 'order')}: {', '.join(p for p in parts if p)}."
        if failed or flagged:
            self.stdout.write(summary)
            not_done = plural(failed + flagged, "order")
            raise CommandError(f"{not_done} could not be brought up to date; see above.")
        self.stdout.write(self.style.SUCCESS(summary))
