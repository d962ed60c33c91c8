"""GatewayClient: send signed mapi calls over pooled HTTP and turn each outcome into a typed result."""

from __future__ import annotations

import email.utils
import html
import logging
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, Final, Literal, NoReturn, TypeAlias
from urllib.parse import urlencode, urlsplit

import requests

from django_alipay import __version__
from django_alipay.protocol import clock as clock_mod
from django_alipay.protocol import envelope, interpretation, keys, services, signing
from django_alipay.protocol.errors import (
    AlipayError,
    AlipaySystemError,
    GatewayResponseError,
    InvalidParameterError,
    OutcomeUnknownError,
    TransportError,
)
from django_alipay.protocol.interpretation import TIMESTAMP_VALIDITY, Reply
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
from django_alipay.protocol.transport import HttpTransport, Request, Transport

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_TIMEOUT",
    "INTL_URL",
    "NOTIFY_VERIFY_URL",
    "PRODUCTION_URLS",
    "SANDBOX_HOSTS",
    "SANDBOX_URL",
    "TIMESTAMP_VALIDITY",
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
_LOGGED_BODY: Final = 2048
_REDACTED: Final = "[redacted]"
_SIGN_IN_XML = re.compile(rb"(<sign>)[^<]*(</sign>)")
_SIGN_PARAM_IN_XML = re.compile(rb"(<param\s+name=[\"']sign[\"']\s*>)[^<]*(</param>)")
_SIGN_IN_QUERY = re.compile(r"(?<![A-Za-z0-9_])(sign=)[^&\s]*")


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


class _Unset:
    """The default of a service parameter that was not passed (None passes "leave it out")."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<not passed>"


UNSET: Any = _Unset()

# The Python values each parameter kind accepts (services.py converts them to wire form and checks them).
Text: TypeAlias = str | Enum
Amount: TypeAlias = Decimal | str
When: TypeAlias = datetime | str
Day: TypeAlias = date | str
Epoch: TypeAlias = datetime | int | str
Count: TypeAlias = int | str
Flag: TypeAlias = bool | str
Json: TypeAlias = Mapping[str, Any] | Sequence[Any] | str


def _given(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The service parameters a method was called with: its arguments minus self and those not passed."""
    return {name: value for name, value in arguments.items() if name != "self" and value is not UNSET}


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
        transport: Transport | None = None,
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
        if transport is not None:
            if session is not None or proxies or verify is not True:
                raise InvalidParameterError(
                    "pass either a transport or session/proxies/verify (which configure the HTTP transport)",
                    parameter="transport",
                )
            if not isinstance(transport, Transport):
                raise InvalidParameterError(
                    "transport must have send(request) and close() methods", parameter="transport"
                )
            self.transport: Transport = transport
            self._owns_transport = False
            self.session: requests.Session | None = None
        else:
            http_transport = HttpTransport(session=session, proxies=proxies, verify=verify)
            self.transport = http_transport
            self._owns_transport = True
            #: The requests Session of the HTTP transport (None with another transport).
            self.session = http_transport.session

    def __repr__(self) -> str:
        return f"GatewayClient(partner={self.partner!r}, sign_type={self.sign_type!r})"

    def close(self) -> None:
        """Close the pooled connections of the transport the client built (not of one passed in)."""
        if self._owns_transport:
            self.transport.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- services ------------------------------------------------------------------------------------------

    def create_forex_trade(
        self,
        *,
        subject: Text,
        body: Text | None = UNSET,
        out_trade_no: Text,
        currency: Text,
        total_fee: Amount | None = UNSET,
        rmb_fee: Amount | None = UNSET,
        notify_url: Text | None = UNSET,
        return_url: Text | None = UNSET,
        order_gmt_create: When | None = UNSET,
        order_valid_time: Count | None = UNSET,
        supplier: Text | None = UNSET,
        secondary_merchant_id: Text | None = UNSET,
        secondary_merchant_name: Text | None = UNSET,
        secondary_merchant_industry: Text | None = UNSET,
        refer_url: Text | None = UNSET,
        trade_information: Json | None = UNSET,
        split_fund_info: Json | None = UNSET,
        timeout_rule: Text | None = UNSET,
        product_code: Text | None = UNSET,
    ) -> PageRequest:
        """Sign a website payment (subject, out_trade_no, currency, total_fee or rmb_fee, notify_url ...)."""
        return self._page(services.CREATE_FOREX_TRADE, _given(locals()))

    def create_forex_trade_wap(
        self,
        *,
        subject: Text,
        body: Text | None = UNSET,
        out_trade_no: Text,
        currency: Text,
        total_fee: Amount | None = UNSET,
        rmb_fee: Amount | None = UNSET,
        notify_url: Text | None = UNSET,
        return_url: Text | None = UNSET,
        order_gmt_create: When | None = UNSET,
        order_valid_time: Count | None = UNSET,
        supplier: Text | None = UNSET,
        secondary_merchant_id: Text | None = UNSET,
        secondary_merchant_name: Text | None = UNSET,
        secondary_merchant_industry: Text | None = UNSET,
        refer_url: Text | None = UNSET,
        trade_information: Json | None = UNSET,
        split_fund_info: Json | None = UNSET,
        timeout_rule: Text | None = UNSET,
        order_create: Epoch | None = UNSET,
        product_code: Text | None = UNSET,
        app_pay: Text | None = UNSET,
        payment_inst: Text | None = UNSET,
        merchant_url: Text | None = UNSET,
        seller_id: Text | None = UNSET,
    ) -> PageRequest:
        """Sign a mobile-browser payment; same parameters as create_forex_trade plus the WAP ones."""
        return self._page(services.CREATE_FOREX_TRADE_WAP, _given(locals()))

    def single_trade_query(
        self,
        *,
        trade_no: Text | None = UNSET,
        out_trade_no: Text | None = UNSET,
    ) -> TradeQueryResult:
        """Query an online trade by ``out_trade_no`` and/or ``trade_no`` (retried when safe)."""
        return self._xml(services.SINGLE_TRADE_QUERY, _given(locals()), TradeQueryResult)

    def forex_refund(
        self,
        *,
        out_return_no: Text,
        out_trade_no: Text,
        currency: Text,
        return_amount: Amount | None = UNSET,
        return_rmb_amount: Amount | None = UNSET,
        gmt_return: When | None = UNSET,
        reason: Text | None = UNSET,
        product_code: Text | None = UNSET,
        split_fund_info: Json | None = UNSET,
        is_sync: Flag | None = UNSET,
        notify_url: Text | None = UNSET,
    ) -> ForexRefundResult:
        """Refund an online payment; never re-sent automatically once it may have reached the gateway.

        Parameters: out_return_no, out_trade_no, return_amount or return_rmb_amount (Decimal), currency,
        gmt_return (aware datetime, default now), reason, is_sync, notify_url ...
        """
        return self._xml(services.FOREX_REFUND, _given(locals()), ForexRefundResult)

    def spot_pay(
        self,
        *,
        alipay_seller_id: Text | None = UNSET,
        quantity: Count | None = UNSET,
        trans_name: Text,
        partner_trans_id: Text,
        currency: Text,
        trans_currency: Text | None = UNSET,
        trans_amount: Amount,
        buyer_identity_code: Text,
        identity_code_type: Text | None = UNSET,
        trans_create_time: When | None = UNSET,
        memo: Text | None = UNSET,
        biz_product: Text | None = UNSET,
        extend_info: Json | None = UNSET,
        trade_information: Json | None = UNSET,
        notify_url: Text | None = UNSET,
    ) -> SpotPayResult:
        """Charge a buyer's code: partner_trans_id, trans_name, currency, trans_amount, buyer_identity_code.

        Never re-sent automatically once it may have reached the gateway.
        """
        return self._xml(services.SPOT_PAY, _given(locals()), SpotPayResult)

    def precreate(
        self,
        *,
        timestamp: When | None = UNSET,
        terminal_timestamp: Epoch | None = UNSET,
        out_trade_no: Text,
        subject: Text,
        product_code: Text | None = UNSET,
        trans_currency: Text | None = UNSET,
        currency: Text | None = UNSET,
        total_fee: Amount,
        price: Amount | None = UNSET,
        quantity: Count | None = UNSET,
        seller_id: Text | None = UNSET,
        seller_email: Text | None = UNSET,
        body: Text | None = UNSET,
        show_url: Text | None = UNSET,
        goods_detail: Json | None = UNSET,
        extend_params: Json | None = UNSET,
        it_b_pay: Text | None = UNSET,
        qr_code_it_b_pay: Text | None = UNSET,
        passback_parameters: Text | None = UNSET,
        trade_information: Json | None = UNSET,
        notify_url: Text | None = UNSET,
    ) -> PrecreateResult:
        """Create a QR code for the buyer to scan: out_trade_no, subject, total_fee, currency ..."""
        return self._xml(services.PRECREATE, _given(locals()), PrecreateResult)

    def overseas_query(
        self,
        *,
        partner_trans_id: Text | None = UNSET,
        alipay_trans_id: Text | None = UNSET,
    ) -> OverseasQueryResult:
        """Query an in-store transaction by ``partner_trans_id`` and/or ``alipay_trans_id``."""
        return self._xml(services.OVERSEAS_QUERY, _given(locals()), OverseasQueryResult)

    def spot_refund(
        self,
        *,
        partner_trans_id: Text,
        alipay_trans_id: Text | None = UNSET,
        partner_refund_id: Text,
        currency: Text,
        refund_amount: Amount,
        refund_reason: Text | None = UNSET,
        is_sync: Flag | None = UNSET,
        notify_url: Text | None = UNSET,
    ) -> SpotRefundResult:
        """Refund an in-store payment: partner_trans_id, partner_refund_id, refund_amount, currency ..."""
        return self._xml(services.SPOT_REFUND, _given(locals()), SpotRefundResult)

    def spot_reverse(
        self,
        *,
        partner_trans_id: Text,
    ) -> SpotReverseResult:
        """Reverse today's (Beijing time) in-store payment ``partner_trans_id`` in full."""
        return self._xml(services.SPOT_REVERSE, _given(locals()), SpotReverseResult)

    def cancel(
        self,
        *,
        timestamp: When | None = UNSET,
        terminal_timestamp: Epoch | None = UNSET,
        out_trade_no: Text,
        trade_no: Text | None = UNSET,
    ) -> CancelResult:
        """Cancel in-store trade ``out_trade_no``: closed if unpaid, refunded if paid today (Beijing time)."""
        return self._xml(services.CANCEL, _given(locals()), CancelResult)

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

        def interpret(reply: Reply) -> bool:
            return interpretation.interpret_verify(reply, max_bytes=self.max_response_bytes)

        return self._execute(definition, wire, interpret, deadline=deadline)

    def forex_rate_file(self) -> FileResult[RateRecord]:
        """Download the current exchange rates (CNY per unit of each currency)."""
        return self._file(services.FOREX_RATE_FILE, {})

    def forex_compare_file(
        self,
        *,
        start_date: Day,
        end_date: Day,
    ) -> FileResult[TransactionRecord]:
        """Download the transactions of ``start_date``..``end_date`` (at most 10 days apart, before today)."""
        return self._file(services.FOREX_COMPARE_FILE, _given(locals()))

    def forex_liquidation_file(
        self,
        *,
        start_date: Day,
        end_date: Day,
    ) -> FileResult[SettlementRecord]:
        """Download the settlements of ``start_date``..``end_date`` (at most 10 days apart, before today)."""
        return self._file(services.FOREX_LIQUIDATION_FILE, _given(locals()))

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

        def interpret(reply: Reply) -> Any:
            return interpretation.interpret_xml(
                definition,
                wire,
                reply,
                result_type,
                sign_type=self.sign_type,
                verify_key=self._verify_key.get(),
                max_bytes=self.max_response_bytes,
                charset=self.charset,
            )

        return self._execute(definition, wire, interpret)

    def _file(self, definition: ServiceDefinition, params: Mapping[str, Any]) -> Any:
        wire = self._build(definition, params)

        def interpret(reply: Reply) -> Any:
            return interpretation.interpret_file(
                definition, wire, reply, max_bytes=self.max_file_bytes, charset=self.charset
            )

        return self._execute(definition, wire, interpret, max_bytes=self.max_file_bytes)

    # --- sending, with retries and failover ----------------------------------------------------------------

    def _execute(
        self,
        definition: ServiceDefinition,
        wire: dict[str, str],
        interpret: Callable[[Reply], Any],
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
    ) -> Reply:
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
    ) -> Reply:
        context: dict[str, Any] = {"service": definition.name, "out_trade_no": definition.trade_id(wire)}
        if ends - time.monotonic() <= 0:
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
        response = self.transport.send(
            Request(
                method=method,
                url=target,
                headers=headers,
                body=body,
                timeout=self.timeout,
                deadline=ends,
                max_bytes=max_bytes,
                service=definition.name,
                out_trade_no=definition.trade_id(wire),
            )
        )
        status = response.status
        if status >= 500:
            raise OutcomeUnknownError(f"the gateway answered HTTP {status}", **context)
        if status != 200:
            raise GatewayResponseError(f"the gateway answered HTTP {status}, not 200", **context)
        reply = Reply(url=url, status=status, headers=dict(response.headers), body=response.body)
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


def _load_public_keys(material: Any) -> Any:
    if material is None:
        return None
    if isinstance(material, list | tuple):
        return tuple(keys.load_public_key(m) for m in material)
    return keys.load_public_key(material)


def _host(url: str) -> str:
    return urlsplit(url).netloc or url
