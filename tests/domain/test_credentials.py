"""merchants.check_credentials against the real emulator over HTTP, and the key mistakes found locally."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from django_alipay.domain import merchants
from django_alipay.models import Merchant
from django_alipay.protocol import keys
from tests.conftest import CONTROL_HEADERS, TEST_MD5_KEY, TEST_PARTNER
from tests.domain.fakegateway import FakeGateway, Reply

pytestmark = pytest.mark.django_db(transaction=True)

RSA_PARTNER = "2088000000007777"


@pytest.fixture(scope="module")
def pairs() -> dict[str, Any]:
    return {name: keys.generate_private_key("RSA2") for name in ("registered", "stranger")}


@pytest.fixture(scope="module")
def emulator(pairs: dict[str, Any]) -> Iterator[str]:
    """The standalone emulator's base URL, knowing an MD5 partner and an RSA2 partner."""
    process = subprocess.Popen(
        [sys.executable, "-m", "django_alipay.emulator", "--host", "127.0.0.1", "--port", "0",
         "--partner", TEST_PARTNER, "--md5-key", TEST_MD5_KEY, "--no-notifier", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("ready "), f"the emulator did not start: {line!r}"
        base = line.split()[1].removesuffix("gateway.do")
        registered = requests.post(
            base + "control/partners",
            headers=CONTROL_HEADERS,
            json={
                "partner": RSA_PARTNER,
                "merchant_public_key": keys.public_key_pem(pairs["registered"]),
                "sign_types": ["RSA2"],
            },
            timeout=10,
        )
        assert registered.status_code == 200, registered.text
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


@pytest.fixture(scope="module")
def emulator_public_key(emulator: str) -> str:
    return str(requests.get(emulator + "control/keys", timeout=10).json()["keys"]["RSA2"]["public_key_pem"])


def test_md5_credentials_alipay_accepts(make_merchant: Callable[..., Merchant], emulator: str) -> None:
    report = merchants.check_credentials(make_merchant(gateway_url=emulator + "gateway.do"))
    assert (report.ok, report.problem) == (True, "")
    assert "TRADE_NOT_EXIST" in report.message


def test_a_partner_id_alipay_does_not_know(make_merchant: Callable[..., Merchant], emulator: str) -> None:
    report = merchants.check_credentials(
        make_merchant(gateway_url=emulator + "gateway.do", partner="2088999988887777")
    )
    assert (report.ok, report.problem) == (False, "wrong_partner")
    assert "2088999988887777" in report.message


def test_a_wrong_md5_key(make_merchant: Callable[..., Merchant], emulator: str) -> None:
    report = merchants.check_credentials(make_merchant(gateway_url=emulator + "gateway.do", md5_key="W" * 32))
    assert (report.ok, report.problem) == (False, "wrong_key")
    assert "MD5 key" in report.message


def test_rsa2_credentials_alipay_accepts_and_a_private_key_it_does_not_know(
    make_merchant: Callable[..., Merchant], emulator: str, emulator_public_key: str, pairs: dict[str, Any]
) -> None:
    def merchant(private: Any) -> Merchant:
        return make_merchant(
            gateway_url=emulator + "gateway.do",
            partner=RSA_PARTNER,
            environment="emulator",
            sign_type="RSA2",
            private_key=keys.private_key_pem(private),
            alipay_public_key=emulator_public_key,
        )

    good = merchants.check_credentials(merchant(pairs["registered"]))
    assert (good.ok, good.problem) == (True, ""), good.message
    Merchant.objects.all().delete()
    bad = merchants.check_credentials(merchant(pairs["stranger"]))
    assert (bad.ok, bad.problem) == (False, "wrong_key")
    assert keys.fingerprint(pairs["stranger"]) in bad.message


def test_an_unreachable_gateway(make_merchant: Callable[..., Merchant]) -> None:
    report = merchants.check_credentials(make_merchant(gateway_url="http://127.0.0.1:9/gateway.do"))
    assert (report.ok, report.problem) == (False, "unreachable")
    assert "127.0.0.1:9" in report.message


def test_a_gateway_answering_garbage(make_merchant: Callable[..., Merchant]) -> None:
    fake = FakeGateway()
    try:
        fake.on("single_trade_query", lambda p: Reply(b"<html>maintenance</html>", content_type="text/html"))
        report = merchants.check_credentials(make_merchant(gateway_url=fake.url))
    finally:
        fake.close()
    assert (report.ok, report.problem) == (False, "no_answer")


# --- found without asking Alipay ----------------------------------------------------------------------------


@pytest.fixture
def offline(make_merchant: Callable[..., Merchant], pairs: dict[str, Any]) -> Callable[..., Merchant]:
    """An RSA2 merchant pointing at a closed port: any network call would fail as "unreachable"."""

    def make(**fields: Any) -> Merchant:
        values = {
            "gateway_url": "http://127.0.0.1:9/gateway.do",
            "sign_type": "RSA2",
            "private_key": keys.private_key_pem(pairs["registered"]),
            "alipay_public_key": keys.public_key_pem(pairs["stranger"]),
        }
        values.update(fields)
        return make_merchant(**values)

    return make


def test_alipays_key_field_holding_the_merchants_own_key(
    offline: Callable[..., Merchant], pairs: dict[str, Any]
) -> None:
    report = merchants.check_credentials(offline(alipay_public_key=keys.public_key_pem(pairs["registered"])))
    assert (report.ok, report.problem) == (False, "own_public_key")


def test_the_two_public_keys_swapped(offline: Callable[..., Merchant], pairs: dict[str, Any]) -> None:
    report = merchants.check_credentials(offline(public_key=keys.public_key_pem(pairs["stranger"])))
    assert (report.ok, report.problem) == (False, "keys_swapped")


def test_a_private_key_that_is_not_the_pair_of_the_recorded_public_key(
    offline: Callable[..., Merchant], pairs: dict[str, Any]
) -> None:
    third = keys.generate_private_key("RSA2")
    report = merchants.check_credentials(offline(public_key=keys.public_key_pem(third)))
    assert (report.ok, report.problem) == (False, "key_pair_mismatch")
    assert keys.fingerprint(pairs["registered"]) in report.message


@pytest.mark.parametrize("missing", ["private_key", "alipay_public_key"])
def test_a_key_the_sign_type_needs_is_missing(offline: Callable[..., Merchant], missing: str) -> None:
    report = merchants.check_credentials(offline(**{missing: None}))
    assert (report.ok, report.problem) == (False, "no_key")


def test_an_md5_merchant_without_its_key(make_merchant: Callable[..., Merchant]) -> None:
    report = merchants.check_credentials(
        make_merchant(md5_key=None, gateway_url="http://127.0.0.1:9/gateway.do")
    )
    assert (report.ok, report.problem) == (False, "no_key")
