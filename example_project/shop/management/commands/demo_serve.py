"""manage.py demo_serve: what `make demo` runs: migrate, set up, serve the shop and the emulator, explain."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
from types import FrameType
from typing import Any, ClassVar

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection
from rich.console import Console
from rich.table import Table

from shop.demo import DemoServer, point_at, setup_demo, start_celery_worker, stop_process


def print_report(console: Console, lines: list[tuple[str, str]]) -> None:
    """What the set-up did, one line each: never wrapped, so that a key's fingerprint stays whole when the
    output goes to a file or a pipe (where the console is 110 columns wide)."""
    for mark, text in lines:
        console.print(f"  {'[green]' + mark + '[/]' if mark != '=' else mark} {text}", soft_wrap=True)


class Command(BaseCommand):
    help = (
        "Run the demo: migrate, create the staff user and the emulator merchant, serve the shop with the "
        "emulator at /emulator/ (and a Celery worker when CELERY_BROKER_URL is set) until Ctrl-C."
    )
    requires_system_checks: ClassVar[list[str]] = []  # run below, once the database is migrated

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("DEMO_HOST", "127.0.0.1"))
        parser.add_argument(
            "--port",
            type=int,
            default=int(os.environ.get("DEMO_PORT", "8000")),
            help="Port (default 8000, or DEMO_PORT); when it is taken a free one is used. 0: any free port.",
        )
        parser.add_argument("--no-worker", action="store_true", help="Do not start a Celery worker.")

    def handle(self, *args: Any, **options: Any) -> None:
        console = Console(highlight=False, width=None if sys.stdout.isatty() else 110)
        console.print("[bold]Preparing the demo[/]: migrating the database ...")
        call_command("migrate", verbosity=0, interactive=False)
        call_command("check")
        try:
            server = DemoServer(options["host"], options["port"])
        except OSError as exc:
            console.print(
                f"[yellow]Port {options['port']} is not free ({exc.strerror}); using another one.[/]"
            )
            server = DemoServer(options["host"], 0)
        point_at(server.url)
        os.environ["SHOP_BASE_URL"] = server.url  # for the Celery worker, which reads the settings afresh
        report = setup_demo()
        print_report(console, report.lines)
        worker, workdir = None, None
        if settings.CELERY_BROKER_URL and not options["no_worker"]:
            workdir = tempfile.mkdtemp(prefix="shop-celery-")
            worker = start_celery_worker(workdir)
        stopping = threading.Event()

        def stop(signum: int, frame: FrameType | None) -> None:
            stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        server.start()
        self._banner(console, server.url, report.username, report.password, worker is not None)
        try:
            while not stopping.wait(0.5):
                if worker is not None and worker.poll() is not None:
                    console.print("[red]The Celery worker stopped; refunds wait until it runs again.[/]")
                    worker = None
        finally:
            console.print("\nStopping ...")
            if worker is not None:
                stop_process(worker)
            server.stop()
            if workdir:
                shutil.rmtree(workdir, ignore_errors=True)
            console.print("Stopped.")

    def _banner(self, console: Console, url: str, user: str, password: str | None, worker: bool) -> None:
        database = connection.settings_dict
        if database["ENGINE"].endswith("sqlite3"):
            where = f"SQLite ({os.path.relpath(database['NAME'], settings.BASE_DIR.parent)})"
        else:
            where = (
                f"{connection.vendor} database {database['NAME']!r} on {database.get('HOST') or 'localhost'}"
            )
        refunds = (
            f"sent by a Celery worker (broker {settings.CELERY_BROKER_URL})"
            if worker
            else "sent at once by the shop (set CELERY_BROKER_URL to use a Celery worker)"
        )
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        table.add_row("Shop", f"{url}/")
        table.add_row(
            "Admin", f"{url}/admin/   login [bold]{user}[/] / [bold]{password or '(your own password)'}[/]"
        )
        table.add_row("Point of sale", f"{url}/pos/   (staff: log in as above)")
        table.add_row("REST API", f"{url}/alipay/api/   schema: {url}/alipay/api/schema/")
        table.add_row(
            "Emulator", f"{url}/emulator/   (Alipay's gateway, cashier and control API, test money)"
        )
        table.add_row("Database", where)
        table.add_row("Refunds", refunds)
        console.print()
        console.rule("[bold]Lin's Tea Shop[/] — the django-alipay-global demo is running")
        console.print(table)
        console.print()
        console.print("[bold]What to try[/]")
        steps = [
            f"Open {url}/, add a teapot to the cart and press [bold]Pay with Alipay[/].",
            "At the cashier, log in as [bold]buyer@alitest.com[/] with password [bold]111111[/] and pay.",
            "You are back on the order page: it turns [green]Paid[/] when Alipay's notification arrives.",
            f"Refund part of it in the admin: {url}/admin/django_alipay/trade/ → the order → Refund.",
            "The order page lists the refund. Try to refund more than is left: refused, with the reason.",
            f"Point of sale ({url}/pos/): charge a buyer's barcode, or show a QR code and open it.",
            f"Browse the API at {url}/alipay/api/trades/ (logged in as {user}).",
            "The whole journey without a browser: .venv/bin/python example_project/manage.py demo_checkout",
        ]
        for number, text in enumerate(steps, 1):
            console.print(f"  {number}. {text}")
        console.print()
        console.print("Press [bold]Ctrl-C[/] to stop.")
