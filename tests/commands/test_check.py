"""manage.py alipay_check against the emulator: what it says for working and for broken credentials."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from django_alipay.models import Merchant
from django_alipay.protocol import keys
from tests.commands.conftest import Ran
from tests.conftest import TEST_PARTNER
from tests.tasks.support import Emulator

RSA_PARTNER = "2088102030405060"


@pytest.fixture(scope="module")
def key_pairs() -> tuple[Any, Any]:
    """Two RSA private keys: the one whose public key Alipay (the emulator) holds, and another one."""
    return keys.generate_private_key("RSA2"), keys.generate_private_key("RSA2")


@pytest.fixture
def rsa_partner(emulator: Emulator, key_pairs: tuple[Any, Any]) -> str:
    """A partner registered at the emulator for RSA2 with the first key pair's public key."""
    registered, _ = key_pairs
    emulator.post(
        "partners",
        {
            "partner": RSA_PARTNER,
            "merchant_public_key": keys.public_key_one_line(registered),
            "sign_types": ["RSA2"],
        },
    )
    return RSA_PARTNER


@pytest.fixture
def alipay_public_key(emulator: Emulator) -> str:
    return str(emulator.get("keys")["keys"]["RSA2"]["public_key_pem"])


@pytest.fixture
def on_emulator(make_merchant: Callable[..., Merchant], emulator: Emulator) -> Callable[..., Merchant]:
    def make(**fields: Any) -> Merchant:
        return make_merchant(
            **{"name": "Tea House", "gateway_url": emulator.gateway, "partner": TEST_PARTNER, **fields}
        )

    return make


def test_working_credentials_pass_and_the_command_succeeds(
    run_command: Callable[..., Ran], on_emulator: Callable[..., Merchant]
) -> None:
    on_emulator()
    ran = run_command("alipay_check")
    assert not ran.failed, ran
    assert "Testing 1 merchant with a signed query to Alipay:" in ran.out
    assert "  OK       Tea House (partner 2088101122136241, MD5)" in ran.out
    assert "The credentials work: Alipay accepted a query signed as partner 2088101122136241" in ran.out
    # The test settings run the emulator without DEBUG: the checks warn, and that is no failure.
    assert "Warning: Merchant 'Tea House' talks to the emulator while DEBUG is False." in ran.out
    assert ran.out.rstrip().splitlines()[-1].startswith("No problem found (")


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        (
            {"partner": "2088000000000099"},
            "Alipay does not know partner ID 2088000000000099 (ILLEGAL_PARTNER). Check the 16-digit ID",
        ),
        (
            {"md5_key": "0123456789abcdefghijklmnopqrstuv"},
            "Alipay rejected the signature (ILLEGAL_SIGN): the MD5 key is not the one Alipay holds",
        ),
        (
            {"gateway_url": "http://127.0.0.1:9/gateway.do"},
            "Alipay's gateway at http://127.0.0.1:9/gateway.do could not be reached",
        ),
    ],
    ids=["wrong partner", "wrong key", "gateway unreachable"],
)
def test_each_mistake_is_explained_and_fails_the_command(
    run_command: Callable[..., Ran], on_emulator: Callable[..., Merchant], fields: dict[str, str], says: str
) -> None:
    on_emulator(**fields)
    ran = run_command("alipay_check")
    assert ran.failed
    assert "  PROBLEM  Tea House" in ran.out
    assert says in ran.out
    assert ran.error == "1 problem found; see above."


def test_a_private_key_whose_public_key_alipay_does_not_hold_is_a_key_pair_mismatch(
    run_command: Callable[..., Ran],
    on_emulator: Callable[..., Merchant],
    rsa_partner: str,
    key_pairs: tuple[Any, Any],
    alipay_public_key: str,
) -> None:
    registered, other = key_pairs
    good = on_emulator(
        name="Right Pair", partner=rsa_partner, sign_type="RSA2", md5_key=None,
        private_key=keys.private_key_pem(registered), alipay_public_key=alipay_public_key,
    )  # fmt: skip
    assert not run_command("alipay_check", "--merchant", good.name).failed
    good.delete()
    on_emulator(
        name="Other Pair", partner=rsa_partner, sign_type="RSA2", md5_key=None,
        private_key=keys.private_key_pem(other), alipay_public_key=alipay_public_key,
    )  # fmt: skip
    ran = run_command("alipay_check", "--merchant", "Other Pair")
    assert ran.failed
    assert ran.error == "1 problem found; see above."
    assert "Alipay does not hold the public key of this private key for partner 2088102030405060" in ran.out


def test_alipays_public_key_swapped_for_the_merchants_own_is_named(
    run_command: Callable[..., Ran],
    on_emulator: Callable[..., Merchant],
    rsa_partner: str,
    key_pairs: tuple[Any, Any],
) -> None:
    registered, _ = key_pairs
    on_emulator(
        partner=rsa_partner, sign_type="RSA2", md5_key=None, private_key=keys.private_key_pem(registered),
        alipay_public_key=keys.public_key_one_line(registered),
    )  # fmt: skip
    ran = run_command("alipay_check")
    assert ran.failed
    assert "Problem: Merchant 'Tea House': the Alipay public key is the merchant's own public key." in ran.out
    assert "What to do: Paste the public key Alipay gave you, not the one you submitted to Alipay." in ran.out
    assert "The key stored as Alipay's public key is your own public key" in ran.out
    assert ran.error == "2 problems found; see above."


def test_offline_it_runs_the_local_checks_only(
    run_command: Callable[..., Ran], on_emulator: Callable[..., Merchant]
) -> None:
    on_emulator(md5_key="too-short")
    ran = run_command("alipay_check", "--offline")
    assert ran.failed
    assert (
        "Problem: Merchant 'Tea House': the MD5 key is not 32 letters and digits. [django_alipay.E011]"
        in (ran.out)
    )
    assert "What to do: Copy it again from the Alipay portal." in ran.out
    assert "Alipay was not contacted (--offline)." in ran.out
    assert "Testing" not in ran.out


def test_without_merchants_it_says_how_to_add_one(run_command: Callable[..., Ran], db: None) -> None:
    ran = run_command("alipay_check")
    assert "No active merchant to test: add one in the admin (Alipay > Merchants)." in ran.out
