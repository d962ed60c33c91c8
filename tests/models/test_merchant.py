"""Merchant: gateway URLs, notify tokens, key material, and the alipay_generate_keys command."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from django.core.management import CommandError, call_command

from django_alipay.exceptions import AlipayConfigurationError
from django_alipay.models import Merchant
from django_alipay.models.merchant import split_public_keys
from django_alipay.protocol import dsa, keys

pytestmark = pytest.mark.django_db


def test_each_merchant_gets_its_own_url_safe_notify_token(make_merchant: Callable[..., Merchant]) -> None:
    first, second = make_merchant(), make_merchant()
    assert first.notify_token != second.notify_token
    assert len(first.notify_token) >= 40
    assert all(c.isalnum() or c in "-_" for c in first.notify_token)
    old = first.notify_token
    assert first.regenerate_notify_token() != old


def test_gateway_urls_follow_the_environment(make_merchant: Callable[..., Merchant]) -> None:
    production = make_merchant(environment="production", gateway_url="")
    assert production.resolved_gateway_url() == "https://intlmapi.alipay.com/gateway.do"
    assert production.resolved_gateway_url(instore=True) == "https://globalmapi.alipay.com/gateway.do"
    sandbox = make_merchant(environment="sandbox", gateway_url="")
    assert sandbox.resolved_gateway_url(instore=True) == "https://mapi.alipaydev.com/gateway.do"
    emulator = make_merchant(environment="emulator", gateway_url="")
    with pytest.raises(AlipayConfigurationError):
        emulator.resolved_gateway_url()


def test_alipay_public_keys_may_be_several_during_a_rotation() -> None:
    one = keys.public_key_pem(keys.generate_private_key("RSA2"))
    two = keys.public_key_pem(keys.generate_private_key("RSA2"))
    assert split_public_keys(one + "\n" + two) == [one.strip(), two.strip()]
    assert split_public_keys("AAAA\n\nBBBB\n") == ["AAAA", "BBBB"]


def test_the_default_merchant_setting(make_merchant: Callable[..., Merchant], settings: object) -> None:
    only = make_merchant(name="Only")
    assert Merchant.objects.get_default() == only
    make_merchant(name="Second")
    with pytest.raises(AlipayConfigurationError):
        Merchant.objects.get_default()
    settings.ALIPAY = {**settings.ALIPAY, "DEFAULT_MERCHANT": "Second"}  # type: ignore[attr-defined]
    assert Merchant.objects.get_default().name == "Second"


def test_generate_keys_stores_the_private_key_encrypted_and_prints_the_public_key(
    make_merchant: Callable[..., Merchant],
) -> None:
    merchant = make_merchant(name="Keyed", environment="production")
    out = io.StringIO()
    call_command("alipay_generate_keys", "Keyed", stdout=out)
    text = out.getvalue()
    fresh = Merchant.objects.get(pk=merchant.pk)
    private = fresh.private_key.reveal()
    one_line = keys.public_key_one_line(private)
    assert one_line in text.splitlines()
    assert fresh.public_key == one_line
    assert keys.load_private_key(private).key_size == 2048
    assert "BEGIN" not in text  # the private key is never printed
    assert "Next steps" in text
    with pytest.raises(CommandError, match="already has a private key"):
        call_command("alipay_generate_keys", "Keyed", stdout=io.StringIO())
    call_command("alipay_generate_keys", "Keyed", "--sign-type", "DSA", "--force", stdout=io.StringIO())
    regenerated = keys.load_private_key(Merchant.objects.get(pk=merchant.pk).private_key.reveal())
    assert isinstance(regenerated, dsa.DSAPrivateKey)


def test_generate_keys_names_an_unknown_merchant(db: None) -> None:
    with pytest.raises(CommandError, match="No merchants match"):
        call_command("alipay_generate_keys", "nobody", stdout=io.StringIO())
