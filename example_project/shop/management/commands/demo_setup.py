"""manage.py demo_setup: the demo's staff user and emulator merchant; a second run changes nothing."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from shop.demo import point_at, setup_demo


class Command(BaseCommand):
    help = (
        "Create the demo's staff user and its merchant, configured against the emulator mounted in this "
        "project (RSA2 keys generated now). Idempotent: prints what exists and changes nothing then."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--base-url",
            default=None,
            help="Where the shop will be served (default: SHOP_BASE_URL, else http://127.0.0.1:8000).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["base_url"]:
            point_at(options["base_url"])
        report = setup_demo()
        for mark, text in report.lines:
            style = self.style.SUCCESS if mark in "+~" else (lambda text: text)
            self.stdout.write(style(f"{mark} {text}"))
        merchant = report.merchant
        assert merchant is not None
        self.stdout.write(f"  gateway:    {merchant.gateway_url}")
        self.stdout.write(f"  notify URL: {merchant.notify_url()}")
        self.stdout.write(f"  login:      {report.username} / {report.password or '(unchanged)'}")
        self.stdout.write("Nothing changed." if not report.changed else "Done.")
