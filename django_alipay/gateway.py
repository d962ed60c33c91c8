"""The protocol client for a merchant: the one place where Django settings and keys meet the gateway.

:func:`client` is the one way the library gets a client: one per merchant and service family, kept alive
for the whole process and rebuilt when the merchant's keys or gateway, or the timeout settings, change
(and one more while a caller passes a clock of its own, e.g. a test's fixed clock).
:func:`client_for` builds a new, unshared client (its caller closes it); :class:`ClientPool` and
:func:`shared_client` are older names kept working.
"""

from __future__ import annotations

import hashlib
import threading

from django_alipay.conf import app_settings
from django_alipay.enums import Environment
from django_alipay.fields import EncryptedTextField, Secret
from django_alipay.models import Merchant
from django_alipay.protocol.client import PRODUCTION_URLS, GatewayClient
from django_alipay.protocol.clock import Clock, SystemClock
from django_alipay.protocol.transport import Transport

__all__ = ["ClientPool", "check_configuration", "client", "client_for", "shared_client", "use_transport"]

#: What every client built from now on sends through instead of HTTP; None: HTTP. See :func:`use_transport`.
_transport: Transport | None = None
#: Counts the calls of :func:`use_transport`: part of a kept client's fingerprint (an ``id()`` can be reused).
_transport_generation = 0


def use_transport(transport: Transport | None) -> Transport | None:
    """Send the gateway calls of every client built from now on through ``transport`` (None: over HTTP
    again), and return the one it replaces.

    For tests that drive the domain without a gateway: ``django_alipay.testing.mock_gateway`` wraps it with a
    ``MockTransport``. The kept clients of :func:`client` follow on their next use (the transport is part of
    what they are built from); a client already handed out keeps the transport it was built with.
    """
    global _transport, _transport_generation
    previous, _transport = _transport, transport
    _transport_generation += 1
    return previous


def client_for(merchant: Merchant, *, instore: bool = False, clock: Clock | None = None) -> GatewayClient:
    """A GatewayClient signing as ``merchant``, for its online (default) or in-store (``instore``) services.

    Timeouts come from ``ALIPAY["HTTP_CONNECT_TIMEOUT"]``, ``["HTTP_READ_TIMEOUT"]`` and
    ``["HTTP_TOTAL_TIMEOUT"]``. Production in-store calls fail over from globalmapi to intlmapi unless the
    merchant names its own URL. ``clock`` is the client's idea of now (default: the system clock), e.g. for
    the file services' "before today" rule. Raises AlipayConfigurationError when the merchant lacks a key it
    needs.

    Each call builds a new client that keeps its own connections: close it (or use it in a ``with`` block).
    Library code uses :func:`client` instead. The client sends through the transport :func:`use_transport`
    set, if any.
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
        transport=_transport,
    )


class ClientPool:
    """Gateway clients of one run, one per merchant and service family, closed together (an older way).

    Each client keeps its HTTP connections open until ``close()``, or leaving a ``with`` block, releases
    them. A pool belongs to one run: credentials changed meanwhile are picked up by the next pool. Kept for
    code written against it; the library itself uses :func:`client`, whose clients live as long as the
    process and follow changed credentials at once.
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


# (merchant pk, in store, own clock?) -> (fingerprint, client)
_shared: dict[tuple[int, bool, bool], tuple[str, GatewayClient]] = {}
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
        "" if _transport is None else f"transport {_transport_generation}",
    ]
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def client(merchant: Merchant, *, instore: bool = False, clock: Clock | None = None) -> GatewayClient:
    """The gateway client for ``merchant``'s online (default) or in-store (``instore``) services.

    The one way library code gets a client. One per merchant and service family for the whole process,
    shared by requests and threads, so its connections stay open and its keys are parsed once. Rebuilt as
    soon as the merchant's keys, sign type, charset, gateway or notify_verify settings, or the timeout
    settings, differ from the ones it was built with; the client it replaces is closed. Calls on it are
    thread-safe (each call has its own deadline). Do not close it. Raises AlipayConfigurationError when the
    merchant lacks a key it needs.

    ``clock`` is the client's idea of now (the file services' "before today" rule, the default
    ``timestamp``): None or a ``SystemClock`` is the system clock, the client every call shares. A client on
    another clock (a test's fixed domain clock, passed as ``clock.get_clock()``) uses that clock, and is kept
    beside the system one: at most one per merchant and service family, replaced when the clock differs.
    """
    own_clock = clock is not None and not isinstance(clock, SystemClock)
    key = (merchant.pk, instore, own_clock)
    fingerprint = _fingerprint(merchant, instore)
    if own_clock:
        fingerprint += f":{id(clock)}"
    with _shared_lock:
        entry = _shared.get(key)
        if entry is not None and entry[0] == fingerprint:
            return entry[1]
    built = (
        client_for(merchant, instore=instore, clock=clock)
        if own_clock
        else client_for(merchant, instore=instore)
    )
    with _shared_lock:
        entry = _shared.get(key)
        if entry is not None and entry[0] == fingerprint:
            kept = entry[1]  # another thread built it meanwhile: keep one
        else:
            kept = built
            _shared[key] = (fingerprint, built)
    old = None if entry is None or entry[1] is kept else entry[1]
    if kept is not built:
        built.close()
    if old is not None:
        # A call under way on the old client finishes; its connection is closed when released.
        old.close()
    return kept


def check_configuration(merchant: Merchant, *, instore: bool = False) -> None:
    """Raise AlipayConfigurationError unless a client can be made for ``merchant`` (keys present and
    readable, gateway URL set), without calling the gateway.

    Made by getting :func:`client`: the client it makes is the one the next call uses, not a throwaway.
    """
    client(merchant, instore=instore)


def shared_client(merchant: Merchant, *, instore: bool = False) -> GatewayClient:
    """Older name of :func:`client`."""
    return client(merchant, instore=instore)
