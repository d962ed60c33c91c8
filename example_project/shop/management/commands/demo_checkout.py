"""manage.py demo_checkout: the whole journey, headless, over real HTTP; exit status 0 only if all worked.

It starts the shop (emulator mounted) on a free port in this process, on a throwaway SQLite database unless
DATABASE_URL is set, runs the journey of :mod:`shop.journey`, prints a summary, and stops everything.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from rich.console import Console

from shop.demo import DemoServer, point_at, setup_demo, start_celery_worker, stop_process
from shop.journey import Journey

#: The journey's own merchant and staff member, so that it never changes the demo's (on a shared database).
MERCHANT_NAME = "Demo checkout (emulator)"
STAFF_USERNAME = "demo-checkout"


def _use_sqlite_file(path: Path) -> None:
    """Point the default database at ``path`` before anything has opened it (as Django's test runner does)."""
    connections["default"].close()
    settings.DATABASES["default"]["NAME"] = str(path)
    connections["default"].settings_dict["NAME"] = str(path)


class Command(BaseCommand):
    help = (
        "Run the demo's whole journey headless over real HTTP: checkout, pay at the cashier, notification, "
        "refunds, an over-refund refused, an in-store payment and a reverse refused the next Beijing day."
    )
    requires_system_checks: ClassVar[list[str]] = []

    def handle(self, *args: Any, **options: Any) -> None:
        console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 110)
        workdir = None
        if not os.environ.get("DATABASE_URL"):
            workdir = Path(tempfile.mkdtemp(prefix="shop-demo-checkout-"))
            _use_sqlite_file(workdir / "shop.sqlite3")
            where = "a throwaway SQLite database"
        else:
            where = f"the {connections['default'].vendor} database of DATABASE_URL"
        try:
            ok = self._run(console, where)
        finally:
            connections.close_all()
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
        if not ok:
            raise CommandError("the demo journey did not complete: see the failed step above")

    def _run(self, console: Console, where: str) -> bool:
        console.rule("[bold]django-alipay-global: the demo journey, headless[/]")
        console.print(f"Preparing {where} ...")
        call_command("migrate", verbosity=0, interactive=False)
        server = DemoServer("127.0.0.1", 0, quiet=True)
        point_at(server.url, merchant_name=MERCHANT_NAME)
        report = setup_demo()
        assert report.merchant is not None
        password = secrets.token_urlsafe(16)
        staff, _ = get_user_model().objects.get_or_create(
            username=STAFF_USERNAME, defaults={"is_staff": True, "is_superuser": True}
        )
        staff.set_password(password)
        staff.save()
        connections.close_all()  # the server's threads open their own connections
        worker = None
        if settings.CELERY_BROKER_URL:
            console.print(f"Refunds go through Celery ({settings.CELERY_BROKER_URL}): starting a worker ...")
            env = {"SHOP_BASE_URL": server.url}
            if connections["default"].vendor == "sqlite":
                env["SHOP_SQLITE_PATH"] = str(settings.DATABASES["default"]["NAME"])
            celery_dir = tempfile.mkdtemp(prefix="shop-celery-")
            worker = start_celery_worker(celery_dir, env=env)
        try:
            return self._journey(console, server, report.merchant, password)
        finally:
            if worker is not None:
                stop_process(worker)
                shutil.rmtree(celery_dir, ignore_errors=True)

    def _journey(self, console: Console, server: DemoServer, merchant: Any, password: str) -> bool:
        with server:
            console.print(
                f"The shop is at [bold]{server.url}/[/] with the emulator at /emulator/; merchant "
                f"{merchant.name!r}, partner {merchant.partner}, {merchant.sign_type}."
            )
            journey = Journey(console, server.url, staff=(STAFF_USERNAME, password), partner=merchant.partner)
            ok = journey.run()
        console.print()
        console.print(journey.summary())
        console.print(journey.orders_table())
        passed = sum(result.ok for result in journey.results)
        if ok:
            console.print(f"[bold green]All {passed} steps did what they should.[/]")
        else:
            console.print(
                f"[bold red]{passed} of {len(journey.results)} steps passed; the journey stopped.[/]"
            )
        return ok
