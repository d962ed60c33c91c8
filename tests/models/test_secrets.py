"""Merchant secrets: encrypted at rest, absent from dumps, reprs, pickles and logs, rotatable."""

from __future__ import annotations

import io
import json
import logging
import pickle
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import FieldError
from django.core.management import call_command
from django.db import connection

from django_alipay.domain import refunds
from django_alipay.exceptions import AlipayConfigurationError
from django_alipay.fields import Secret
from django_alipay.models import Merchant, Trade
from django_alipay.protocol import keys
from tests.conftest import TEST_MD5_KEY
from tests.domain.fakegateway import FakeGateway

pytestmark = pytest.mark.django_db

PRIVATE_PEM = keys.private_key_pem(keys.generate_private_key("RSA2"))
PRIVATE_BODY = PRIVATE_PEM.splitlines()[5]  # a line from the middle of the key


@pytest.fixture
def merchant(make_merchant: Callable[..., Merchant]) -> Merchant:
    return make_merchant(private_key=PRIVATE_PEM)


def raw_columns(merchant: Merchant) -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT md5_key, private_key FROM django_alipay_merchant WHERE id = %s", [merchant.pk])
        md5_column, private_column = cursor.fetchone()
    return md5_column, private_column


def test_the_columns_hold_only_fernet_tokens(merchant: Merchant, settings: Any) -> None:
    md5_column, private_column = raw_columns(merchant)
    assert TEST_MD5_KEY not in md5_column
    assert PRIVATE_BODY not in private_column
    fernet = Fernet(settings.ALIPAY["FERNET_KEYS"][0])
    assert fernet.decrypt(md5_column.encode()).decode() == TEST_MD5_KEY
    assert fernet.decrypt(private_column.encode()).decode() == PRIVATE_PEM


def test_loaded_secrets_reveal_their_value(merchant: Merchant) -> None:
    fresh = Merchant.objects.get(pk=merchant.pk)
    assert isinstance(fresh.md5_key, Secret)
    assert fresh.md5_key.reveal() == TEST_MD5_KEY
    assert fresh.signing_key() == TEST_MD5_KEY


def test_dumpdata_contains_tokens_only_and_loads_back(merchant: Merchant, tmp_path: Any) -> None:
    out = io.StringIO()
    call_command("dumpdata", "django_alipay.merchant", stdout=out)
    dump = out.getvalue()
    assert TEST_MD5_KEY not in dump
    assert PRIVATE_BODY not in dump
    Merchant.objects.all().delete()
    fixture = tmp_path / "merchants.json"
    fixture.write_text(json.dumps(json.loads(dump)))
    call_command("loaddata", str(fixture), verbosity=0)
    assert Merchant.objects.get(pk=merchant.pk).md5_key.reveal() == TEST_MD5_KEY


def test_repr_str_format_and_pickle_never_show_a_secret(merchant: Merchant) -> None:
    fresh = Merchant.objects.get(pk=merchant.pk)
    fresh.md5_key.reveal()  # even once decrypted
    for text in (repr(fresh), str(fresh), repr(fresh.md5_key), str(fresh.md5_key), f"{fresh.md5_key}",
                 f"{fresh.md5_key} {fresh.private_key!r}", repr(vars(fresh))):  # fmt: skip
        assert TEST_MD5_KEY not in text
        assert PRIVATE_BODY not in text
    pickled = pickle.dumps(fresh)
    assert TEST_MD5_KEY.encode() not in pickled
    assert pickle.loads(pickled).md5_key.reveal() == TEST_MD5_KEY  # noqa: S301 - our own bytes


def test_masked_display_and_fingerprints(merchant: Merchant) -> None:
    assert merchant.masked("md5_key") == "••••" + TEST_MD5_KEY[-4:]
    assert merchant.fingerprint("private_key") == keys.fingerprint(PRIVATE_PEM)
    assert merchant.masked("private_key") == "••••" + merchant.private_key.fingerprint[-4:]
    assert merchant.masked("alipay_public_key") == ""
    assert merchant.fingerprint("md5_key").startswith("SHA256:")
    assert TEST_MD5_KEY not in merchant.fingerprint("md5_key")


def test_lookups_on_secrets_are_refused(merchant: Merchant) -> None:
    assert Merchant.objects.filter(md5_key__isnull=False).count() == 1
    with pytest.raises(FieldError):
        Merchant.objects.filter(md5_key=TEST_MD5_KEY).count()


def test_rotation_re_encrypts_under_the_new_key(merchant: Merchant, settings: Any) -> None:
    old_key = settings.ALIPAY["FERNET_KEYS"][0]
    new_key = Fernet.generate_key().decode()
    before = raw_columns(merchant)
    settings.ALIPAY = {**settings.ALIPAY, "FERNET_KEYS": [new_key, old_key]}
    assert Merchant.objects.rotate_secrets() == 1
    after = raw_columns(merchant)
    assert after != before
    settings.ALIPAY = {**settings.ALIPAY, "FERNET_KEYS": [new_key]}
    fresh = Merchant.objects.get(pk=merchant.pk)
    assert (fresh.md5_key.reveal(), fresh.private_key.reveal()) == (TEST_MD5_KEY, PRIVATE_PEM)


def test_a_secret_the_keys_cannot_decrypt_fails_only_where_it_is_used(
    merchant: Merchant, settings: Any
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "FERNET_KEYS": [Fernet.generate_key().decode()]}
    fresh = Merchant.objects.get(pk=merchant.pk)  # still loads
    assert "cannot be decrypted" in fresh.masked("md5_key")
    with pytest.raises(AlipayConfigurationError) as caught:
        fresh.signing_key()
    assert TEST_MD5_KEY not in str(caught.value)


def test_an_empty_form_value_keeps_the_stored_secret(merchant: Merchant) -> None:
    field = Merchant._meta.get_field("md5_key")
    field.save_form_data(merchant, "")
    assert merchant.md5_key is not None
    assert merchant.md5_key.reveal() == TEST_MD5_KEY


@pytest.mark.django_db(transaction=True)
def test_secrets_never_reach_the_logs(make_merchant: Callable[..., Merchant], caplog: Any) -> None:
    gateway = FakeGateway()
    try:
        merchant = make_merchant(gateway_url=gateway.url)
        trade = Trade.objects.create(
            merchant=merchant, out_trade_no="LOG-1", amount=Decimal("10.00"), currency="USD", subject="x",
            status="TRADE_FINISHED",
        )  # fmt: skip
        with caplog.at_level(logging.DEBUG):
            refunds.request_refund(trade, "1.00")
            Merchant.objects.filter(pk=merchant.pk).update(md5_key=None)
            try:
                Merchant.objects.get(pk=merchant.pk).signing_key()
            except AlipayConfigurationError:
                logging.getLogger("test").exception("configuration")
    finally:
        gateway.close()
    assert caplog.records, "the flow should have logged something at DEBUG"
    assert TEST_MD5_KEY not in caplog.text
