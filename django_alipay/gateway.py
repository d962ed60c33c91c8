"""Build the protocol client for a merchant: the one place where Django settings and keys meet the gateway."""

from __future__ import annotations

from django_alipay.conf import app_settings
from django_alipay.enums import Environment
from django_alipay.models import Merchant
from django_alipay.protocol.client import PRODUCTION_URLS, GatewayClient

__all__ = ["ClientPool", "client_for"]


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


class ClientPool:
    """Gateway clients reused across many calls in one run: one per merchant and service family.

    Each client keeps its HTTP connections open, so a run of many queries (reconciliation, a sync command)
    neither rebuilds the keys nor reconnects per call. ``close()``, or leaving a ``with`` block, releases
    them.
    A pool belongs to one run: credentials changed meanwhile are picked up by the next pool.
    """

    def __init__(self) -> None:
        self._clients: dict[tuple[int, bool], GatewayClient] = {}

    def client(self, merchant: Merchant, *, instore: bool = False) -> GatewayClient:
        """The pool's client for ``merchant`` (built by :func:`client_for` on first use)."""
        key = (merchant.pk, instore)
        if key not in self._clients:
            self._clients[key] = client_for(merchant, instore=instore)
        return self._clients[key]

    def close(self) -> None:
        """Close every client's connections and forget them."""
        clients, self._clients = self._clients, {}
        for client in clients.values():
            client.close()

    def __enter__(self) -> ClientPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
