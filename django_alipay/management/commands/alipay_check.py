"""manage.py alipay_check: check the Alipay setup, then each merchant's credentials with a test query."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS

from django_alipay.domain import merchants as merchant_checks
from django_alipay.management.commands._shared import find_merchant, plural
from django_alipay.models import Merchant

_LEVELS = {
    checks.CRITICAL: "Problem",
    checks.ERROR: "Problem",
    checks.WARNING: "Warning",
    checks.INFO: "Note",
    checks.DEBUG: "Note",
}


class Command(BaseCommand):
    help = (
        "Check the django_alipay setup (settings and stored keys, the system checks with the database tag), "
        "then sign a harmless query for a made-up order number as each active merchant: Alipay answering "
        "'no such trade' proves the partner ID and keys work. Says what is wrong in plain words; exits with "
        "status 1 when something is."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--merchant", help="Check only this merchant (its name or partner ID).")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database to read merchants from.")
        parser.add_argument(
            "--offline", action="store_true", help="Do not contact Alipay: run the local checks only."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        problems, warnings = self._system_checks(options["database"])
        if options["merchant"]:
            merchants = [find_merchant(options["merchant"])]
        else:
            merchants = list(Merchant.objects.using(options["database"]).filter(is_active=True))
        if options["offline"]:
            self.stdout.write("Alipay was not contacted (--offline).")
        elif not merchants:
            self.stdout.write("No active merchant to test: add one in the admin (Alipay > Merchants).")
        else:
            self.stdout.write("")
            self.stdout.write(f"Testing {plural(len(merchants), 'merchant')} with a signed query to Alipay:")
            for merchant in merchants:
                report = merchant_checks.check_credentials(merchant)
                label = f"{merchant.name} (partner {merchant.partner}, {merchant.sign_type})"
                if report.ok:
                    self.stdout.write(self.style.SUCCESS(f"  OK       {label}"))
                else:
                    problems += 1
                    self.stdout.write(self.style.ERROR(f"  PROBLEM  {label}"))
                self.stdout.write(f"           {report.message}")
        self.stdout.write("")
        if problems:
            raise CommandError(f"{plural(problems, 'problem')} found; see above.")
        noted = f" ({plural(warnings, 'warning')} above)" if warnings else ""
        self.stdout.write(self.style.SUCCESS(f"No problem found{noted}."))

    def _system_checks(self, database: str) -> tuple[int, int]:
        """Print django_alipay's system check messages in plain words; return (errors, warnings)."""
        found = [
            message
            for message in checks.run_checks(databases=[database])
            if (message.id or "").startswith("django_alipay")
        ]
        if not found:
            self.stdout.write("Settings and stored keys: no problem found.")
            return 0, 0
        self.stdout.write("Settings and stored keys:")
        errors = 0
        for message in found:
            level = _LEVELS.get(message.level, "Note")
            if message.is_serious():
                errors += 1
            style = self.style.ERROR if message.is_serious() else self.style.WARNING
            self.stdout.write(style(f"  {level}: {message.msg} [{message.id}]"))
            if message.hint:
                self.stdout.write(f"    What to do: {message.hint}")
        return errors, len(found) - errors
