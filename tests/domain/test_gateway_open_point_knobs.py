"""Pay, notify, query and refund through the real notify view under every value of the gateway knobs.

Each knob plays one behaviour the references leave open (response charset, notify_id length, notify_verify
method, order_create, the sandbox, wrapped signatures, where a notification names its charset, duplicate
orders, file date errors): the library must get the money through under every one of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from django_alipay.domain import refunds, trades
from django_alipay.emulator.conf import OPEN_POINT_KNOBS
from django_alipay.enums import ProcessingOutcome, RefundStatus
from django_alipay.models import Merchant, Notification, Trade
from tests.conftest import CONTROL_HEADERS, standalone_emulator

pytestmark = pytest.mark.django_db(transaction=True)

#: The knobs of the open points this file covers (others add theirs to OPEN_POINT_KNOBS elsewhere).
GATEWAY_KNOBS = (
    "RESPONSE_CHARSET",
    "NOTIFY_ID_FORMAT",
    "NOTIFY_VERIFY_METHOD",
    "ORDER_CREATE_FORMAT",
    "SANDBOX",
    "SIGNATURE_LAYOUT",
    "NOTIFY_CHARSET",
    "DUPLICATE_TRADE",
    "FILE_DATE_ERROR",
)
RSA2_PARTNER = "2088000000009901"
CASES = [
    pytest.param(knob, value, sign_type, id=f"{knob.lower()}={value}-{sign_type}")
    for knob in GATEWAY_KNOBS
    for value in OPEN_POINT_KNOBS.get(knob, ())
    for sign_type in ("MD5", "RSA2")
    # The sandbox refuses RSA2 by design: that case is the refusal test below, not a payment.
    if not (knob == "SANDBOX" and value == "on" and sign_type == "RSA2")
]


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    with standalone_emulator() as url:
        yield url


def control(emulator: str, path: str, **data: Any) -> Any:
    response = requests.post(emulator + "control/" + path, json=data, headers=CONTROL_HEADERS, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def knob(emulator: str) -> Iterator[Callable[[str, str], None]]:
    changed: list[str] = []

    def set_knob(name: str, value: str) -> None:
        control(emulator, "config", **{name: value})
        changed.append(name)

    yield set_knob
    for name in changed:
        control(emulator, "config", **{name: OPEN_POINT_KNOBS[name][0]})


@pytest.fixture(scope="module")
def rsa2_private_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def make_shop(
    make_merchant: Callable[..., Merchant],
    emulator: str,
    live_server: Any,
    settings: Any,
    rsa2_private_pem: str,
) -> Callable[[str], Merchant]:
    settings.ALIPAY = {**settings.ALIPAY, "NOTIFY_URL_BASE": f"{live_server.url}/alipay/notify/"}

    def make(sign_type: str) -> Merchant:
        if sign_type == "MD5":
            return make_merchant(gateway_url=emulator + "gateway.do")
        public_pem = (
            serialization.load_pem_private_key(rsa2_private_pem.encode(), password=None)
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
        control(emulator, "partners", partner=RSA2_PARTNER, merchant_public_key=public_pem, sign_types="RSA2")
        alipay_key = requests.get(emulator + "control/keys", timeout=10).json()["keys"]["RSA2"][
            "public_key_pem"
        ]
        return make_merchant(
            partner=RSA2_PARTNER,
            gateway_url=emulator + "gateway.do",
            sign_type="RSA2",
            md5_key=None,
            private_key=rsa2_private_pem,
            alipay_public_key=alipay_key,
        )

    return make


def order_number() -> str:
    return "KNOB-" + uuid.uuid4().hex[:12]


def deliveries(emulator: str, out_trade_no: str) -> list[dict[str, Any]]:
    listing = requests.get(
        emulator + "control/notifications", params={"out_trade_no": out_trade_no}, timeout=10
    ).json()
    return listing["deliveries"]


def test_every_gateway_knob_is_registered_with_its_default_first() -> None:
    for name in GATEWAY_KNOBS:
        values = OPEN_POINT_KNOBS[name]
        assert len(values) >= 2, name
        assert len(set(values)) == len(values), name


@pytest.mark.parametrize(("knob_name", "value", "sign_type"), CASES)
def test_pay_notify_query_and_refund_survive_the_knob(
    knob_name: str, value: str, sign_type: str, emulator: str, knob: Any, make_shop: Any
) -> None:
    knob(knob_name, value)
    shop = make_shop(sign_type)
    out_trade_no = order_number()

    # A WAP payment with a timeout rule carries order_create; the subject is not ASCII, so the response
    # and notification charsets matter.
    start = trades.create_trade(
        shop, out_trade_no=out_trade_no, amount="25.00", subject="龙井茶 Tea", product="wap",
        extra={"timeout_rule": "3d"},
    )  # fmt: skip
    cashier = requests.get(start.url, timeout=30)
    assert cashier.status_code == 200, cashier.text
    # Asked again for the same order, the shop is handed the stored payment URL, never an error.
    assert trades.create_trade(
        shop, out_trade_no=out_trade_no, amount="25.00", subject="龙井茶 Tea", product="wap",
        extra={"timeout_rule": "3d"},
    ).url == start.url  # fmt: skip

    control(emulator, "pay", partner=shop.partner, out_trade_no=out_trade_no)
    control(emulator, "deliver")  # POSTs to the live notify view, which asks notify_verify back

    sent = deliveries(emulator, out_trade_no)
    assert [d["outcome"] for d in sent] == ["acknowledged"], sent
    trade = Trade.objects.get(pk=start.trade.pk)
    assert trade.status == "TRADE_FINISHED"
    stored = Notification.objects.get(merchant=shop, notify_id=sent[0]["notify_id"])
    assert stored.outcome == ProcessingOutcome.PROCESSED

    change = trades.sync_trade(trade)  # single_trade_query: a signed answer with the subject in it
    assert change is not None
    assert change.applied, change.message

    refund = refunds.request_refund(trade, Decimal("10.00"), reason="chipped")
    assert refund.status == RefundStatus.SUCCEEDED, (refund.status, refund.error_code)
    # A refund notification, when the gateway sends one (is_sync=N), is acknowledged like the payment's.
    control(emulator, "deliver")
    outcomes = [d["outcome"] for d in deliveries(emulator, out_trade_no)]
    assert set(outcomes) == {"acknowledged"}, outcomes


def test_the_sandbox_knob_refuses_rsa2_as_the_sandbox_does(emulator: str, knob: Any, make_shop: Any) -> None:
    knob("SANDBOX", "on")
    shop = make_shop("RSA2")
    start = trades.create_trade(shop, out_trade_no=order_number(), amount="1.00", subject="Tea")

    page = requests.get(start.url, timeout=30)

    assert "ILLEGAL_SIGN_TYPE" in page.text
