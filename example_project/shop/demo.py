"""The demo's plumbing: set up the staff user and the emulator merchant, point the settings at a URL, serve.

Used by ``manage.py demo_setup``, ``demo_serve`` (what ``make demo`` runs) and ``demo_checkout``. The merchant
is configured the way a real one is, only against the emulator mounted in this project: an RSA2 key pair is
generated here, its public key registered with the (emulated) gateway, and the gateway's public key stored as
"Alipay's public key". Secrets are stored encrypted with the Fernet key of the local secrets file.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application
from django.db import transaction

from django_alipay.conf import app_settings
from django_alipay.emulator import api as emulator
from django_alipay.emulator.models import Partner
from django_alipay.enums import Environment
from django_alipay.models import Merchant
from django_alipay.protocol import keys
from django_alipay.testing.emulator import new_partner_id
from example_project import demo_secrets
from shop.models import Product

__all__ = [
    "ADMIN_USERNAME",
    "DemoServer",
    "SetupReport",
    "point_at",
    "setup_demo",
    "start_celery_worker",
    "stop_process",
]

logger = logging.getLogger("shop")

ADMIN_USERNAME = "admin"


@dataclass
class SetupReport:
    """What ``setup_demo`` found and did: ``lines`` to print, ``changed`` when anything was written."""

    lines: list[tuple[str, str]] = field(
        default_factory=list
    )  # (mark, text): "+" made, "~" updated, "=" kept
    changed: bool = False
    username: str = ADMIN_USERNAME
    password: str | None = None
    merchant: Merchant | None = None

    def add(self, mark: str, text: str) -> None:
        self.lines.append((mark, text))
        if mark != "=":
            self.changed = True


def point_at(base_url: str, *, merchant_name: str | None = None) -> None:
    """Make this process's settings name ``base_url`` as the shop's address (notify URL included).

    The port of a demo server is known only once it listens; the notify URL Alipay is given must name it.
    ``merchant_name`` changes the merchant the shop sells as (``ALIPAY["DEFAULT_MERCHANT"]``).
    """
    base = base_url.rstrip("/")
    settings.SHOP_BASE_URL = base
    if merchant_name:
        settings.SHOP_MERCHANT_NAME = merchant_name
    settings.ALIPAY = {
        **settings.ALIPAY,
        "NOTIFY_URL_BASE": f"{base}/alipay/notify/",
        "DEFAULT_MERCHANT": settings.SHOP_MERCHANT_NAME,
    }
    app_settings.reload()


def _secrets() -> dict[str, str]:
    return demo_secrets.load_or_create(Path(os.environ.get("SHOP_SECRETS_FILE") or demo_secrets.DEFAULT_PATH))


def _staff_user(report: SetupReport) -> None:
    password = _secrets()["admin_password"]
    users = get_user_model()
    user = users.objects.filter(username=ADMIN_USERNAME).first()
    if user is None:
        users.objects.create_superuser(ADMIN_USERNAME, email="", password=password)
        report.add("+", f"staff user {ADMIN_USERNAME!r} created (a superuser)")
        report.password = password
    elif user.check_password(password):
        report.add("=", f"staff user {ADMIN_USERNAME!r} exists")
        report.password = password
    else:
        report.add(
            "=",
            f"staff user {ADMIN_USERNAME!r} exists with a password of its own (not the secrets file's): "
            f"`manage.py changepassword {ADMIN_USERNAME}` sets a new one",
        )


def _gateway_url() -> str:
    return f"{settings.SHOP_BASE_URL}/emulator/gateway.do"


def _new_merchant(report: SetupReport) -> Merchant:
    private = keys.generate_private_key("RSA2")
    alipay_key = emulator.public_keys()["RSA2"]["public_key_pem"]
    merchant = Merchant.objects.create(
        name=settings.SHOP_MERCHANT_NAME,
        partner=new_partner_id(),
        environment=Environment.EMULATOR,
        gateway_url=_gateway_url(),
        sign_type="RSA2",
        currency="USD",
        private_key=keys.private_key_pem(private),
        public_key=keys.public_key_one_line(private),
        alipay_public_key=alipay_key,
    )
    report.add(
        "+",
        f"merchant {merchant.name!r} created: partner {merchant.partner}, RSA2 key pair generated "
        f"({keys.fingerprint(private)[:23]}...)",
    )
    return merchant


def _register_with_emulator(merchant: Merchant, report: SetupReport) -> None:
    """The gateway must hold the merchant's public key; the merchant, the gateway's. Fix either if stale."""
    public_pem = keys.public_key_pem(merchant.signing_key())
    registered = Partner.objects.filter(partner=merchant.partner).first()
    if registered is not None and registered.merchant_public_key.strip() == public_pem.strip():
        report.add("=", f"the emulator knows partner {merchant.partner} and its public key")
    else:
        emulator.register_partner(merchant.partner, merchant_public_key=public_pem, sign_types=["RSA2"])
        report.add("+", f"partner {merchant.partner} registered with the emulator (its public key uploaded)")
    alipay_key = emulator.public_keys()["RSA2"]
    if keys.fingerprint(merchant.verification_keys()[0]) != alipay_key["fingerprint"]:
        merchant.alipay_public_key = alipay_key["public_key_pem"]
        merchant.save(update_fields=["alipay_public_key", "updated_at"])
        report.add("~", "the merchant's Alipay public key updated to the emulator's")
    else:
        report.add("=", f"the merchant holds the emulator's public key ({alipay_key['fingerprint'][:23]}...)")


def setup_demo() -> SetupReport:
    """Create what the demo needs, or report that it exists: idempotent, a second run changes nothing.

    The staff user ``admin`` (password from the secrets file), the merchant pointed at the emulator at
    ``settings.SHOP_BASE_URL`` (RSA2, keys generated here), and its registration with the emulator.
    """
    report = SetupReport()
    with transaction.atomic():
        _staff_user(report)
        merchant = Merchant.objects.filter(name=settings.SHOP_MERCHANT_NAME).first()
        if merchant is None:
            merchant = _new_merchant(report)
        else:
            report.add(
                "=", f"merchant {merchant.name!r} exists: partner {merchant.partner}, {merchant.sign_type}"
            )
            if merchant.gateway_url != _gateway_url():
                merchant.gateway_url = _gateway_url()
                merchant.save(update_fields=["gateway_url", "updated_at"])
                report.add("~", f"its gateway URL is now {merchant.gateway_url}")
        _register_with_emulator(merchant, report)
    count = Product.objects.count()
    report.add("=", f"{count} products in the shop")
    report.merchant = merchant
    return report


def start_celery_worker(workdir: str, *, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A Celery worker (with beat) for the demo, consuming django_alipay's queues; the caller stops it."""
    command = [
        sys.executable, "-m", "celery", "-A", "example_project", "--quiet", "worker", "--beat",
        "--schedule", os.path.join(workdir, "beat-schedule"),
        "--queues", "celery,alipay,alipay_refunds", "--pool", "solo", "--loglevel", "WARNING",
    ]  # fmt: skip
    return subprocess.Popen(  # noqa: S603 - our interpreter, fixed arguments
        command, cwd=settings.BASE_DIR, env={**os.environ, **(env or {})}
    )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Stop a child process: SIGTERM, then SIGKILL after 15 s."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class DemoServer:
    """The shop (emulator included) on a threaded WSGI server, with its static files, in a background thread.

    One process on purpose: the emulator keeps its clock and fault plan in memory, and its notifier thread
    posts notifications to this very server. ``port=0`` picks a free port; ``url`` says which.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = False) -> None:
        handler = _QuietHandler if quiet else WSGIRequestHandler
        self.httpd = ThreadedWSGIServer((host, port), handler, ipv6=":" in host)
        self.httpd.set_app(StaticFilesHandler(get_wsgi_application()))
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.httpd.server_address[1]}"
        self._thread: threading.Thread | None = None

    def start(self) -> DemoServer:
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="demo-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket, and stop the emulator's notifier thread."""
        from django_alipay.emulator import notifier

        self.httpd.shutdown()
        self.httpd.server_close()
        notifier.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
