"""Build the protocol client for a merchant: the one place where Django settings and keys meet the gateway."""

from __future__ import annotations

import hashlib
import threading

from django_alipay.conf import app_settings
from django_alipay.enums import Environment
from django_alipay.fields import EncryptedTextField, Secret
from django_alipay.models import Merchant
from django_alipay.protocol.client import PRODUCTION_URLS, GatewayClient
from django_alipay.protocol.clock import Clock

__all__ = ["ClientPool", "client_for", "shared_client"]


def client_for(merchant: Merchant, *, instore: bool = False, clock: Clock | None = None) -> GatewayClient:
    """A GatewayClient signing as ``merchant``, for its online (default) or in-store (``instore``) services.

    Timeouts come from ``ALIPAY["HTTP_CONNECT_TIMEOUT"]``, ``["HTTP_READ_TIMEOUT"]`` and
    ``["HTTP_TOTAL_TIMEOUT"]``. Production in-store calls fail over from globalmapi to intlmapi unless the
    merchant names its own URL. ``clock`` is the client's idea of now (default: the system clock), e.g. for
    the file services' "before today" rule. Raises AlipayConfigurationError when the merchant lacks a key it
    needs.
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
        timeout=(app_settings.HTTP_CONNECT_TIMEOUT, app_settings.HTTP_READ_TIMEOUT),
        deadline=app_settings.HTTP_TOTAL_TIMEOUT,
        clock=clock,
        notify_verify_url=merchant.resolved_notify_verify_url(),
        notify_verify_method="POST" if merchant.notify_verify_method == "POST" else "GET",
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


_shared: dict[tuple[int, bool], tuple[str, GatewayClient]] = {}
_shared_lock = threading.Lock()


_SECRET_FIELDS = [field for field in Merchant._meta.concrete_fields if isinstance(field, EncryptedTextField)]


def _token(secret: Secret | str | None) -> str:
    if isinstance(secret, Secret):
        return secret.token()
    return "" if secret is None else str(secret)  # assigned in code, not saved yet


def _fingerprint(merchant: Merchant, instore: bool) -> str:
    """A digest of everything :func:`client_for` builds a client from (the keys by their stored tokens)."""
    parts = [
        merchant.partner,
        merchant.sign_type,
        merchant.charset,
        merchant.environment,
        merchant.resolved_gateway_url(instore=instore),
        merchant.instore_gateway_url or "",
        merchant.gateway_url or "",
        merchant.notify_verify_url or "",
        merchant.notify_verify_method,
        # The stored Fernet tokens stand for the keys: no decryption on this hot path.
        *(_token(getattr(merchant, field.attname)) for field in _SECRET_FIELDS),
        str(app_settings.HTTP_CONNECT_TIMEOUT),
        str(app_settings.HTTP_READ_TIMEOUT),
        str(app_settings.HTTP_TOTAL_TIMEOUT),
    ]
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def shared_client(merchant: Merchant, *, instore: bool = False) -> GatewayClient:
    """A process-wide client for ``merchant``, shared by requests and threads, so its connections stay open.

    For the hot path of notifications (every one asks notify_verify): no keys re-parsed, no new TCP or TLS
    connection per call. Rebuilt as soon as the merchant's keys, sign type, gateway or the timeout settings
    differ from the ones it was built with. Calls on it are thread-safe (each call has its own deadline).
    """
    key = (merchant.pk, instore)
    fingerprint = _fingerprint(merchant, instore)
    with _shared_lock:
        entry = _shared.get(key)
        if entry is not None and entry[0] == fingerprint:
            return entry[1]
    client = client_for(merchant, instore=instore)
    with _shared_lock:
        # A replaced client is left to the garbage collector: another thread may still be using it.
        _shared[key] = (fingerprint, client)
    return client
