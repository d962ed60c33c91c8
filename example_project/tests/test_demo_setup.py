"""manage.py demo_setup: creates the staff user and the emulator merchant once, then changes nothing."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from django_alipay.emulator import api as emulator
from django_alipay.emulator.models import Partner
from django_alipay.models import Merchant
from django_alipay.protocol import keys, signing

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _settings_restored(settings: Any) -> None:
    """--base-url rewrites the process's settings; routing them through pytest-django undoes that after."""
    settings.ALIPAY = dict(settings.ALIPAY)
    settings.SHOP_BASE_URL = settings.SHOP_BASE_URL
    settings.SHOP_MERCHANT_NAME = settings.SHOP_MERCHANT_NAME


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("demo_setup", *args, stdout=out)
    return out.getvalue()


def snapshot() -> list[Any]:
    merchants = list(Merchant.objects.values())
    users = list(User.objects.values("username", "password", "is_staff", "is_superuser"))
    partners = list(Partner.objects.values())
    return [merchants, users, partners]


def test_the_first_run_creates_a_working_rsa2_merchant_and_a_staff_user(settings: Any) -> None:
    output = run("--base-url", "http://127.0.0.1:8123")
    assert "+ staff user 'admin' created" in output
    assert "+ merchant 'Demo shop (emulator)' created" in output
    assert "gateway:    http://127.0.0.1:8123/emulator/gateway.do" in output
    merchant = Merchant.objects.get()
    assert (merchant.sign_type, merchant.environment, merchant.currency) == ("RSA2", "emulator", "USD")
    assert merchant.notify_url() == f"http://127.0.0.1:8123/alipay/notify/{merchant.notify_token}/"
    # Its own key pair, the public half registered with the emulator; the emulator's key as Alipay's.
    private = merchant.signing_key()
    assert keys.is_key_pair(private, merchant.public_key)
    assert keys.is_key_pair(private, Partner.objects.get(partner=merchant.partner).merchant_public_key)
    alipay = emulator.public_keys()["RSA2"]
    assert keys.fingerprint(merchant.verification_keys()[0]) == alipay["fingerprint"]
    # A request signed with the stored key verifies with the registered public key.
    params = {"service": "single_trade_query", "partner": merchant.partner, "out_trade_no": "X-1"}
    signature = signing.sign(params, sign_type="RSA2", key=private)
    assert signing.verify({**params, "sign": signature, "sign_type": "RSA2"}, key=merchant.public_key)
    user = User.objects.get(username="admin")
    password = output.split("login:      admin / ")[1].split()[0]
    assert user.is_staff
    assert user.is_superuser
    assert user.check_password(password)
    # Secrets stay out of the output.
    assert merchant.signing_key() not in output
    assert "PRIVATE KEY" not in output


def test_a_second_run_changes_nothing_and_says_what_exists() -> None:
    run("--base-url", "http://127.0.0.1:8123")
    before = snapshot()
    output = run("--base-url", "http://127.0.0.1:8123")
    assert snapshot() == before
    assert "Nothing changed." in output
    marks = [line[:2] for line in output.splitlines() if line[:2] in ("+ ", "~ ", "= ")]
    assert marks
    assert set(marks) == {"= "}
    assert "= merchant 'Demo shop (emulator)' exists" in output
    assert "= staff user 'admin' exists" in output


def test_serving_elsewhere_moves_only_the_gateway_url() -> None:
    run("--base-url", "http://127.0.0.1:8123")
    merchant = Merchant.objects.get()
    output = run("--base-url", "http://127.0.0.1:9000")
    assert "~ its gateway URL is now http://127.0.0.1:9000/emulator/gateway.do" in output
    moved = Merchant.objects.get()
    assert moved.gateway_url == "http://127.0.0.1:9000/emulator/gateway.do"
    assert (moved.partner, moved.public_key, moved.notify_token) == (
        merchant.partner,
        merchant.public_key,
        merchant.notify_token,
    )


def test_the_set_up_report_keeps_a_fingerprint_on_one_line_when_printed_to_a_file() -> None:
    from rich.console import Console
    from shop.management.commands.demo_serve import print_report

    out = io.StringIO()
    line = "merchant 'Demo shop (emulator)' created: partner 2088371452561474, RSA2 key pair generated "
    fingerprint = "(SHA256:3c1a291d6827e7e3...)"
    console = Console(file=out, width=110, highlight=False)  # what the demo uses when stdout is not a tty

    print_report(console, [("+", line + fingerprint)])

    assert out.getvalue().splitlines() == [f"  + {line}{fingerprint}"]
