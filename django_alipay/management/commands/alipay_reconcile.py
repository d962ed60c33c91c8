"""manage.py alipay_reconcile: settle unpaid orders and unfinished refunds with Alipay; show what changed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_alipay.domain import reconciliation
from django_alipay.domain.reconciliation import ReconciliationReport
from django_alipay.management.commands._shared import (
    find_merchant,
    plural,
    raw_stream,
    refund_words,
    trade_words,
)
from django_alipay.models import Merchant

if TYPE_CHECKING:
    from rich.console import Console

#: The reconciliation's kinds of finding, in a shop owner's words.
_KINDS = {"trade": "order", "refund": "refund", "balance": "refund totals"}


class Command(BaseCommand):
    help = (
        "Ask Alipay about orders still waiting for payment and refunds without a final result (older than "
        "ALIPAY['RECONCILE_TRADE_AGE'] / ['RECONCILE_REFUND_AGE'] seconds), apply the answers, and report "
        "what changed and what needs a person. Exits with status 1 when something needs a look."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--merchant", help="Only this merchant (its name or partner ID).")
        parser.add_argument(
            "--trade-age",
            type=float,
            help="Seconds before an unpaid order is checked (default: ALIPAY['RECONCILE_TRADE_AGE']).",
        )
        parser.add_argument(
            "--refund-age",
            type=float,
            help="Seconds before an unfinished refund is checked (default: ALIPAY['RECONCILE_REFUND_AGE']).",
        )
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--orders-only", action="store_true", help="Check orders only, not refunds.")
        which.add_argument("--refunds-only", action="store_true", help="Check refunds only, not orders.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
        except ImportError:
            raise CommandError(
                "alipay_reconcile draws its progress and tables with rich: pip install rich"
            ) from None
        stream = raw_stream(self.stdout)
        console = Console(
            file=stream,
            no_color=bool(options.get("no_color")),
            highlight=False,
            width=None if stream.isatty() else 110,
        )
        merchant: Merchant | None = find_merchant(options["merchant"]) if options["merchant"] else None
        for name in ("trade_age", "refund_age"):
            if options[name] is not None and options[name] < 0:
                raise CommandError(f"--{name.replace('_', '-')} must be 0 seconds or more.")
        with_trades, with_refunds = not options["refunds_only"], not options["orders_only"]
        trade_age, refund_age = options["trade_age"], options["refund_age"]

        orders = pending = 0
        if with_trades:
            orders = reconciliation.stale_trades(merchant=merchant, age=trade_age).count()
        if with_refunds:
            pending = reconciliation.pending_refunds(merchant=merchant, age=refund_age).count()
        whose = f" of merchant {merchant.name}" if merchant else ""
        console.print(
            f"Checking {plural(orders, 'unpaid order')} and {plural(pending, 'unfinished refund')}{whose} "
            "with Alipay..."
        )
        progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
        )
        with progress:
            bars = {
                "trade": progress.add_task("Orders ", total=orders, visible=with_trades),
                "refund": progress.add_task("Refunds", total=pending, visible=with_refunds),
            }
            report = reconciliation.reconcile(
                merchant=merchant,
                trade_age=trade_age,
                refund_age=refund_age,
                include_trades=with_trades,
                include_refunds=with_refunds,
                on_progress=lambda kind: progress.advance(bars[kind]),
            )
        self._show(console, report)
        if not report.ok:
            raise CommandError(
                f"{plural(len(report.mismatches) + len(report.errors), 'thing')} need"
                f"{'s' if len(report.mismatches) + len(report.errors) == 1 else ''} a look; see above."
            )

    def _show(self, console: Console, report: ReconciliationReport) -> None:
        from rich.table import Table

        if report.changes:
            table = Table(title="What changed", title_justify="left")
            for column in ("What", "Order", "Refund", "Before", "Now"):
                table.add_column(column)
            for change in report.changes:
                words = trade_words if change.kind == "trade" else refund_words
                table.add_row(
                    "order" if change.kind == "trade" else "refund",
                    change.out_trade_no,
                    change.reference or "-",
                    words(change.before),
                    words(change.after),
                )
            console.print(table)
        else:
            console.print("Nothing changed: everything checked already matched Alipay.")

        if report.mismatches:
            table = Table(title="Needs a look", title_justify="left")
            table.add_column("What")
            table.add_column("Order")
            table.add_column("Why")
            for mismatch in report.mismatches:
                kind = _KINDS.get(mismatch.kind, mismatch.kind)
                table.add_row(kind, mismatch.out_trade_no, mismatch.message)
            console.print(table)
        for error in report.errors:
            console.print(f"Could not ask Alipay about {error}")

        refunds_part = f"{plural(report.refunds_checked, 'refund')} checked, {report.refunds_settled} settled"
        console.print(
            f"Summary: {plural(report.trades_checked, 'order')} checked, {report.trades_changed} updated; "
            f"{refunds_part}; {plural(len(report.mismatches), 'item')} to look at, "
            f"{plural(len(report.errors), 'error')}."
        )
        if report.ok:
            console.print("All good.")
