"""The baseline views the library's endpoints are measured against, and a readiness probe.

* :func:`baseline_notify` stores the body with one INSERT: the least an endpoint can do, not a correct
  handler.
* :func:`minimal_notify` is the least a **correct** notify handler must do, hand-written with raw SQL on
  tables of its own (no ORM models, no django_alipay code but the protocol layer's signature check): store
  the body, check the signature, look for an earlier acknowledged delivery, ask ``notify_verify`` over one
  persistent connection, apply under the trade's row lock and mark the row processed in one transaction.
"""

from __future__ import annotations

import http.client
import socket
import threading
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

from django.db import IntegrityError, connection, transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from django_alipay.protocol import keys, signing

__all__ = [
    "BASELINE_TABLE",
    "CREATE_BASELINE_TABLE",
    "CREATE_MINIMAL_TABLES",
    "MINIMAL_MERCHANT_TABLE",
    "MINIMAL_NOTIFICATION_TABLE",
    "MINIMAL_REFUND_TABLE",
    "MINIMAL_TRADE_TABLE",
    "baseline_notify",
    "handle_minimal",
    "hold_refund",
    "minimal_notify",
    "ping",
]

#: Where the baseline notify view puts what it receives.
BASELINE_TABLE: Final = "bench_baseline_notification"
#: Run once by the benchmark before the server starts (the table is not a model: no migration needed).
CREATE_BASELINE_TABLE: Final = (
    f"CREATE TABLE IF NOT EXISTS {BASELINE_TABLE} (id bigserial PRIMARY KEY, token varchar(64) NOT NULL, "
    "body bytea NOT NULL, received_at timestamptz NOT NULL DEFAULT now())"
)
_INSERT: Final = f"INSERT INTO {BASELINE_TABLE} (token, body) VALUES (%s, %s)"  # noqa: S608 (a constant)
_MAX_BODY: Final = 65536
_TEXT: Final = "text/plain; charset=utf-8"


@csrf_exempt
@require_POST
def baseline_notify(request: HttpRequest, token: str) -> HttpResponse:
    """The least a notify endpoint can do: store the raw body in one INSERT and answer ``success``."""
    body = request.read(_MAX_BODY + 1)
    with connection.cursor() as cursor:
        cursor.execute(_INSERT, [token[:64], body])
    return HttpResponse("success", content_type=_TEXT)


# --- the minimal correct handler ---------------------------------------------------------------------------

#: The merchants the minimal handler serves (what a hand-written handler keeps in its settings).
MINIMAL_MERCHANT_TABLE: Final = "bench_minimal_merchant"
#: Its own copy of the shop's orders, and of the refunds it asked for.
MINIMAL_TRADE_TABLE: Final = "bench_minimal_trade"
MINIMAL_REFUND_TABLE: Final = "bench_minimal_refund"
#: Every request's raw body; ``processed`` with its notify_id once applied (at most one such row per id).
MINIMAL_NOTIFICATION_TABLE: Final = "bench_minimal_notification"
#: Run once by the benchmark before the server starts.
CREATE_MINIMAL_TABLES: Final = (
    f"CREATE TABLE IF NOT EXISTS {MINIMAL_MERCHANT_TABLE} (id bigint PRIMARY KEY, "
    "notify_token varchar(64) NOT NULL UNIQUE, partner varchar(16) NOT NULL, sign_type varchar(8) NOT NULL, "
    "charset varchar(8) NOT NULL, gateway_url text NOT NULL, alipay_public_key text NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {MINIMAL_TRADE_TABLE} (id bigserial PRIMARY KEY, "
    "merchant_id bigint NOT NULL, out_trade_no varchar(64) NOT NULL, amount numeric(14, 2) NOT NULL, "
    "currency varchar(3) NOT NULL, status varchar(32) NOT NULL, trade_no varchar(64) NOT NULL DEFAULT '', "
    "paid_at timestamptz, "
    "refunded_amount numeric(14, 2) NOT NULL DEFAULT 0, refund_pending_amount numeric(14, 2) NOT NULL "
    "DEFAULT 0, UNIQUE (merchant_id, out_trade_no))",
    f"CREATE TABLE IF NOT EXISTS {MINIMAL_REFUND_TABLE} (id bigserial PRIMARY KEY, "
    f"trade_id bigint NOT NULL REFERENCES {MINIMAL_TRADE_TABLE}, out_return_no varchar(64) NOT NULL UNIQUE, "
    "amount numeric(14, 2) NOT NULL, status varchar(16) NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {MINIMAL_NOTIFICATION_TABLE} (id bigserial PRIMARY KEY, "
    "token varchar(64) NOT NULL, body bytea NOT NULL, received_at timestamptz NOT NULL DEFAULT now(), "
    "processed boolean NOT NULL DEFAULT false, notify_id varchar(128))",
    f"CREATE UNIQUE INDEX IF NOT EXISTS {MINIMAL_NOTIFICATION_TABLE}_once "
    f"ON {MINIMAL_NOTIFICATION_TABLE} (notify_id) WHERE processed",
)

# The statements, all constants (hence the S608 waivers).
_M_STORE: Final = f"INSERT INTO {MINIMAL_NOTIFICATION_TABLE} (token, body) VALUES (%s, %s) RETURNING id"  # noqa: S608
_M_MERCHANT: Final = (
    "SELECT id, partner, sign_type, charset, gateway_url, alipay_public_key "  # noqa: S608
    f"FROM {MINIMAL_MERCHANT_TABLE} WHERE notify_token = %s"
)
_M_ACKNOWLEDGED: Final = (
    f"SELECT 1 FROM {MINIMAL_NOTIFICATION_TABLE} WHERE notify_id = %s AND processed LIMIT 1"  # noqa: S608
)
_M_LOCK_TRADE: Final = (
    f"SELECT id, amount, currency, status FROM {MINIMAL_TRADE_TABLE} "  # noqa: S608
    "WHERE merchant_id = %s AND out_trade_no = %s FOR UPDATE"
)
_M_UPDATE_TRADE: Final = (
    f"UPDATE {MINIMAL_TRADE_TABLE} SET status = %s, "  # noqa: S608
    "trade_no = CASE WHEN trade_no = '' THEN %s ELSE trade_no END, "
    "paid_at = CASE WHEN %s AND paid_at IS NULL "
    "THEN COALESCE(%s::timestamp AT TIME ZONE 'Asia/Shanghai', now()) ELSE paid_at END WHERE id = %s"
)
_M_SETTLE_REFUND: Final = (
    f"UPDATE {MINIMAL_REFUND_TABLE} SET status = %s WHERE trade_id = %s AND out_return_no = %s "  # noqa: S608
    "AND status = 'SUBMITTED' AND (%s::numeric IS NULL OR amount = %s::numeric) RETURNING amount"
)
_M_REFUNDED: Final = (
    f"UPDATE {MINIMAL_TRADE_TABLE} SET refunded_amount = refunded_amount + %s, "  # noqa: S608
    "refund_pending_amount = refund_pending_amount - %s WHERE id = %s"
)
_M_PROCESSED: Final = (
    f"UPDATE {MINIMAL_NOTIFICATION_TABLE} SET processed = true, notify_id = %s WHERE id = %s"  # noqa: S608
)

#: Cross-border trade statuses in the order a trade moves through them (TRADE_CLOSED only from unpaid).
_RANK: Final = {"WAIT_BUYER_PAY": 0, "TRADE_SUCCESS": 1, "TRADE_FINISHED": 2, "TRADE_CLOSED": 2}
_PAID: Final = frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"})
_FORM: Final = "application/x-www-form-urlencoded"
_VERIFY_TIMEOUT: Final = 10.0


@dataclass(frozen=True)
class _Merchant:
    id: int
    partner: str
    sign_type: str
    charset: str
    gateway_host: str
    gateway_port: int
    gateway_path: str
    alipay_public_key: Any


class _Refused(Exception):
    """A request answered without being applied: the HTTP status and body to send."""

    def __init__(self, status: int, text: str = "fail") -> None:
        super().__init__(text)
        self.status = status
        self.text = text


#: Loaded once per process (a hand-written handler has its merchant in its settings).
_merchants: dict[str, _Merchant] = {}
_local = threading.local()


def _merchant(token: str) -> _Merchant | None:
    found = _merchants.get(token)
    if found is not None:
        return found
    with connection.cursor() as cursor:
        cursor.execute(_M_MERCHANT, [token])
        row = cursor.fetchone()
    if row is None:
        return None
    pk, partner, sign_type, charset, gateway_url, public_key = row
    url = urlsplit(gateway_url)
    found = _Merchant(
        id=pk,
        partner=partner,
        sign_type=sign_type,
        charset=charset,
        gateway_host=url.hostname or "127.0.0.1",
        gateway_port=url.port or 80,
        gateway_path=url.path or "/",
        alipay_public_key=keys.load_public_key(public_key),
    )
    _merchants[token] = found
    return found


def _m_store(token: str, body: bytes) -> int:
    """(1) The raw body, before anything else, in one autocommitted INSERT."""
    with connection.cursor() as cursor:
        cursor.execute(_M_STORE, [token[:64], body[:_MAX_BODY]])
        return int(cursor.fetchone()[0])


def _m_parse_and_check(merchant: _Merchant, body: bytes, content_type: str) -> dict[str, str]:
    """(2) Decode the form and check the signature with the merchant's sign type (the protocol layer's)."""
    if len(body) > _MAX_BODY or content_type != _FORM:
        raise _Refused(400)
    try:
        text = body.decode("ascii")
        pairs = parse_qsl(text, keep_blank_values=True, encoding=merchant.charset, max_num_fields=200)
        params = dict(pairs)
        declared = params.get("_input_charset", merchant.charset).lower()
        if declared != merchant.charset:
            pairs = parse_qsl(text, keep_blank_values=True, encoding=declared, max_num_fields=200)
            params = dict(pairs)
    except (UnicodeDecodeError, LookupError, ValueError):
        raise _Refused(400) from None
    notify_id = params.get("notify_id", "")
    if len(params) != len(pairs) or not notify_id or len(notify_id) > 128:
        raise _Refused(400)
    charset = params.get("_input_charset") or merchant.charset
    genuine = signing.verify(
        params, key=merchant.alipay_public_key, sign_type=merchant.sign_type, charset=charset
    )
    if not genuine:
        raise _Refused(400)
    return params


def _m_acknowledged(notify_id: str) -> bool:
    """(3) An earlier delivery of this notify_id was applied: one SELECT on the partial unique index."""
    with connection.cursor() as cursor:
        cursor.execute(_M_ACKNOWLEDGED, [notify_id])
        return cursor.fetchone() is not None


def _connections() -> dict[tuple[str, int], http.client.HTTPConnection]:
    found: dict[tuple[str, int], http.client.HTTPConnection] | None = getattr(_local, "gateways", None)
    if found is None:
        found = _local.gateways = {}
    return found


def _gateway(merchant: _Merchant) -> http.client.HTTPConnection:
    """This thread's keep-alive connection to the merchant's gateway (TCP_NODELAY)."""
    connections = _connections()
    address = (merchant.gateway_host, merchant.gateway_port)
    conn = connections.get(address)
    if conn is None:
        conn = http.client.HTTPConnection(*address, timeout=_VERIFY_TIMEOUT)
        conn.connect()
        assert conn.sock is not None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connections[address] = conn
    return conn


def _drop_gateway(merchant: _Merchant) -> None:
    conn = _connections().pop((merchant.gateway_host, merchant.gateway_port), None)
    if conn is not None:
        conn.close()


def _m_notify_verify(merchant: _Merchant, notify_id: str) -> bool:
    """(4) Ask the gateway whether Alipay sent ``notify_id``; True only for ``true``.

    A reused connection the gateway closed meanwhile is retried once on a new one (the call is a query);
    no answer at all raises _Refused(503), so that Alipay sends the notification again.
    """
    query = urlencode({"service": "notify_verify", "partner": merchant.partner, "notify_id": notify_id})
    target = f"{merchant.gateway_path}?{query}"
    for attempt in range(2):
        reused = (merchant.gateway_host, merchant.gateway_port) in _connections()
        try:
            conn = _gateway(merchant)
            conn.request("GET", target, headers={"Accept-Encoding": "identity"})
            response = conn.getresponse()
            answer = response.read(4096)
            if response.will_close:
                _drop_gateway(merchant)
            return response.status == 200 and answer.strip() == b"true"
        except (OSError, http.client.HTTPException):
            _drop_gateway(merchant)
            if attempt or not reused:
                raise _Refused(503) from None
    raise _Refused(503)


def _amount(text: str | None) -> Decimal | None:
    if not text:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def _m_apply(merchant: _Merchant, row_id: int, params: dict[str, str]) -> None:
    """(5) One transaction: lock the trade, move it forward (or settle the refund), mark the row processed.

    A concurrent delivery of the same notify_id that got here first makes the last UPDATE violate the
    partial unique index: IntegrityError, the transaction is rolled back, the caller answers ``success``.
    """
    notify_id = params["notify_id"]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_M_LOCK_TRADE, [merchant.id, params.get("out_trade_no", "")[:64]])
        trade = cursor.fetchone()
        if trade is None:
            raise _Refused(404)  # an order we do not know (yet): not acknowledged, Alipay retries
        trade_id, amount, currency, status = trade
        seller = params.get("seller_id") or params.get("partner")
        same_currency = params.get("currency", currency) == currency
        same_merchant = (not seller or seller == merchant.partner) and same_currency
        if "refund_status" in params:
            new = params["refund_status"]
            settled = {"REFUND_SUCCESS": "SUCCEEDED", "REFUND_FAIL": "FAILED"}.get(new)
            if settled and same_merchant:
                reported = _amount(params.get("return_amount"))
                cursor.execute(
                    _M_SETTLE_REFUND,
                    [settled, trade_id, params.get("out_return_no", "")[:64], reported, reported],
                )
                refund = cursor.fetchone()
                if refund is not None:
                    cursor.execute(
                        _M_REFUNDED, [refund[0] if settled == "SUCCEEDED" else 0, refund[0], trade_id]
                    )
        else:
            new = params.get("trade_status", "")
            forward = (
                new in _RANK
                and _RANK[new] > _RANK.get(status, 0)
                and not (new == "TRADE_CLOSED" and status in _PAID)
            )
            if forward and same_merchant and _amount(params.get("total_fee")) in (None, amount):
                cursor.execute(
                    _M_UPDATE_TRADE,
                    [new, params.get("trade_no", "")[:64], new in _PAID, params.get("gmt_payment"), trade_id],
                )
        # Not applied (stale, mismatched): acknowledged all the same, as the library does (IGNORED).
        cursor.execute(_M_PROCESSED, [notify_id, row_id])


def handle_minimal(token: str, body: bytes, content_type: str) -> tuple[int, str]:
    """The minimal correct handler, without the view around it: the HTTP status and body to answer."""
    row_id = _m_store(token, body)
    merchant = _merchant(token)
    if merchant is None:
        return 404, "fail"
    try:
        params = _m_parse_and_check(merchant, body, content_type)
        if _m_acknowledged(params["notify_id"]):
            return 200, "success"  # a resend of an applied notification
        if not _m_notify_verify(merchant, params["notify_id"]):
            return 400, "fail"
        try:
            _m_apply(merchant, row_id, params)
        except IntegrityError:
            return 200, "success"  # another delivery of this notify_id was applied meanwhile
    except _Refused as refused:
        return refused.status, refused.text
    return 200, "success"


@csrf_exempt
@require_POST
def minimal_notify(request: HttpRequest, token: str) -> HttpResponse:
    """The least a correct notify endpoint must do per notification (see :func:`handle_minimal`)."""
    status, text = handle_minimal(token, request.read(_MAX_BODY + 1), request.content_type or "")
    return HttpResponse(text, status=status, content_type=_TEXT)


@require_GET
def ping(request: HttpRequest) -> HttpResponse:
    """Answers ``ok`` without touching the database: the benchmarks poll it until the server is up."""
    return HttpResponse("ok", content_type=_TEXT)


def hold_refund(refund_id: int) -> None:
    """A ``REFUND_DISPATCHER`` that sends nothing: the refund stays REQUESTED with its amount reserved.

    What the API request costs when refunds are queued (a Celery dispatcher) rather than sent at once; the
    ledger benchmark uses it to time acceptance into the ledger alone.
    """
