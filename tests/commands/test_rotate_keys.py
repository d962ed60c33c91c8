"""manage.py alipay_rotate_keys: secrets re-encrypted under the newest Fernet key, counted, safe twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.db.models import TextField
from django.db.models.functions import Cast

from django_alipay.models import Merchant
from tests.commands.conftest import Ran
from tests.conftest import TEST_MD5_KEY

OLD_KEY = "Pfb9ofqBIaATt0WUh3VQZz7Wk7q2n2aBoXCvtp0Jm8Q="  # the test settings' key
NEW_KEY = Fernet.generate_key().decode()


def stored_token(merchant: Merchant) -> str:
    """The MD5 key column as stored (a Fernet token), read without decrypting it."""
    raw = Merchant.objects.filter(pk=merchant.pk).annotate(raw=Cast("md5_key", TextField()))
    return str(raw.values_list("raw", flat=True).get())


@pytest.fixture
def two_shops(make_merchant: Callable[..., Merchant]) -> list[Merchant]:
    return [make_merchant(name="Tea House"), make_merchant(name="Noodle Bar")]


def test_rotation_moves_every_secret_to_the_newest_key_and_can_run_again(
    run_command: Callable[..., Ran], two_shops: list[Merchant], make_merchant: Any, settings: Any
) -> None:
    make_merchant(name="Empty Shop", md5_key=None)
    settings.ALIPAY = {**settings.ALIPAY, "FERNET_KEYS": [NEW_KEY, OLD_KEY]}
    before = stored_token(two_shops[0])

    first = run_command("alipay_rotate_keys")

    assert not first.failed, first
    assert first.out.splitlines() == [
        "Re-encrypted the secrets of 2 merchants with the newest key (the first of the 2 keys in "
        "ALIPAY['FERNET_KEYS']).",
        "1 merchant had no stored secrets.",
        "Every secret now opens with the newest key alone: you can remove the older 1 key from "
        "ALIPAY['FERNET_KEYS'] and restart.",
    ]
    assert stored_token(two_shops[0]) != before
    assert TEST_MD5_KEY not in first.out

    settings.ALIPAY = {**settings.ALIPAY, "FERNET_KEYS": [NEW_KEY]}  # the old key is gone
    for shop in two_shops:
        assert Merchant.objects.get(pk=shop.pk).md5_key.reveal() == TEST_MD5_KEY
    second = run_command("alipay_rotate_keys")
    assert second.out.splitlines()[0].startswith("Re-encrypted the secrets of 2 merchants")
    assert second.out.splitlines()[-1] == "Only one key is configured, so there is no older key to retire."
    assert Merchant.objects.get(pk=two_shops[1].pk).md5_key.reveal() == TEST_MD5_KEY


def test_a_secret_no_key_can_open_stops_the_rotation_and_changes_nothing(
    run_command: Callable[..., Ran], two_shops: list[Merchant], settings: Any
) -> None:
    before = [stored_token(shop) for shop in two_shops]
    settings.ALIPAY = {**settings.ALIPAY, "FERNET_KEYS": [NEW_KEY]}  # the key that encrypted them is missing
    ran = run_command("alipay_rotate_keys")
    assert ran.failed
    assert ran.error.startswith(
        "Nothing was changed: a stored secret cannot be decrypted with any key in ALIPAY['FERNET_KEYS']."
    )
    assert [stored_token(shop) for shop in two_shops] == before


def test_without_any_key_it_says_what_to_do(run_command: Callable[..., Ran], db: None, settings: Any) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "FERNET_KEYS": []}
    ran = run_command("alipay_rotate_keys")
    assert ran.failed
    assert "ALIPAY['FERNET_KEYS'] is empty: there is no key to encrypt with." in ran.error
