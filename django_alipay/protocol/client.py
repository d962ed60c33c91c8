"""GatewayClient: send signed mapi calls over pooled HTTP and turn each outcome into a typed result."""

from __future__ import annotations

import contextlib
import email.utils
import html
import http.client
import logging
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final, Literal, NoReturn
from urllib.parse import urlencode, urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.exceptions

from django_alipay import __version__
from django_alipay.protocol import clock as clock_mod
from django_alipay.protocol import envelope, keys, services, signing
from django_alipay.protocol.codes import ResultCode, lookup_error
from django_alipay.protocol.errors import (
    AlipayBusinessError,
    AlipayError,
    AlipayGatewayError,
    AlipaySystemError,
    GatewayResponseError,
    InvalidParameterError,
    OutcomeUnknownError,
    SignatureError,
    TransportError,
)
from django_alipay.protocol.services import (
    CancelResult,
    FileResult,
    ForexRefundResult,
    OverseasQueryResult,
    PrecreateResult,
    RateRecord,
    ServiceDefinition,
    SettlementRecord,
    SpotPayResult,
    SpotRefundResult,
    SpotReverseResult,
    TradeQueryResult,
    TransactionRecord,
)

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_TIMEOUT",
    "INTL_URL",
    "NOTIFY_VERIFY_URL",
    "PRODUCTION_URLS",
    "SANDBOX_HOSTS",
    "SANDBOX_URL",
    "USER_AGENT",
    "GatewayClient",
    "PageRequest",
]

logger = logging.getLogger("django_alipay.protocol.client")

#: Production, priority first: globalmapi, then the backup intlmapi (in-store acquire services).
GLOBAL_URL: Final = "https://globalmapi.alipay.com/gateway.do"
INTL_URL: Final = "https://intlmapi.alipay.com/gateway.do"
PRODUCTION_URLS: Final = (GLOBAL_URL, INTL_URL)
SANDBOX_URL: Final = "https://mapi.alipaydev.com/gateway.do"
#: Where every reference sends notify_verify (Alipay's demos, the Ruby, PHP and Python SDKs): GET on mapi.
NOTIFY_VERIFY_URL: Final = "https://mapi.alipay.com/gateway.do"
#: Hosts of Alipay's sandbox, which signs with MD5 only.
SANDBOX_HOSTS: Final = frozenset({"mapi.alipaydev.com"})

USER_AGENT: Final = f"django-alipay-global/{__version__} (+python-requests)"
#: (connect, read) seconds; the read timeout bounds each socket read, the deadline the whole call.
DEFAULT_TIMEOUT: Final = (5.0, 20.0)
DEFAULT_DEADLINE: Final = 30.0
DEFAULT_MAX_FILE_BYTES: Final = 64 * 1024 * 1024
#: A gateway clock further than this from ours is logged as a configuration alarm.
DEFAULT_CLOCK_SKEW_ALARM: Final = timedelta(minutes=5)
#: The gateway lets a request ``timestamp`` expire after 30 minutes (cancel, precreate).
TIMESTAMP_VALIDITY: Final = timedelta(minutes=30)

# The online services are documented on intlmapi only; globalmapi is the in-store priority host.
_ONLINE_SERVICES: Final = frozenset(
    {
        services.CREATE_FOREX_TRADE.name,
        services.CREATE_FOREX_TRADE_WAP.name,
        services.SINGLE_TRADE_QUERY.name,
        services.FOREX_REFUND.name,
        services.NOTIFY_VERIFY.name,
        services.FOREX_RATE_FILE.name,
        services.FOREX_COMPARE_FILE.name,
        services.FOREX_LIQUIDATION_FILE.name,
    }
)
_CHUNK: Final = 16384
_LOGGED_BODY: Final = 2048
_REDACTED: Final = "[redacted]"
_SIGN_IN_XML = re.compile(rb"(<sign>)[^<]*(</sign>)")
_SIGN_PARAM_IN_XML = re.compile(rb"(<param\s+name=[\"']sign[\"']\s*>)[^<]*(</param>)")
_SIGN_IN_QUERY = re.compile(r"(?<![A-Za-z0-9_])(sign=)[^&\s]*")
_CHARSET_PARAM = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_.-]+)", re.IGNORECASE)


# --- secrets and redaction ------------------------------------------------------------------------------


class _Secret:
    """Holds key material so that no repr, vars() dump or pickle of the client ever shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = value

    def get(self) -> Any:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("key material cannot be pickled")


def _redact_params(params: Mapping[str, str], secrets: Sequence[str]) -> dict[str, str]:
    shown: dict[str, str] = {}
    for name, value in params.items():
        if name == "sign" or any(s and s in value for s in secrets):
            shown[name] = _REDACTED
        else:
            shown[name] = value
    return shown


def _redact_body(body: bytes, secrets: Sequence[str]) -> str:
    excerpt = body[:_LOGGED_BODY]
    excerpt = _SIGN_IN_XML.sub(rb"\1[redacted]\2", excerpt)
    excerpt = _SIGN_PARAM_IN_XML.sub(rb"\1[redacted]\2", excerpt)
    text = excerpt.decode("utf-8", errors="replace")
    text = _SIGN_IN_QUERY.sub(r"\1[redacted]", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    if len(body) > _LOGGED_BODY:
        text += f"... ({len(body)} bytes)"
    return text


# --- the total deadline: a watchdog that closes the sockets of a call when its time is up ---------------


class _Watch:
    """Sockets of one call, shut down by a timer at the call's deadline; also records how far the call got.

    Sockets, not connections, are kept: http.client drops ``conn.sock`` once a ``Connection: close`` response
    has started, while the response goes on reading from the same socket.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.fired = False
        self.instrumented = False
        self.connected = False

    def attach(self, conn: Any) -> None:
        sock = getattr(conn, "sock", None)
        with self._lock:
            self.instrumented = True
            if not isinstance(sock, socket.socket) or any(s is sock for s in self._sockets):
                return
            self._sockets.append(sock)
            fired = self.fired
        if fired:
            _shutdown(sock)

    def fire(self) -> None:
        with self._lock:
            self.fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


_state = threading.local()


def _current_watch() -> _Watch | None:
    watch = getattr(_state, "watch", None)
    return watch if isinstance(watch, _Watch) else None


def _watched_connect(conn: Any, connect: Callable[[], None]) -> None:
    watch = _current_watch()
    if watch is not None:
        watch.attach(conn)
    connect()
    if watch is not None:
        watch.connected = True
        watch.attach(conn)


def _watched_request(conn: Any, request: Callable[[], None]) -> None:
    watch = _current_watch()
    if watch is not None:
        watch.attach(conn)
        if getattr(conn, "sock", None) is not None:
            watch.connected = True
    request()
    if watch is not None:
        watch.connected = True


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    def connect(self) -> None:
        _watched_connect(self, super().connect)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watched_request(self, lambda: super(_WatchedHTTPConnection, self).request(*args, **kwargs))


class _WatchedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def connect(self) -> None:
        _watched_connect(self, super().connect)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watched_request(self, lambda: super(_WatchedHTTPSConnection, self).request(*args, **kwargs))


class _WatchedHTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOL_CLASSES: Final = {"http": _WatchedHTTPConnectionPool, "https": _WatchedHTTPSConnectionPool}


class _DeadlineAdapter(requests.adapters.HTTPAdapter):
    """An HTTPAdapter whose connections report to the calling thread's watchdog; no urllib3-level retries."""

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOL_CLASSES)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if type(manager) is urllib3.ProxyManager:
            manager.pool_classes_by_scheme = dict(_POOL_CLASSES)
        return manager


# --- page services --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageRequest:
    """A signed page-service request (create_forex_trade / _wap) to send the buyer's browser to.

    ``url`` is the signed GET redirect; ``form_html()`` renders the same parameters as an auto-submitting
    POST form. ``params`` are the signed wire parameters, ``action`` the gateway URL without a query.
    """

    action: str
    params: dict[str, str]
    charset: str
    url: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", self.action + "?" + urlencode(self.params, encoding=self.charset))

    def form_html(
        self, *, nonce: str | None = None, auto_submit: bool = True, submit_label: str = "Continue to Alipay"
    ) -> str:
        """An HTML form POSTing the signed parameters to the gateway, submitted by script unless told not to.

        ``_input_charset`` travels in the action URL, as the gateway asks for POSTs; every value is escaped.
        ``nonce`` is put on the script tag for a Content-Security-Policy.
        """
        action = self.action + "?" + urlencode({"_input_charset": self.charset})
        inputs = "".join(
            f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
            for name, value in self.params.items()
            if name != "_input_charset"
        )
        form = (
            f'<form id="alipay-submit" name="alipaysubmit" action="{html.escape(action)}" method="post" '
            f'accept-charset="{html.escape(self.charset)}">{inputs}'
            f'<button type="submit">{html.escape(submit_label)}</button></form>'
        )
        if auto_submit:
            nonce_attr = f' nonce="{html.escape(nonce)}"' if nonce else ""
            form += f'<script{nonce_attr}>document.getElementById("alipay-submit").submit();</script>'
        return form


# --- the client -----------------------------------------------------------------------------------------


@dataclass
class _Reply:
    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    #: The gateway's clock minus ours, from this response's Date header.
    clock_skew: timedelta | None = None


class GatewayClient:
    """A merchant's connection to the mapi gateway: every service as a method, with typed results and errors.

    ``key`` is the MD5 secret (``sign_type="MD5"``) or the merchant's private key (RSA, RSA2, DSA);
    ``alipay_public_key`` (one key, or a list during a rotation) verifies signed responses for RSA/RSA2/DSA,
    the MD5 secret does for MD5. ``gateway_url`` is one URL or several tried in order when a connection cannot
    be made (PRODUCTION_URLS: globalmapi, then intlmapi). ``timeout`` is (connect, read) seconds or one number
    for both; ``deadline`` bounds a whole call in wall-clock seconds, retries included.

    ``notify_verify_url`` and ``notify_verify_method`` say where and how notify_verify is asked: by default
    GET, on ``https://mapi.alipay.com/gateway.do`` when the gateway is Alipay's production (as every
    reference shows), else on the first gateway URL (the sandbox, the emulator). Alipay's sandbox signs with
    MD5 only: a call to it with another sign type is refused before anything is sent.

    Calls that are safe to repeat (queries, notify_verify, files) are retried up to ``retries`` more times
    with exponential backoff and full jitter; others only when their connection was never established.
    """

    def __init__(
        self,
        *,
        partner: str,
        sign_type: str,
        key: Any,
        alipay_public_key: Any = None,
        gateway_url: str | Sequence[str],
        charset: str = "utf-8",
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
        max_response_bytes: int = envelope.MAX_RESPONSE_BYTES,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        retries: int = 2,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        clock: clock_mod.Clock | None = None,
        session: requests.Session | None = None,
        proxies: Mapping[str, str] | None = None,
        verify: bool | str = True,
        http_method: Literal["POST", "GET"] = "POST",
        page_gateway_url: str | None = None,
        clock_skew_alarm: timedelta = DEFAULT_CLOCK_SKEW_ALARM,
        notify_verify_url: str | None = None,
        notify_verify_method: Literal["GET", "POST"] = "GET",
    ) -> None:
        if not isinstance(partner, str) or not re.fullmatch(r"[0-9]{16}", partner):
            raise InvalidParameterError("partner must be the 16-digit partner ID", parameter="partner")
        self.partner = partner
        self.sign_type = signing.normalize_sign_type(sign_type)
        self.charset = signing.normalize_charset(charset)
        if self.sign_type == "MD5":
            if not isinstance(key, str) or not key:
                raise InvalidParameterError(
                    "sign_type MD5 needs the MD5 secret (a str) as key", parameter="key"
                )
            # A throwaway signature checks the secret's shape now rather than at the first payment.
            signing.sign({"partner": partner}, sign_type="MD5", key=key, charset=self.charset)
            self._key = _Secret(key)
            self._verify_key = _Secret(key)
            self._scrub = _Secret((key,))
        else:
            self._key = _Secret(keys.load_private_key(key))
            self._verify_key = _Secret(_load_public_keys(alipay_public_key))
            if alipay_public_key is None:
                logger.warning(
                    "GatewayClient for partner %s has no alipay_public_key: %s responses go unverified",
                    partner,
                    self.sign_type,
                )
            self._scrub = _Secret((key,) if isinstance(key, str) else ())
        urls = (gateway_url,) if isinstance(gateway_url, str) else tuple(gateway_url)
        if not urls or not all(isinstance(u, str) and urlsplit(u).scheme in ("http", "https") for u in urls):
            raise InvalidParameterError(
                "gateway_url must be one or more http(s) URLs", parameter="gateway_url"
            )
        self.gateway_urls = urls
        self.page_gateway_url = page_gateway_url or (INTL_URL if INTL_URL in urls else urls[0])
        if isinstance(timeout, int | float):
            self.timeout = (float(timeout), float(timeout))
        else:
            self.timeout = (float(timeout[0]), float(timeout[1]))
        if deadline <= 0 or min(self.timeout) <= 0:
            raise InvalidParameterError("timeouts and the deadline must be positive", parameter="deadline")
        self.deadline = float(deadline)
        self.max_response_bytes = max_response_bytes
        self.max_file_bytes = max_file_bytes
        self.max_attempts = 1 + max(0, int(retries))
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clock = clock
        self.proxies = dict(proxies) if proxies else None
        self.verify_tls = verify
        if http_method not in ("POST", "GET"):
            raise InvalidParameterError("http_method must be POST or GET", parameter="http_method")
        self.http_method = http_method
        if notify_verify_method not in ("POST", "GET"):
            raise InvalidParameterError(
                "notify_verify_method must be GET or POST", parameter="notify_verify_method"
            )
        self.notify_verify_method = notify_verify_method
        if notify_verify_url is not None and urlsplit(notify_verify_url).scheme not in ("http", "https"):
            raise InvalidParameterError(
                "notify_verify_url must be an http(s) URL", parameter="notify_verify_url"
            )
        production = any(url in PRODUCTION_URLS for url in urls)
        self.notify_verify_url = notify_verify_url or (NOTIFY_VERIFY_URL if production else urls[0])
        self.clock_skew_alarm = clock_skew_alarm
        #: Gateway clock minus ours, from the last response's Date header (None until one was seen).
        self.last_clock_skew: timedelta | None = None
        self._owns_session = session is None
        self.session = session if session is not None else self._new_session()

    @staticmethod
    def _new_session() -> requests.Session:
        session = requests.Session()
        adapter = _DeadlineAdapter(max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        # Never take proxies or CA bundles from the environment silently: they are passed explicitly.
        session.trust_env = False
        return session

    def __repr__(self) -> str:
        return f"GatewayClient(partner={self.partner!r}, sign_type={self.sign_type!r})"

    def close(self) -> None:
        """Close the pooled connections (only those of a session the client created)."""
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- services ------------------------------------------------------------------------------------------

    def create_forex_trade(self, **params: Any) -> PageRequest:
        """Sign a website payment (subject, out_trade_no, currency, total_fee or rmb_fee, notify_url ...)."""
        return self._page(services.CREATE_FOREX_TRADE, params)

    def create_forex_trade_wap(self, **params: Any) -> PageRequest:
        """Sign a mobile-browser payment; same parameters as create_forex_trade plus the WAP ones."""
        return self._page(services.CREATE_FOREX_TRADE_WAP, params)

    def single_trade_query(self, **params: Any) -> TradeQueryResult:
        """Query an online trade by ``out_trade_no`` and/or ``trade_no`` (retried when safe)."""
        return self._xml(services.SINGLE_TRADE_QUERY, params, TradeQueryResult)

    def forex_refund(self, **params: Any) -> ForexRefundResult:
        """Refund an online payment; never re-sent automatically once it may have reached the gateway.

        Parameters: out_return_no, out_trade_no, return_amount or return_rmb_amount (Decimal), currency,
        gmt_return (aware datetime, default now), reason, is_sync, notify_url ...
        """
        return self._xml(services.FOREX_REFUND, params, ForexRefundResult)

    def spot_pay(self, **params: Any) -> SpotPayResult:
        """Charge a buyer's code: partner_trans_id, trans_name, currency, trans_amount, buyer_identity_code.

        Never re-sent automatically once it may have reached the gateway.
        """
        return self._xml(services.SPOT_PAY, params, SpotPayResult)

    def precreate(self, **params: Any) -> PrecreateResult:
        """Create a QR code for the buyer to scan: out_trade_no, subject, total_fee, currency ..."""
        return self._xml(services.PRECREATE, params, PrecreateResult)

    def overseas_query(self, **params: Any) -> OverseasQueryResult:
        """Query an in-store transaction by ``partner_trans_id`` and/or ``alipay_trans_id``."""
        return self._xml(services.OVERSEAS_QUERY, params, OverseasQueryResult)

    def spot_refund(self, **params: Any) -> SpotRefundResult:
        """Refund an in-store payment: partner_trans_id, partner_refund_id, refund_amount, currency ..."""
        return self._xml(services.SPOT_REFUND, params, SpotRefundResult)

    def spot_reverse(self, **params: Any) -> SpotReverseResult:
        """Reverse today's (Beijing time) in-store payment ``partner_trans_id`` in full."""
        return self._xml(services.SPOT_REVERSE, params, SpotReverseResult)

    def cancel(self, **params: Any) -> CancelResult:
        """Cancel in-store trade ``out_trade_no``: closed if unpaid, refunded if paid today (Beijing time)."""
        return self._xml(services.CANCEL, params, CancelResult)

    def notify_verify(self, notify_id: str, *, deadline: float | None = None) -> bool:
        """Ask the gateway whether ``notify_id`` belongs to a genuine notification.

        True only for a body that is exactly ``true`` after stripping whitespace; ``false``, ``invalid``, HTML
        or an empty body are False. A timeout, an HTTP 5xx or a broken connection raise OutcomeUnknownError /
        TransportError so the caller can answer 503 and let Alipay retry; an XML refusal (ILLEGAL_PARTNER ...)
        raises its mapped error. Sent unsigned, as Alipay's own demos send it, to ``notify_verify_url`` with
        ``notify_verify_method``.
        """
        definition = services.NOTIFY_VERIFY
        self._refuse_sandbox_sign_type((self.notify_verify_url,))
        wire = services.build_request(
            definition,
            {"notify_id": notify_id},
            partner=self.partner,
            charset=self.charset,
            clock=self._clock,
        )
        return self._execute(definition, wire, self._interpret_verify, deadline=deadline)

    def forex_rate_file(self) -> FileResult[RateRecord]:
        """Download the current exchange rates (CNY per unit of each currency)."""
        return self._file(services.FOREX_RATE_FILE, {})

    def forex_compare_file(self, **params: Any) -> FileResult[TransactionRecord]:
        """Download the transactions of ``start_date``..``end_date`` (at most 10 days apart, before today)."""
        return self._file(services.FOREX_COMPARE_FILE, params)

    def forex_liquidation_file(self, **params: Any) -> FileResult[SettlementRecord]:
        """Download the settlements of ``start_date``..``end_date`` (at most 10 days apart, before today)."""
        return self._file(services.FOREX_LIQUIDATION_FILE, params)

    def call(self, service: str, **params: Any) -> Any:
        """Call any service by wire name (``"alipay.acquire.overseas.query"``) with wire-named parameters."""
        definition = services.get_service(service)
        if definition.kind == "page":
            return self._page(definition, params)
        if definition.kind == "verify":
            return self.notify_verify(**params)
        if definition.kind == "file":
            return self._file(definition, params)
        assert definition.result_type is not None
        return self._xml(definition, params, definition.result_type)

    # --- building and signing ------------------------------------------------------------------------------

    def _refuse_sandbox_sign_type(self, urls: Sequence[str]) -> None:
        """Alipay's sandbox signs with MD5 only: refuse, before sending, a call it could only reject."""
        if self.sign_type == "MD5":
            return
        for url in urls:
            if (urlsplit(url).hostname or "").lower() in SANDBOX_HOSTS:
                raise InvalidParameterError(
                    f"Alipay's sandbox ({_host(url)}) supports MD5 signatures only, not {self.sign_type}: "
                    "use MD5 with the sandbox, or another gateway for this sign type",
                    parameter="sign_type",
                )

    def _build(self, definition: ServiceDefinition, params: Mapping[str, Any]) -> dict[str, str]:
        target = (self.page_gateway_url,) if definition.kind == "page" else self._urls_for(definition)
        self._refuse_sandbox_sign_type(target)
        wire = services.build_request(
            definition, params, partner=self.partner, charset=self.charset, clock=self._clock
        )
        wire["sign_type"] = self.sign_type
        wire["sign"] = signing.sign(wire, sign_type=self.sign_type, key=self._key.get(), charset=self.charset)
        return wire

    def _page(self, definition: ServiceDefinition, params: Mapping[str, Any]) -> PageRequest:
        wire = self._build(definition, params)
        return PageRequest(action=self.page_gateway_url, params=wire, charset=self.charset)

    def _xml(self, definition: ServiceDefinition, params: Mapping[str, Any], result_type: type[Any]) -> Any:
        wire = self._build(definition, params)

        def interpret(reply: _Reply) -> Any:
            return self._interpret_xml(definition, wire, reply, result_type)

        return self._execute(definition, wire, interpret)

    def _file(self, definition: ServiceDefinition, params: Mapping[str, Any]) -> Any:
        wire = self._build(definition, params)

        def interpret(reply: _Reply) -> Any:
            return self._interpret_file(definition, wire, reply)

        return self._execute(definition, wire, interpret, max_bytes=self.max_file_bytes)

    # --- sending, with retries and failover ----------------------------------------------------------------

    def _execute(
        self,
        definition: ServiceDefinition,
        wire: dict[str, str],
        interpret: Callable[[_Reply], Any],
        *,
        deadline: float | None = None,
        max_bytes: int | None = None,
    ) -> Any:
        budget = self.deadline if deadline is None else float(deadline)
        ends = time.monotonic() + budget
        attempt = 0
        while True:
            attempt += 1
            try:
                reply = self._exchange(definition, wire, ends, max_bytes or self.max_response_bytes)
                return interpret(reply)
            except AlipayError as exc:
                if not self._retryable(definition, exc) or attempt >= self.max_attempts:
                    raise
                delay = self._rng.uniform(0.0, min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))
                if time.monotonic() + delay >= ends:
                    raise
                logger.info(
                    "retrying %s after %s (attempt %d of %d, in %.2f s)",
                    definition.name,
                    type(exc).__name__,
                    attempt + 1,
                    self.max_attempts,
                    delay,
                )
                self._sleep(delay)

    @staticmethod
    def _retryable(definition: ServiceDefinition, exc: AlipayError) -> bool:
        # A request that never left is safe to send again, whatever it does; one that may have arrived is
        # repeated only when repeating it cannot change anything (queries, notify_verify, files).
        if isinstance(exc, TransportError):
            return True
        return definition.idempotent and isinstance(exc, OutcomeUnknownError | AlipaySystemError)

    def _urls_for(self, definition: ServiceDefinition) -> tuple[str, ...]:
        if definition.kind == "verify":
            return (self.notify_verify_url,)
        if definition.name in _ONLINE_SERVICES and INTL_URL in self.gateway_urls:
            return (INTL_URL, *(u for u in self.gateway_urls if u != INTL_URL))
        return self.gateway_urls

    def _exchange(
        self, definition: ServiceDefinition, wire: dict[str, str], ends: float, max_bytes: int
    ) -> _Reply:
        failures: list[str] = []
        for url in self._urls_for(definition):
            try:
                return self._send_once(url, definition, wire, ends, max_bytes)
            except TransportError as exc:
                failures.append(f"{_host(url)}: {exc.message}")
                logger.warning(
                    "%s: no connection to %s (%s); trying the next URL", definition.name, url, exc.message
                )
        raise TransportError(
            "could not reach the gateway: " + "; ".join(failures),
            service=definition.name,
            out_trade_no=definition.trade_id(wire),
        )

    def _request_parts(self, url: str, wire: dict[str, str]) -> tuple[str, str, bytes | None, dict[str, str]]:
        headers = {
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "identity",
            "Accept": "text/xml, text/plain, */*",
        }
        separator = "&" if urlsplit(url).query else "?"
        method = self.notify_verify_method if wire.get("service") == services.NOTIFY_VERIFY.name else None
        if (method or self.http_method) == "GET":
            return "GET", url + separator + urlencode(wire, encoding=self.charset), None, headers
        # Alipay's gateway documentation asks POST callers to name _input_charset in the URL.
        body_params = {k: v for k, v in wire.items() if k != "_input_charset"}
        target = url + separator + urlencode({"_input_charset": wire["_input_charset"]})
        headers["Content-Type"] = f"application/x-www-form-urlencoded; charset={self.charset}"
        return "POST", target, urlencode(body_params, encoding=self.charset).encode("ascii"), headers

    def _send_once(
        self, url: str, definition: ServiceDefinition, wire: dict[str, str], ends: float, max_bytes: int
    ) -> _Reply:
        context: dict[str, Any] = {"service": definition.name, "out_trade_no": definition.trade_id(wire)}
        remaining = ends - time.monotonic()
        if remaining <= 0:
            raise TransportError("the call's deadline passed before the request was sent", **context)
        method, target, body, headers = self._request_parts(url, wire)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s %s params=%s",
                definition.name,
                method,
                _SIGN_IN_QUERY.sub(r"\1[redacted]", target),
                _redact_params(wire, self._scrub.get()),
            )
        watch = _Watch()
        _state.watch = watch
        timer = threading.Timer(remaining, watch.fire)
        timer.daemon = True
        timer.start()
        try:
            try:
                response = self.session.request(
                    method,
                    target,
                    data=body,
                    headers=headers,
                    timeout=(min(self.timeout[0], remaining), min(self.timeout[1], remaining)),
                    stream=True,
                    allow_redirects=False,
                    proxies=self.proxies,
                    verify=self.verify_tls,
                )
            except (
                requests.RequestException,
                urllib3.exceptions.HTTPError,
                http.client.HTTPException,
                OSError,
            ) as exc:
                raise self._transport_failure(exc, watch, context) from exc
            try:
                reply = self._read(response, url, watch, ends, max_bytes, context)
            finally:
                response.close()
        finally:
            timer.cancel()
            _state.watch = None
        reply.clock_skew = self._note_clock(reply.headers)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s HTTP %d from %s: %s",
                definition.name,
                reply.status,
                url,
                _redact_body(reply.body, self._scrub.get()),
            )
        return reply

    def _transport_failure(self, exc: BaseException, watch: _Watch, context: dict[str, Any]) -> AlipayError:
        """Classify a failure before any answer: never sent (TransportError) or maybe sent (unknown)."""
        # With a session the client did not build there is no watchdog: judge by the exception instead.
        maybe_sent = watch.connected if watch.instrumented else not _is_connect_failure(exc)
        reason = "the call's deadline passed" if watch.fired else _describe(exc)
        if not maybe_sent:
            return TransportError(f"no connection to the gateway: {reason}", **context)
        return OutcomeUnknownError(
            f"the request may have reached the gateway but no answer came back: {reason}", **context
        )

    def _read(
        self,
        response: requests.Response,
        url: str,
        watch: _Watch,
        ends: float,
        max_bytes: int,
        context: dict[str, Any],
    ) -> _Reply:
        status = response.status_code
        if status >= 500:
            raise OutcomeUnknownError(f"the gateway answered HTTP {status}", **context)
        if status != 200:
            raise GatewayResponseError(f"the gateway answered HTTP {status}, not 200", **context)
        announced = response.headers.get("Content-Length", "")
        if announced.isdigit() and int(announced) > max_bytes:
            raise GatewayResponseError(
                f"the response announces {announced} bytes, over the {max_bytes}-byte limit; not read",
                **context,
            )
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(chunk_size=_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise GatewayResponseError(
                        f"the response is over the {max_bytes}-byte limit; reading stopped before parsing",
                        raw_response=b"".join(chunks)[:4096],
                        **context,
                    )
                chunks.append(chunk)
                if time.monotonic() > ends:
                    break
        except (
            requests.RequestException,
            urllib3.exceptions.HTTPError,
            http.client.HTTPException,
            OSError,
        ) as exc:
            reason = "the call's deadline passed" if watch.fired else _describe(exc)
            raise OutcomeUnknownError(f"the response broke off: {reason}", **context) from exc
        if watch.fired or time.monotonic() > ends:
            raise OutcomeUnknownError(
                f"the call's deadline passed while the response was still arriving ({size} bytes read)",
                **context,
            )
        return _Reply(url=url, status=status, headers=dict(response.headers), body=b"".join(chunks))

    def _note_clock(self, headers: Mapping[str, str]) -> timedelta | None:
        date_header = headers.get("Date")
        if not date_header:
            return None
        try:
            theirs = email.utils.parsedate_to_datetime(date_header)
        except (TypeError, ValueError, IndexError):
            return None
        if theirs.tzinfo is None:
            return None
        skew = theirs - clock_mod.now(self._clock)
        self.last_clock_skew = skew
        if abs(skew) > self.clock_skew_alarm:
            logger.warning(
                "clock skew: the gateway's clock differs from ours by %+.0f s; requests carrying a timestamp "
                "expire after %d minutes, so check this server's clock",
                skew.total_seconds(),
                TIMESTAMP_VALIDITY.total_seconds() // 60,
            )
        return skew

    # --- interpreting answers ------------------------------------------------------------------------------

    def _context(self, definition: ServiceDefinition, wire: Mapping[str, str], raw: bytes) -> dict[str, Any]:
        return {"service": definition.name, "out_trade_no": definition.trade_id(wire), "raw_response": raw}

    def _interpret_xml(
        self, definition: ServiceDefinition, wire: dict[str, str], reply: _Reply, result_type: type[Any]
    ) -> Any:
        context = self._context(definition, wire, reply.body)
        verify_key = self._verify_key.get() if definition.signs_response else None
        try:
            parsed = envelope.parse_response(
                reply.body,
                sign_type=self.sign_type if verify_key is not None else None,
                key=verify_key,
                max_bytes=self.max_response_bytes,
                request_charset=self.charset,
            )
        except SignatureError as exc:
            raise OutcomeUnknownError(
                f"the response signature cannot be trusted ({exc.message}); query before acting", **context
            ) from exc
        except GatewayResponseError as exc:
            raise GatewayResponseError(exc.message, **context) from exc
        note = _skew_note(definition, reply.clock_skew)
        skew = reply.clock_skew if note else None
        if not parsed.is_success:
            raise self._refusal(
                definition, parsed.error, context, gateway_level=True, note=note, clock_skew=skew
            )
        if parsed.response_element is None:
            if result_type is ForexRefundResult:
                return ForexRefundResult(
                    service=definition.name, fields={}, raw=reply.body, request=parsed.request
                )
            raise GatewayResponseError("the response has is_success=T but no <response> block", **context)
        if verify_key is not None and parsed.sign_verified is not True:
            raise OutcomeUnknownError(
                "the response is not signed; it cannot be trusted, query before acting", **context
            )
        result_code = parsed.fields.get("result_code")
        if "result_code" in result_type.FIELD_TYPES:
            self._check_result_code(definition, parsed.fields, result_code, context, note, skew)
        return result_type(
            service=definition.name,
            fields=parsed.fields,
            raw=reply.body,
            request=parsed.request,
            sign_verified=parsed.sign_verified,
            sign_charset=parsed.sign_charset,
        )

    def _check_result_code(
        self,
        definition: ServiceDefinition,
        fields: Mapping[str, str],
        result_code: str | None,
        context: dict[str, Any],
        note: str = "",
        clock_skew: timedelta | None = None,
    ) -> None:
        code = fields.get("detail_error_code") or fields.get("error")
        if result_code == ResultCode.SUCCESS:
            return
        if result_code in (ResultCode.FAIL, ResultCode.FAILED):
            retry_flag = fields.get("retry_flag")
            raise self._refusal(
                definition,
                code,
                context,
                gateway_level=False,
                retryable=True if retry_flag == "Y" else None,
                note=note,
                clock_skew=clock_skew,
            )
        entry = lookup_error(code) if code else None
        if result_code in (ResultCode.UNKNOW, ResultCode.UNKNOWN):
            message = f"the gateway reports result_code={result_code}: the outcome is not known yet; query it"
        elif result_code is None:
            raise GatewayResponseError("the response has no result_code", **context)
        else:
            message = (
                f"the gateway reports an unrecognised result_code {result_code[:40]!r}; query before acting"
            )
        raise OutcomeUnknownError(
            message, code=code or None, description=entry.description if entry else None, **context
        )

    def _refusal(
        self,
        definition: ServiceDefinition,
        code: str | None,
        context: dict[str, Any],
        *,
        gateway_level: bool,
        retryable: bool | None = None,
        note: str = "",
        clock_skew: timedelta | None = None,
    ) -> AlipayError:
        """The typed error for an Alipay error code, chosen by the code's catalog category.

        ``clock_skew`` (set when ``note`` explains a timestamp refusal) is kept on the error for the caller.
        """
        error = self._refusal_of(
            definition, code, context, gateway_level=gateway_level, retryable=retryable, note=note
        )
        error.clock_skew = clock_skew
        return error

    def _refusal_of(
        self,
        definition: ServiceDefinition,
        code: str | None,
        context: dict[str, Any],
        *,
        gateway_level: bool,
        retryable: bool | None,
        note: str,
    ) -> AlipayError:
        if not code:
            where = "is_success=F" if gateway_level else "a failed result_code"
            return (AlipayGatewayError if gateway_level else AlipayBusinessError)(
                f"the gateway answered {where} without an error code{note}", **context
            )
        entry = lookup_error(code)
        message = f"{entry.code or code}: {entry.description}{note}"
        details = {"code": entry.code or code, "description": entry.description, **context}
        if entry.category == "system":
            if gateway_level or definition.idempotent:
                return AlipaySystemError(message, retryable=entry.retryable, **details)
            # A state-changing call that failed "for a system error" may still have been carried out.
            return OutcomeUnknownError(
                f"{message} (the operation may or may not have happened; query it)", **details
            )
        if entry.category == "gateway":
            return AlipayGatewayError(message, retryable=retryable, **details)
        if entry.category == "business":
            return AlipayBusinessError(message, retryable=retryable, **details)
        # Not in the catalog: a gateway-level refusal is still a refusal; a business one stays business.
        cls = AlipayGatewayError if gateway_level else AlipayBusinessError
        return cls(message, retryable=retryable, **details)

    def _interpret_verify(self, reply: _Reply) -> bool:
        text = reply.body.strip(b" \t\r\n\x0b\x0c")
        if text == b"true":
            return True
        if text.startswith((b"<?xml", b"<alipay")):
            definition = services.NOTIFY_VERIFY
            context: dict[str, Any] = {"service": definition.name, "raw_response": reply.body}
            try:
                parsed = envelope.parse_response(reply.body, max_bytes=self.max_response_bytes)
            except GatewayResponseError:
                return False
            if not parsed.is_success:
                raise self._refusal(definition, parsed.error, context, gateway_level=True)
        return False

    def _interpret_file(self, definition: ServiceDefinition, wire: dict[str, str], reply: _Reply) -> Any:
        context = self._context(definition, wire, reply.body)
        head = reply.body[:256].lstrip()
        if head.startswith((b"<?xml", b"<alipay")):
            try:
                parsed = envelope.parse_response(reply.body, max_bytes=self.max_file_bytes)
            except GatewayResponseError as exc:
                raise GatewayResponseError(exc.message, **context) from exc
            if not parsed.is_success:
                raise self._refusal(definition, parsed.error, context, gateway_level=True)
            raise GatewayResponseError(
                f"{definition.name} answered an XML envelope instead of a file", **context
            )
        if head.lower().startswith((b"<!doctype html", b"<html")):
            raise GatewayResponseError(
                f"{definition.name} answered an HTML page instead of a file", **context
            )
        charset = _declared_charset(reply.headers.get("Content-Type", "")) or self.charset
        try:
            text = reply.body.decode(charset)
        except UnicodeDecodeError as exc:
            raise GatewayResponseError(
                f"{definition.name} answered bytes that are not {charset}", **context
            ) from exc
        return services.parse_file(definition, text, reply.body)


def _skew_note(definition: ServiceDefinition, skew: timedelta | None) -> str:
    """For calls with an expiring timestamp: say so when a refusal comes with a large clock difference."""
    if not definition.has_timestamp or skew is None or abs(skew) <= TIMESTAMP_VALIDITY:
        return ""
    return (
        f" (the gateway's clock differs from this server's by {skew.total_seconds():+.0f} s, more than the "
        f"{TIMESTAMP_VALIDITY.total_seconds() // 60:.0f}-minute timestamp validity: fix this server's clock)"
    )


def _load_public_keys(material: Any) -> Any:
    if material is None:
        return None
    if isinstance(material, list | tuple):
        return tuple(keys.load_public_key(m) for m in material)
    return keys.load_public_key(material)


def _declared_charset(content_type: str) -> str | None:
    match = _CHARSET_PARAM.search(content_type)
    if match is None:
        return None
    try:
        return signing.normalize_charset(match.group(1))
    except InvalidParameterError:
        return None


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _describe(exc: BaseException) -> str:
    """A short reason for a transport failure, from the innermost cause."""
    inner: BaseException = exc
    seen = 0
    while seen < 8:
        seen += 1
        nxt = getattr(inner, "reason", None) or (inner.args[0] if inner.args else None)
        if isinstance(nxt, BaseException) and nxt is not inner:
            inner = nxt
            continue
        break
    text = str(inner) or type(inner).__name__
    return f"{type(inner).__name__}: {text[:200]}"


def _is_connect_failure(exc: BaseException) -> bool:
    """True when requests says the connection itself failed (refused, DNS, TLS, connect timeout)."""
    if isinstance(
        exc,
        requests.exceptions.ConnectTimeout | requests.exceptions.SSLError | requests.exceptions.ProxyError,
    ):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError) and exc.args:
        inner = exc.args[0]
        if isinstance(inner, urllib3.exceptions.MaxRetryError):
            return isinstance(
                inner.reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError
            )
    return False
