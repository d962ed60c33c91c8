"""Build the protocol client for a merchant: the one place where Django settings and keys meet the gateway."""

from __future__ import annotations

from django_alipay.conf import app_settings
from django_alipay.enums import Environment
from django_alipay.models import Merchant
from django_alipay.protocol.client import PRODUCTION_URLS, GatewayClient

__all__ = ["client_for"]


def client_for(merchant: Merchant, *, instore: bool = False) -> GatewayClient:
    """A GatewayClient signing as ``merchant``, for its online (default) or in-store (``instore``) services.

    Timeouts come from ``ALIPAY["HTTP_CONNECT_TIMEOUT"]``, ``["HTTP_READ_TIMEOUT"]`` and
    ``["HTTP_TOTAL_TIMEOUT"]``. Production in-store calls fail over from globalmapi to intlmapi unless the
    merchant names its own URL. Raises AlipayConfigurationError when the merchant lacks a key it needs.
    """
    if (
        instore
        and merchant.environment == Environment.PRODUCTION
        and not (merchant.instore_gateway_url or merchant.gateway_url)
    ):
        urls: str | tuple[str, ...] = PRODUCTION_URLS
    else:
        urls = merchant.resolved_gateway_url(instore=instore)
    return GatewayClient(
        partner=merchant.partner,
        sign_type=merchant.sign_type,
        key=merchant.signing_key(),
        alipay_public_key=None if merchant.sign_type == "MD5" else merchant.verification_keys(),
        gateway_url=urls,
        charset=merchant.charset,
        timeout=(float(app_settings.HTTP_CONNECT_TIMEOUT), float(app_settings.HTTP_READ_TIMEOUT)),
        deadline=float(app_settings.HTTP_TOTAL_TIMEOUT),
    )
