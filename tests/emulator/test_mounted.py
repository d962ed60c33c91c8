"""The emulator mounted in a project: the DEBUG guard, its system check, URLs under the prefix, Python API."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.core.checks import run_checks
from django.test import Client
from django.utils.crypto import get_random_string

from django_alipay.emulator import api
from django_alipay.emulator.conf import control_token
from django_alipay.emulator.partners import PartnerError

from .conftest import BARCODE, Receiver, new_id
from .signer import parse_envelope, sign, verify

PARTNER = "2088000011112222"
KEY = "mountedmountedmountedmountedmoun"


def _query(params: dict[str, str]) -> str:
    full = {"partner": PARTNER, "_input_charset": "utf-8", **params}
    full["sign"] = sign(full, "MD5", KEY)
    full["sign_type"] = "MD5"
    return "/emulator/gateway.do?" + urlencode(full)


@pytest.fixture
def mounted(settings, db) -> None:
    settings.ALIPAY_EMULATOR = {"NOTIFIER_THREAD": False}
    api.register_partner(PARTNER, md5_key=KEY)


def test_refuses_to_serve_without_debug_unless_allowed(client: Client, settings, db) -> None:
    settings.DEBUG = False
    settings.ALIPAY_EMULATOR_ALLOW = False
    for url in ("/emulator/gateway.do?service=x", "/emulator/control/keys", "/emulator/"):
        response = client.get(url)
        assert response.status_code == 403
        assert b"ALIPAY_EMULATOR_ALLOW = True" in response.content
        assert b"DEBUG" in response.content
    assert client.post("/emulator/control/clock", {"now": "real"}).status_code == 403
    settings.DEBUG = True
    response = client.get("/emulator/gateway.do?service=x")
    assert parse_envelope(response.content).error == "ILLEGAL_SERVICE"


def test_system_check_says_why_it_refuses(settings, db) -> None:
    settings.DEBUG = False
    settings.ALIPAY_EMULATOR_ALLOW = False
    (warning,) = [m for m in run_checks() if m.id == "django_alipay_emulator.W001"]
    assert "DEBUG is False" in warning.msg
    assert "ALIPAY_EMULATOR_ALLOW = True" in warning.hint
    settings.ALIPAY_EMULATOR_ALLOW = True
    settings.ALIPAY_EMULATOR_UNSAFE_WITHOUT_DEBUG = False
    (error,) = [m for m in run_checks() if m.id.startswith("django_alipay_emulator")]
    assert (error.id, error.is_serious()) == ("django_alipay_emulator.E001", True)
    assert "ALIPAY_EMULATOR_UNSAFE_WITHOUT_DEBUG = True" in error.hint
    settings.ALIPAY_EMULATOR_UNSAFE_WITHOUT_DEBUG = True
    assert not [m for m in run_checks() if m.id.startswith("django_alipay_emulator")]
    deploy = [m.id for m in run_checks(include_deployment_checks=True)]
    assert "django_alipay_emulator.W002" in deploy
    settings.DEBUG = True
    settings.ALIPAY_EMULATOR_ALLOW = False
    assert not [
        m for m in run_checks(include_deployment_checks=True) if m.id.startswith("django_alipay_emulator")
    ]


def test_payment_through_the_mounted_urls_and_the_python_api(mounted, receiver: Receiver) -> None:
    client = Client(enforce_csrf_checks=True)
    receiver.answer("/mounted", "success")
    out_trade_no = new_id()
    params = {
        "service": "create_forex_trade",
        "out_trade_no": out_trade_no,
        "subject": "Mounted",
        "currency": "USD",
        "total_fee": "3.00",
        "product_code": "NEW_OVERSEAS_SELLER",
        "notify_url": receiver.url("/mounted"),
        "return_url": "https://shop.example/done",
    }
    response = client.get(_query(params))
    assert response.status_code == 302
    assert response["Location"].startswith("/emulator/cashier/")
    assert client.get(response["Location"]).status_code == 200

    outcome = api.pay_trade(PARTNER, out_trade_no=out_trade_no)
    assert outcome.trade.status == "TRADE_FINISHED"
    assert outcome.return_url is not None
    assert outcome.return_url.startswith("https://shop.example/done?")

    (delivery,) = api.deliver_due_notifications()
    assert delivery.outcome == "acknowledged"
    (record,) = receiver.got("/mounted")
    assert record.params["out_trade_no"] == out_trade_no
    assert verify(record.params, "MD5", KEY)
    assert [d["notify_id"] for d in api.deliveries(partner=PARTNER)] == [record.params["notify_id"]]
    assert api.deliver_due_notifications() == []


def test_control_posts_need_the_control_token_or_a_browser_forms_csrf_token(mounted) -> None:
    client = Client(enforce_csrf_checks=True)
    url = "/emulator/control/partners"
    partner = {"partner": "2088000011113333", "md5_key": "k" * 32}
    assert client.post(url, partner, content_type="application/json").status_code == 403
    wrong = client.post(url, partner, content_type="application/json", headers={"X-Emulator-Token": "guess"})
    assert (wrong.status_code, wrong.json()["error"]) == (403, "bad_control_token")
    response = client.post(
        url, partner, content_type="application/json", headers={"X-Emulator-Token": control_token()}
    )
    assert response.status_code == 200
    assert response.json()["sign_types"] == ["MD5"]
    assert "md5_key" not in response.json()
    # A page of the emulator posting a form: Django's CSRF cookie and the token the form carries.
    secret = get_random_string(32)
    client.cookies["csrftoken"] = secret
    form = client.post("/emulator/control/clock", {"now": "real", "csrfmiddlewaretoken": secret})
    assert form.status_code == 200
    assert client.post("/emulator/control/clock", {"now": "real"}).status_code == 403
    keys = client.get("/emulator/control/keys").json()["keys"]
    assert keys["RSA"]["fingerprint"] == keys["RSA2"]["fingerprint"]
    assert keys["DSA"]["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")


def test_clock_and_faults_through_the_api(mounted) -> None:
    client = Client()
    api.set_clock("2024-03-01T23:59:59+08:00")
    params = {
        "service": "alipay.acquire.overseas.spot.pay",
        "alipay_seller_id": PARTNER,
        "trans_name": "Tea",
        "partner_trans_id": new_id("P"),
        "currency": "USD",
        "trans_amount": "1.00",
        "buyer_identity_code": BARCODE,
        "identity_code_type": "barcode",
        "trans_create_time": "20240301235959",
        "biz_product": "OVERSEAS_MBARCODE_PAY",
    }
    fields = parse_envelope(client.get(_query(params)).content).fields
    assert fields["alipay_pay_time"] == "20240301235959"
    api.set_faults({"global": {"drop_rate": 1}})
    with pytest.raises(ConnectionResetError):
        client.get(_query({**params, "partner_trans_id": new_id("P")}))
    api.set_faults(None)
    api.set_clock(None)


def test_qr_code_urls_are_absolute_under_the_mount(mounted) -> None:
    params = {
        "service": "alipay.acquire.precreate",
        "out_trade_no": new_id("Q"),
        "subject": "x",
        "product_code": "OVERSEAS_MBARCODE_PAY",
        "total_fee": "1.00",
        "currency": "USD",
    }
    fields = parse_envelope(Client().get(_query(params)).content).fields
    assert fields["qr_code"].startswith("http://testserver/emulator/cashier/")
    assert fields["pic_url"].startswith("http://testserver/emulator/qr/")
    image = Client().get(fields["pic_url"].removeprefix("http://testserver"))
    assert image["Content-Type"] == "image/png"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"partner": "123"}, "16 digits"),
        ({"partner": PARTNER, "sign_types": ["RSA2"]}, "needs a RSA merchant_public_key"),
        ({"partner": PARTNER, "md5_key": "has space"}, "md5_key"),
        ({"partner": PARTNER, "merchant_public_key": "not a key"}, "merchant_public_key"),
        ({"partner": PARTNER, "md5_key": KEY, "services": ["pay_everything"]}, "unknown service"),
    ],
)
def test_partner_registration_is_validated(db, kwargs: dict, message: str) -> None:
    with pytest.raises(PartnerError, match=message):
        api.register_partner(**kwargs)
