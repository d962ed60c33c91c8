"""Receive Alipay's notifications: store the raw request, verify it, then act on it exactly once.

The pipeline of :func:`receive` (verify before trusting, store before acting, act once, and ask
notify_verify before answering ``success``):

1. **Store** the raw request in its own committed transaction, before anything can go wrong: merchant (from
   the notify URL token), raw bytes, content type, query string, headers that matter, peer address and,
   separately and never trusted, X-Forwarded-For. ``transaction.atomic(durable=True)`` makes this refuse to
   run inside a caller's transaction: under ``ATOMIC_REQUESTS`` a later error would roll the audit row back,
   so the notify view must be ``transaction.non_atomic_requests`` (a loud error beats a silent lost row).
2. **Verify**: decode with the declared or merchant charset (duplicates, NUL bytes, bad bytes refused),
   check the signature with *this merchant's* keys and its own sign type only, then ``notify_verify`` within
   ``ALIPAY["NOTIFY_VERIFY_TIMEOUT"]`` seconds. A delivery of a notify_id already applied, with the same
   signed fields and correctly signed, is acknowledged as a duplicate without asking notify_verify again
   (Alipay reportedly refuses to re-verify an acknowledged notify_id, which would turn a lost ``success``
   into endless retries). A correctly signed notification that notify_verify calls false is never applied
   itself: the trade is queried, the query's answer applied, and the notification acknowledged only when
   the query confirms it.
3. **Process** in one durable transaction with the trade row locked: deduplicate against applied rows by
   notify_id and signed fields and by (trade, status) / (refund, status), check amount, currency and
   partner, apply the status forward only through :mod:`~django_alipay.domain.trades` /
   :mod:`~django_alipay.domain.refunds`. A race between two identical deliveries ends in one effect: the
   second waits for the lock and then sees the first; the partial unique constraint on (merchant,
   notify_id) is the backstop.
4. **Answer** ``success`` only after that commit (see :class:`NotificationAnswer`).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import logging
import threading
import time
import traceback as traceback_module
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote_to_bytes

from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.utils.translation import gettext as _

from django_alipay import gateway, signals
from django_alipay.conf import app_settings
from django_alipay.domain import clock, lifecycle, merchants, refunds, rows, settlement, trades
from django_alipay.domain.errors import ReprocessNotAllowed
from django_alipay.domain.lifecycle import RefundEvent
from django_alipay.enums import (
    NotificationFlag,
    NotificationKind,
    ProcessingOutcome,
    RefundStatus,
    Verification,
)
from django_alipay.exceptions import AlipayConfigurationError
from django_alipay.models import Merchant, Notification, Refund, Trade
from django_alipay.protocol import notifications as wire
from django_alipay.protocol.errors import AlipayError, NotificationError

__all__ = ["NotificationAnswer", "ReturnVisit", "receive", "receive_return", "reprocess"]

logger = logging.getLogger("django_alipay.notifications")
alerts = logging.getLogger("django_alipay.alerts")

#: Headers worth keeping with a notification (others may carry cookies or credentials).
KEPT_HEADERS = ("Content-Type", "Content-Length", "User-Agent", "Host", "X-Request-Id", "X-Forwarded-Proto")
#: Alipay retries for about 25 hours; a notify_time further away is suspicious (a flag, not a refusal).
NOTIFY_TIME_TOLERANCE = timedelta(hours=26)

# The protocol module's flag names that differ from ours.
_FLAG_NAMES = {
    "too_large": NotificationFlag.BODY_TOO_LARGE,
    "unsupported_content_type": NotificationFlag.BAD_CONTENT_TYPE,
}
_ACKNOWLEDGED = (ProcessingOutcome.PROCESSED, ProcessingOutcome.IGNORED)


@dataclass(frozen=True)
class NotificationAnswer:
    """What the notify view answers: ``status`` (HTTP) and ``body``, plus the stored row and why.

    ======================================================  =======  ========
    Situation                                               status   body
    ======================================================  =======  ========
    processed, or a duplicate of one                        200      success
    genuine but unusable (amount, currency, partner ...)    200      success  (flag set, alert logged)
    genuine, order unknown (replica lag, other project)     404      fail     (Alipay retries)
    signed, notify_verify false, the trade's query agrees   200      success  (flag verify_false_confirmed)
    signed, notify_verify false, the query disagrees        400      fail     (the query's status kept)
    forged or malformed (signature, sign type, verify)      400      fail
    body too large / not a form                             413/415  fail
    unknown notify URL token                                404      fail
    notify_verify unreachable, database or config error     503      fail     (Alipay retries)
    ======================================================  =======  ========
    """

    status: int
    body: str
    notification: Notification | None
    flag: str = ""
    message: str = ""

    @property
    def acknowledged(self) -> bool:
        """True when Alipay is told ``success`` and stops sending this notification."""
        return self.status == 200


def _success(notification: Notification, message: str = "") -> NotificationAnswer:
    return NotificationAnswer(200, app_settings.ACKNOWLEDGEMENT, notification, notification.flag, message)


def _failure(status: int, notification: Notification | None, flag: str, message: str) -> NotificationAnswer:
    return NotificationAnswer(status, app_settings.FAILURE_RESPONSE, notification, flag, message)


# --- storing ---------------------------------------------------------------------------------------------


def _clean(text: str, limit: int) -> str:
    # PostgreSQL text cannot hold NUL; the raw bytes are kept in ``body`` for the record.
    return text.replace("\x00", "\\x00")[:limit]


def _ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return str(value)
    return ""


#: What is kept of the query string of a request to an unknown notify URL (it names nothing of ours).
UNKNOWN_TOKEN_QUERY_CHARS = 256
_unknown_counts: dict[int, int] = {}
_unknown_lock = threading.Lock()


def _unknown_token_admitted() -> bool:
    """Whether one more row for an unknown notify URL fits this minute's ``UNKNOWN_TOKEN_ROWS_PER_MINUTE``.

    Counted in the default cache (shared by every process using it), or in this process when the cache
    fails. Wall-clock minutes, not the domain clock: the bound is on real traffic.
    """
    limit = app_settings.UNKNOWN_TOKEN_ROWS_PER_MINUTE
    if limit is None:
        return True
    window = int(time.time() // 60)
    try:
        key = f"django_alipay:unknown-token-rows:{window}"
        cache.add(key, 0, timeout=120)
        count = int(cache.incr(key))
    except Exception:  # the cache is down or not shared: count in this process instead
        with _unknown_lock:
            for old in [w for w in _unknown_counts if w != window]:
                del _unknown_counts[old]
            count = _unknown_counts[window] = _unknown_counts.get(window, 0) + 1
    if count == int(limit) + 1:
        logger.warning(
            "more than %s requests to unknown notify URLs this minute: no more are stored until the next one",
            limit,
        )
    return count <= int(limit)


def _merchant_for(merchant_token: str) -> Merchant | None:
    if isinstance(merchant_token, str) and 0 < len(merchant_token) <= 64:
        return Merchant.objects.filter(notify_token=merchant_token).first()
    return None


def _store(
    merchant_token: str,
    *,
    body: bytes,
    content_type: str,
    query_string: str,
    remote_addr: str | None,
    headers: Mapping[str, str],
    method: str,
    kind: NotificationKind,
) -> Notification | None:
    """The stored request; for a token naming no merchant a fingerprint only, or None past the rate limit."""
    limit = app_settings.NOTIFY_MAX_BODY_BYTES
    merchant = _merchant_for(merchant_token)
    flag_info = ""
    if merchant is None:
        # Anyone can post to any URL: keep what identifies the request, not what it carries, and only so many.
        if not _unknown_token_admitted():
            return None
        flag_info = f"{len(body)} bytes, SHA-256 {hashlib.sha256(body).hexdigest()}"
        query_string = (query_string or "")[:UNKNOWN_TOKEN_QUERY_CHARS]
        limit = 0
    kept = {name: _clean(_header(headers, name), 512) for name in KEPT_HEADERS if _header(headers, name)}
    with transaction.atomic(durable=True):
        return Notification.objects.create(
            merchant=merchant,
            received_at=clock.now(),
            kind=kind,
            method=_clean(method, 8),
            body=bytes(body[:limit]),
            body_size=len(body),
            body_truncated=len(body) > limit,
            content_type=_clean(content_type or "", 255),
            query_string=_clean(query_string or "", 4096),
            headers=kept,
            remote_addr=_ip(remote_addr),
            forwarded_for=_clean(_header(headers, "X-Forwarded-For"), 512),
            flag_info=flag_info,
        )


@dataclass(frozen=True)
class _Earlier:
    """Acknowledged (processed or ignored) deliveries of one notify_id, read as the request was stored.

    ``notify_id`` is what the raw request seemed to carry, read before anything was trusted: the rows stand in
    for the lookup after verification only when the verified notify_id is the same.
    """

    notify_id: str
    rows: list[Notification]


def _notify_id_hint(body: bytes, query_string: str) -> str:
    """The notify_id the raw request appears to carry (the first; "" if none or not ASCII). Never raises."""
    for data in (query_string.encode("latin-1", "replace"), body):
        for part in data.split(b"&"):
            if part.startswith(b"notify_id="):
                try:
                    return unquote_to_bytes(part[10:].replace(b"+", b" ")).decode("ascii")
                except UnicodeDecodeError:
                    return ""
    return ""


#: The columns an earlier delivery is read with (what the duplicate check and its record need).
_EARLIER_FIELDS = ("id", "params", "outcome", "trade_id", "refund_id")

#: The columns the stored request sets; every other column is stored with its default, written into the
#: statement once (fewer parameters to quote on every notification).
_REQUEST_FIELDS = (
    "received_at",
    "method",
    "body",
    "body_size",
    "content_type",
    "query_string",
    "headers",
    "remote_addr",
    "forwarded_for",
)


def _literals(outcomes: tuple[ProcessingOutcome, ...]) -> str:
    """SQL string literals of outcome values (our own constants: lower-case letters only)."""
    if not all(str(o.value).isalpha() and str(o.value).islower() for o in outcomes):
        raise ValueError("an outcome value is not a plain word")  # pragma: no cover
    return ", ".join(f"'{o.value}'" for o in outcomes)


def _stored_defaults() -> Notification:
    """A notification as :func:`_store_known` stores one before any request field is set."""
    return Notification(kind=NotificationKind.UNKNOWN, body_truncated=False)


@functools.cache
def _store_statement() -> tuple[str, tuple[Any, ...]]:
    """The one statement that resolves the notify token, stores the request and reads earlier deliveries,
    and the fields of its parameters (the request's; the other columns' values are in the text).

    The merchant comes from the database in the same statement (with its row version, which says whether this
    process's cached merchant is still the row), so a token that names no merchant stores nothing here; the
    earlier deliveries are read from the snapshot the INSERT runs in (the new row is not among them).
    """
    quote = connection.ops.quote_name
    meta = Notification._meta
    fields = tuple(f for f in meta.concrete_fields if not f.primary_key and f.attname != "merchant_id")
    columns = ", ".join(quote(str(f.column)) for f in fields)
    defaults = _stored_defaults()
    ops: Any = connection.ops  # PostgreSQL's: compose_sql quotes a value the way the driver does
    # INSERT ... SELECT does not type its parameters from the columns as VALUES does: each is cast.
    values = ", ".join(
        f"%s::{f.db_type(connection)}"
        if f.attname in _REQUEST_FIELDS
        else ops.compose_sql(
            f"%s::{f.db_type(connection)}", [f.get_db_prep_save(f.pre_save(defaults, True), connection)]
        ).replace("%", "%%")
        for f in fields
    )
    table, merchant_table = quote(meta.db_table), quote(Merchant._meta.db_table)
    earlier = ", ".join(
        f"earlier.{quote(str(f.column))}" for f in meta.concrete_fields if f.attname in _EARLIER_FIELDS
    )
    # Names of our own tables and columns; every value is a parameter or a column default written by the
    # database driver's own quoting.
    merchant = f"SELECT id, xmin::text AS version FROM {merchant_table} WHERE notify_token = %s"  # noqa: S608
    store = (
        f"INSERT INTO {table} (merchant_id, {columns}) "  # noqa: S608
        f"SELECT merchant.id, {values} FROM merchant RETURNING id"
    )
    acknowledged = (
        f"SELECT * FROM {table} WHERE merchant_id = merchant.id AND notify_id = %s "  # noqa: S608
        f"AND notify_id <> '' AND outcome IN ({_literals(_ACKNOWLEDGED)})"
    )
    sql = (
        f"WITH merchant AS ({merchant}), stored AS ({store}) "  # noqa: S608
        f"SELECT stored.id, merchant.id, merchant.version, {earlier} FROM stored CROSS JOIN merchant "
        f"LEFT JOIN LATERAL ({acknowledged}) earlier ON true ORDER BY earlier.id"
    )
    return sql, tuple(f for f in fields if f.attname in _REQUEST_FIELDS)


def _store_known(
    merchant_token: str,
    *,
    body: bytes,
    content_type: str,
    query_string: str,
    remote_addr: str | None,
    headers: Mapping[str, str],
    method: str,
) -> tuple[Notification, _Earlier] | None:
    """Store a notification for the merchant of ``merchant_token`` in one statement (PostgreSQL).

    Also reads the acknowledged deliveries of the notify_id the request seems to carry. None, with nothing
    stored, when the token names no merchant (the caller's :func:`_store` keeps a fingerprint).
    """
    if not 0 < len(merchant_token) <= 64:
        return None
    # The columns the statement writes as they are: the same defaults, then the request's own fields.
    notification = _stored_defaults()
    _remember(
        notification,
        received_at=clock.now(),
        method=_clean(method, 8),
        body=bytes(body),
        body_size=len(body),
        content_type=_clean(content_type or "", 255),
        query_string=_clean(query_string or "", 4096),
        headers={
            name: _clean(_header(headers, name), 512) for name in KEPT_HEADERS if _header(headers, name)
        },
        remote_addr=_ip(remote_addr),
        forwarded_for=_clean(_header(headers, "X-Forwarded-For"), 512),
    )
    hint = _notify_id_hint(body, query_string or "")
    sql, fields = _store_statement()
    values = [f.get_db_prep_save(f.pre_save(notification, True), connection) for f in fields]
    with _one_statement(), connection.cursor() as cursor:
        cursor.execute(sql, [merchant_token, *values, hint])
        found = cursor.fetchall()
    if not found:
        return None
    pk, merchant_pk, version = found[0][:3]
    merchant = merchants.cached_for_notify_token(merchant_token, version)
    if merchant is None or merchant.pk != merchant_pk:
        merchant = merchants.read_for_notify_token(merchant_token, pk=merchant_pk) or Merchant.objects.get(
            pk=merchant_pk
        )
    notification.pk = pk
    notification._state.adding = False
    notification._state.db = connection.alias
    notification.merchant = merchant
    earlier = []
    for row in found:
        if row[3] is None:
            continue
        row_pk, params, outcome, trade_id, refund_id = row[3:]
        params = json.loads(params) if isinstance(params, str | bytes) else params
        earlier.append(
            Notification.from_db(
                connection.alias, _EARLIER_FIELDS, [row_pk, params, outcome, trade_id, refund_id]
            )
        )
    return notification, _Earlier(hint, earlier)


#: Columns learnt along the way (parsing, verification) and kept on the instance until the next write, which
#: carries them: every path ends in one (a rejection, a duplicate, the processing record, or an error).
_CARRIED = ("params", "kind", "notify_id", "notify_type", "out_trade_no", "status", "verification")


def _update(notification: Notification, **fields: Any) -> None:
    """Write outcome columns at once (autocommit), so they survive whatever happens next."""
    for name, value in fields.items():
        setattr(notification, name, value)
    with _one_statement():
        _write(notification, (*_CARRIED, *fields))


@functools.cache
def _update_statement(names: tuple[str, ...]) -> tuple[str, tuple[Any, ...]]:
    """``UPDATE`` of the columns of ``names`` (field names or attnames) of one row, and their fields."""
    meta = Notification._meta
    fields = tuple(dict.fromkeys(meta.get_field(name) for name in names))
    quote = connection.ops.quote_name
    columns = ", ".join(f"{quote(str(field.column))} = %s" for field in fields)  # type: ignore[union-attr]
    return f"UPDATE {quote(meta.db_table)} SET {columns} WHERE id = %s", fields  # noqa: S608 (our own names)


def _write(notification: Notification, names: tuple[str, ...]) -> None:
    """Write the columns of ``names`` of a stored notification as the instance holds them, in one statement.

    A constant statement per set of columns: no ORM compilation on every notification. Not ``save()``: no
    model signal; the library's own (``notification_received`` ...) are sent as before.
    """
    sql, fields = _update_statement(names)
    values = [field.get_db_prep_save(getattr(notification, field.attname), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, notification.pk])


def _one_statement() -> Any:
    """Where one write runs: on its own in autocommit (its own transaction, no BEGIN and COMMIT round trips).

    Inside a caller's transaction a durable atomic block raises, as for every write of this module: a later
    rollback would take the record with it.
    """
    return transaction.atomic(durable=True) if connection.in_atomic_block else nullcontext()


def _reject(
    notification: Notification,
    status: int,
    flag: NotificationFlag,
    message: str,
    *,
    verification: Verification = Verification.REJECTED,
    outcome: ProcessingOutcome = ProcessingOutcome.REJECTED,
) -> NotificationAnswer:
    _update(
        notification, verification=verification, outcome=outcome, flag=flag.value, flag_info=message[:2000]
    )
    if outcome == ProcessingOutcome.REJECTED:
        logger.warning("notification %s rejected: %s (%s)", notification.pk, flag.value, message)
        signals.send_on_commit(
            signals.notification_rejected,
            Notification,
            notification=notification,
            params=dict(notification.params),
            flag=flag.value,
        )
    return _failure(status, notification, flag.value, message)


# --- the pipeline ------------------------------------------------------------------------------------------


def receive(
    merchant_token: str,
    *,
    body: bytes,
    content_type: str,
    query_string: str = "",
    remote_addr: str | None = None,
    headers: Mapping[str, str] | None = None,
    method: str = "POST",
) -> NotificationAnswer:
    """Store, verify and process one notification POSTed to the notify URL of ``merchant_token``.

    Never raises for anything the request contains; the answer says what to send back (see
    :class:`NotificationAnswer`). Must not run inside a transaction (the view is ``non_atomic_requests``).
    """
    headers = headers or {}
    if (
        connection.vendor == "postgresql"
        and isinstance(merchant_token, str)
        and len(body) <= app_settings.NOTIFY_MAX_BODY_BYTES
    ):
        known = _store_known(
            merchant_token,
            body=body,
            content_type=content_type,
            query_string=query_string,
            remote_addr=remote_addr,
            headers=headers,
            method=method,
        )
        if known is not None:
            stored, earlier = known
            assert stored.merchant is not None
            return _run(
                stored,
                stored.merchant,
                body,
                content_type,
                query_string,
                ask_alipay=True,
                earlier=earlier,
            )
    # Metadata only for an oversized body: a hostile body is not kept.
    body_for_store = b"" if len(body) > app_settings.NOTIFY_MAX_BODY_BYTES else body
    notification = _store(
        merchant_token,
        body=body_for_store,
        content_type=content_type,
        query_string=query_string,
        remote_addr=remote_addr,
        headers=headers,
        method=method,
        kind=NotificationKind.UNKNOWN,
    )
    if notification is None:
        return _failure(404, None, NotificationFlag.UNKNOWN_MERCHANT.value, "no merchant has this notify URL")
    if body_for_store is not body:
        _update(notification, body_size=len(body), body_truncated=True)
        return _reject(notification, 413, NotificationFlag.BODY_TOO_LARGE, f"{len(body)} bytes")
    merchant = notification.merchant
    if merchant is None:
        return _reject(
            notification,
            404,
            NotificationFlag.UNKNOWN_MERCHANT,
            f"no merchant has this notify URL; {notification.flag_info}",
        )
    return _run(notification, merchant, body, content_type, query_string, ask_alipay=True)


def _run(
    notification: Notification,
    merchant: Merchant,
    body: bytes,
    content_type: str,
    query_string: str,
    *,
    ask_alipay: bool,
    earlier: _Earlier | None = None,
) -> NotificationAnswer:
    """Verify and process a stored notification; an unexpected error is kept on the row and answered 503."""
    try:
        return _verify_and_process(
            notification, merchant, body, content_type, query_string, ask_alipay=ask_alipay, earlier=earlier
        )
    except Exception as exc:
        logger.exception("notification %s could not be handled", notification.pk)
        _update(
            notification,
            outcome=ProcessingOutcome.ERROR,
            flag=NotificationFlag.PROCESSING_ERROR.value,
            error=_clean(f"{type(exc).__name__}: {exc}", 2000),
            traceback=_clean(traceback_module.format_exc(), 20000),
        )
        return _failure(503, notification, NotificationFlag.PROCESSING_ERROR.value, "processing failed")


def _verify_and_process(
    notification: Notification,
    merchant: Merchant,
    body: bytes,
    content_type: str,
    query_string: str,
    *,
    ask_alipay: bool = True,
    earlier: _Earlier | None = None,
) -> NotificationAnswer:
    try:
        parsed = wire.parse_form(
            body,
            content_type=content_type,
            query_string=query_string,
            max_bytes=app_settings.NOTIFY_MAX_BODY_BYTES,
            default_charset=merchant.charset,
        )
    except NotificationError as exc:
        flag = _flag(exc)
        status = {NotificationFlag.BODY_TOO_LARGE: 413, NotificationFlag.BAD_CONTENT_TYPE: 415}.get(flag, 400)
        return _reject(notification, status, flag, exc.message)

    params = parsed.params
    # Only fields with a value are signed: an empty ``refund_status=`` anyone can append decides nothing.
    is_refund = wire.names_a_refund(params)
    # Kept on the instance; the next write (whatever the outcome) stores them with it.
    _remember(
        notification,
        params=params,
        kind=NotificationKind.REFUND if is_refund else NotificationKind.TRADE,
        notify_id=params.get("notify_id", "")[:128],
        notify_type=params.get("notify_type", "")[:64],
        out_trade_no=(params.get("out_trade_no") or params.get("partner_trans_id") or "")[:128],
        status=(
            params.get("refund_status")
            or params.get("trade_status")
            or params.get("alipay_trans_status")
            or ""
        )[:64],
    )

    try:
        keys = merchant.verification_keys()
        verified = wire.verify_notification(
            parsed, key=keys, allowed_sign_types=_allowed_sign_types(merchant)
        )
    except NotificationError as exc:
        return _reject(notification, 400, _flag(exc), exc.message)
    except (AlipayConfigurationError, AlipayError) as exc:
        # Our keys are broken, not the sender: answer 503 so the notification comes back once they are fixed.
        logger.error(
            "notification %s cannot be verified: merchant %s is misconfigured", notification.pk, merchant.name
        )
        return _reject(
            notification,
            503,
            NotificationFlag.VERIFY_ERROR,
            type(exc).__name__,
            verification=Verification.UNVERIFIABLE,
            outcome=ProcessingOutcome.RETRY,
        )

    # The same notify_id with the same signed content: applied already, it is a duplicate; only ignored (not
    # applied), it is processed again, without asking notify_verify about a notify_id it already confirmed.
    earlier_delivery = _same_delivery(merchant, verified, exclude=notification.pk, known=earlier)
    if earlier_delivery is not None and earlier_delivery.outcome == ProcessingOutcome.PROCESSED:
        _update(
            notification,
            verification=Verification.VERIFIED,
            outcome=ProcessingOutcome.DUPLICATE,
            duplicate_of=earlier_delivery,
            trade_id=earlier_delivery.trade_id,
            refund_id=earlier_delivery.refund_id,
            processed_at=clock.now(),
        )
        _send_received(notification)
        return _success(notification, "duplicate")

    if app_settings.NOTIFY_VERIFY and ask_alipay and earlier_delivery is None:
        try:
            genuine = gateway.client(merchant).notify_verify(
                verified.notify_id or "", deadline=app_settings.NOTIFY_VERIFY_TIMEOUT
            )
        except AlipayError as exc:
            return _reject(
                notification,
                503,
                NotificationFlag.VERIFY_PENDING,
                f"notify_verify did not answer: {type(exc).__name__} {exc.code or ''}".strip(),
                verification=Verification.UNVERIFIABLE,
                outcome=ProcessingOutcome.RETRY,
            )
        if not genuine:
            return _confirm_by_query(notification, merchant, verified)
    notification.verification = Verification.VERIFIED  # written with the processing record
    return _process(notification, merchant, verified)


def _confirm_by_query(
    notification: Notification, merchant: Merchant, verified: wire.VerifiedNotification
) -> NotificationAnswer:
    """notify_verify said false for a correctly signed notification: ask the trade's query instead.

    "false" does not prove a forgery: it is also the answer once a notify_id is older than a minute, and
    should Alipay reuse one notify_id for every resend, a notification refused once (the database was down)
    would be refused at every resend. So the notification itself is never applied; the trade is queried
    (single_trade_query online, alipay.acquire.overseas.query in store), what the query says is applied,
    and the notification is acknowledged only when the query shows the status it reports. No query reports
    a refund: a refund notification is left unapplied for the settlement file (or a later resend).
    """
    params = verified.params
    if notification.kind == NotificationKind.REFUND:
        gateway_id = params.get("out_return_no") or params.get("partner_refund_id") or ""
        refund = (
            Refund.objects.filter(merchant=merchant, gateway_refund_id=gateway_id).first()
            if gateway_id
            else None
        )
        day = settlement.awaiting_file(refund) if refund is not None else None
        later = f"; the settlement file of {day.isoformat()} settles it" if day is not None else ""
        return _reject(
            notification,
            400,
            NotificationFlag.VERIFY_FALSE,
            f"notify_verify did not answer true, and no query reports a refund: not applied{later}",
        )
    out_trade_no = verified.out_trade_no or ""
    trade = (
        Trade.objects.filter(merchant=merchant, out_trade_no=out_trade_no).select_related("merchant").first()
        if 0 < len(out_trade_no) <= 64
        else None
    )
    if trade is None:
        return _reject(
            notification,
            400,
            NotificationFlag.VERIFY_FALSE,
            "notify_verify did not answer true, and the notification names no order of this merchant",
        )
    query = "single_trade_query" if trade.is_online else "alipay.acquire.overseas.query"
    reported = params.get("trade_status") or params.get("alipay_trans_status") or ""
    try:
        change = trades.sync_trade(trade)
    except AlipayError as exc:
        return _reject(
            notification,
            503,
            NotificationFlag.VERIFY_PENDING,
            f"notify_verify did not answer true and {query} failed ({type(exc).__name__} {exc.code or ''}); "
            "left for Alipay to send again",
            verification=Verification.UNVERIFIABLE,
            outcome=ProcessingOutcome.RETRY,
        )
    if change is None or change.flag or trade.status != reported:
        said = "does not know the order" if change is None else f"reports {trade.status}"
        why = f" ({change.message})" if change is not None and change.flag else ""
        return _reject(
            notification,
            400,
            NotificationFlag.VERIFY_FALSE,
            f"notify_verify did not answer true; {query} {said}{why}, not {reported[:32] or 'a status'}: "
            "the notification is not applied",
        )
    notification.verification = Verification.QUERIED
    message = f"notify_verify did not answer true; {query} confirmed {trade.status}, applied from the query"
    result = _Result(
        ProcessingOutcome.PROCESSED, NotificationFlag.VERIFY_FALSE_CONFIRMED, message, trade=trade
    )
    earlier = _applied(merchant, verified.notify_id or "", exclude=notification.pk)
    if earlier is not None:
        result = _Result(ProcessingOutcome.DUPLICATE, trade=trade, duplicate_of=earlier)
    try:
        with transaction.atomic(durable=True):
            _record(notification, result)
    except IntegrityError:
        # Another delivery of this notify_id was acknowledged meanwhile.
        earlier = _applied(merchant, verified.notify_id or "", exclude=notification.pk)
        if earlier is None:
            raise
        result = _Result(ProcessingOutcome.DUPLICATE, trade=trade, duplicate_of=earlier)
        with transaction.atomic(durable=True):
            _record(notification, result)
    return _answer(notification, result)


def _allowed_sign_types(merchant: Merchant) -> list[str]:
    """One sign-type rule for notifications and return visits: the merchant's own, if the app allows it."""
    return [merchant.sign_type] if merchant.sign_type in app_settings.ALLOWED_SIGN_TYPES else []


def _remember(notification: Notification, **fields: Any) -> None:
    for name, value in fields.items():
        setattr(notification, name, value)


def _flag(exc: NotificationError) -> NotificationFlag:
    name = str(getattr(exc, "flag", "") or "malformed")
    if name in _FLAG_NAMES:
        return _FLAG_NAMES[name]
    try:
        return NotificationFlag(name)
    except ValueError:
        return NotificationFlag.MALFORMED


def _same_delivery(
    merchant: Merchant, verified: wire.VerifiedNotification, *, exclude: int, known: _Earlier | None = None
) -> Notification | None:
    """The first earlier acknowledged delivery of this notify_id whose signed fields are the same as these.

    Unsigned (empty) parameters are left out of the comparison: adding one changes nothing Alipay signed.
    ``known``: the deliveries read as the request was stored, used when they are of this notify_id (no
    query then).
    """
    notify_id = verified.notify_id or ""
    if not notify_id:
        return None
    signed = wire.signed_fields(verified.params)
    if known is not None and known.notify_id == notify_id:
        return next((row for row in known.rows if wire.signed_fields(row.params) == signed), None)
    rows = (
        Notification.objects.filter(merchant=merchant, notify_id=notify_id, outcome__in=_ACKNOWLEDGED)
        .exclude(pk=exclude)
        .only("pk", "params", "outcome", "trade", "refund")  # not the stored body and headers
        .order_by("pk")
    )
    return next((row for row in rows if wire.signed_fields(row.params) == signed), None)


def _applied(merchant: Merchant, notify_id: str, *, exclude: int) -> Notification | None:
    """The delivery of this notify_id that was applied (at most one: the unique constraint)."""
    if not notify_id:
        return None
    return (
        Notification.objects.filter(
            merchant=merchant, notify_id=notify_id, outcome=ProcessingOutcome.PROCESSED
        )
        .exclude(pk=exclude)
        .only("pk", "params", "trade", "refund")
        .order_by("pk")
        .first()
    )


def _send_received(notification: Notification) -> None:
    signals.send_on_commit(
        signals.notification_received,
        Notification,
        notification=notification,
        params=dict(notification.params),
    )


# --- processing --------------------------------------------------------------------------------------------


@dataclass
class _Result:
    outcome: ProcessingOutcome
    flag: NotificationFlag | None = None
    message: str = ""
    trade: Trade | None = None
    refund: Refund | None = None
    duplicate_of: Notification | None = None


def _process(
    notification: Notification, merchant: Merchant, verified: wire.VerifiedNotification
) -> NotificationAnswer:
    try:
        with transaction.atomic(durable=True):
            if notification.kind == NotificationKind.REFUND:
                result = _process_refund(notification, merchant, verified)
            else:
                result = _process_trade(notification, merchant, verified)
            _record(notification, result)
    except IntegrityError:
        # Another delivery of this notify_id was applied meanwhile: the unique constraint caught it.
        earlier = _applied(merchant, verified.notify_id or "", exclude=notification.pk)
        if earlier is None:
            raise
        result = _Result(
            ProcessingOutcome.DUPLICATE, duplicate_of=earlier, trade=earlier.trade, refund=earlier.refund
        )
        with transaction.atomic(durable=True):
            _record(notification, result)
    return _answer(notification, result)


def _record(notification: Notification, result: _Result) -> None:
    fields: dict[str, Any] = {
        "outcome": result.outcome,
        "trade": result.trade,
        "refund": result.refund,
        "duplicate_of": result.duplicate_of,
        "processed_at": clock.now(),
    }
    if result.flag is not None:
        fields["flag"] = result.flag.value
        fields["flag_info"] = result.message[:2000]
    for name, value in fields.items():
        setattr(notification, name, value)
    _write(notification, (*_CARRIED, *fields))
    if result.outcome in (ProcessingOutcome.PROCESSED, ProcessingOutcome.DUPLICATE):
        _send_received(notification)
    elif result.flag is not None and result.outcome != ProcessingOutcome.RETRY:
        signals.send_on_commit(
            signals.notification_rejected,
            Notification,
            notification=notification,
            params=dict(notification.params),
            flag=result.flag.value,
        )


def _answer(notification: Notification, result: _Result) -> NotificationAnswer:
    if result.outcome == ProcessingOutcome.RETRY:
        return _failure(404, notification, notification.flag, result.message)
    if result.outcome == ProcessingOutcome.IGNORED and result.flag not in (
        None,
        NotificationFlag.STALE_TRANSITION,
    ):
        alerts.error(
            "genuine Alipay notification %s could not be applied: %s (%s)",
            notification.pk,
            notification.flag,
            result.message,
        )
    return _success(notification, result.message)


@functools.cache
def _duplicate_statement(column: str) -> str:
    """The duplicate lookup of :func:`_duplicate` for the object in ``column`` (trade_id or refund_id)."""
    quote = connection.ops.quote_name
    table, column = quote(Notification._meta.db_table), quote(column)
    return (
        f"SELECT id, params, ({column} = %s AND status = %s) FROM {table} "  # noqa: S608 (our own names)
        f"WHERE merchant_id = %s AND outcome = {_literals((ProcessingOutcome.PROCESSED,))} AND id <> %s "
        f"AND ((notify_id = %s AND notify_id <> '') OR ({column} = %s AND status = %s)) ORDER BY id"
    )


def _duplicate(
    notification: Notification,
    merchant: Merchant,
    *,
    notify_id: str,
    trade: Trade | None = None,
    refund: Refund | None = None,
    status: str,
) -> Notification | None:
    """An earlier *applied* delivery of the same notify_id and signed content, or of the same status for the
    same object (``trade`` or ``refund``).

    A delivery that was stored but not applied (ignored, rejected, retried) never makes a later one a
    duplicate. One query for both (the first such row), a constant statement (no ORM compilation on every
    notification); it runs under the trade's row lock, so it sees what a delivery that held the lock before
    committed.
    """
    column, target = ("refund_id", refund) if refund is not None else ("trade_id", trade)
    assert target is not None
    same = (target.pk, status)
    with connection.cursor() as cursor:
        cursor.execute(_duplicate_statement(column), [*same, merchant.pk, notification.pk, notify_id, *same])
        found = cursor.fetchall()
    signed: dict[str, str] | None = None
    for pk, params, by_status in found:
        if not by_status:
            signed = wire.signed_fields(notification.params) if signed is None else signed
            params = json.loads(params) if isinstance(params, str | bytes) else params
            if wire.signed_fields(params) != signed:
                continue
        return Notification.from_db(connection.alias, ("id",), [pk])
    return None


def _partner_mismatch(merchant: Merchant, params: Mapping[str, str]) -> str | None:
    for name in ("partner", "seller_id", "alipay_seller_id"):
        value = params.get(name)
        if value and value != merchant.partner:
            return f"{name} {value[:32]!r} is not this merchant's partner ID"
    return None


def _stale_time(verified: wire.VerifiedNotification) -> bool:
    sent = verified.notify_time
    return isinstance(sent, datetime) and abs(clock.now() - sent) > NOTIFY_TIME_TOLERANCE


def _locked_trade(**columns: Any) -> Trade | None:
    """The trade with these column values (a unique key), its row locked until the transaction ends.

    On a database with row locks a constant statement (no ORM compilation on every notification).
    """
    if not connection.features.has_select_for_update:
        return Trade.objects.select_for_update().filter(**columns).first()
    return rows.select_one(Trade, lock=True, **columns)


def _process_trade(
    notification: Notification, merchant: Merchant, verified: wire.VerifiedNotification
) -> _Result:
    params = verified.params
    out_trade_no = verified.out_trade_no or ""
    trade = (
        _locked_trade(merchant_id=merchant.pk, out_trade_no=out_trade_no)
        if 0 < len(out_trade_no) <= 64
        else None
    )
    if trade is None:
        return _Result(
            ProcessingOutcome.RETRY,
            NotificationFlag.UNKNOWN_ORDER,
            f"no order {out_trade_no[:64]!r} for this merchant",
        )
    status = params.get("trade_status") or params.get("alipay_trans_status") or ""
    # A trade's status only moves forward, and an applied delivery of a status left the trade at that status
    # or past it: a notification that moves the locked trade forward has no applied earlier delivery, and
    # needs no lookup (the common case: a first payment notification). Any other is looked up.
    earlier = (
        None
        if lifecycle.trade_move_allowed(trade.status, status)
        else _duplicate(
            notification, merchant, notify_id=verified.notify_id or "", trade=trade, status=status
        )
    )
    if earlier is not None:
        return _Result(ProcessingOutcome.DUPLICATE, trade=trade, duplicate_of=earlier)
    if not status:
        return _Result(
            ProcessingOutcome.IGNORED, NotificationFlag.UNKNOWN_STATUS, "no trade status", trade=trade
        )
    mismatch = _partner_mismatch(merchant, params)
    if mismatch:
        return _Result(ProcessingOutcome.IGNORED, NotificationFlag.PARTNER_MISMATCH, mismatch, trade=trade)
    paid_at = verified.get("gmt_payment") or verified.get("alipay_pay_time")
    change = trades.apply_report_locked(
        trade,
        merchant,
        trades.StatusReport(
            status=status,
            amount=params.get("total_fee") or params.get("trans_amount"),
            currency=params.get("currency"),
            trade_no=params.get("trade_no") or params.get("alipay_trans_id"),
            paid_at=paid_at if isinstance(paid_at, datetime) else None,
            buyer_id=params.get("buyer_id") or params.get("alipay_buyer_user_id"),
            buyer_login=params.get("buyer_email") or params.get("alipay_buyer_login_id"),
            payment_type=params.get("payment_type"),
            raw=dict(params),
            source="notification",
        ),
    )
    if change.flag:
        return _Result(ProcessingOutcome.IGNORED, NotificationFlag(change.flag), change.message, trade=trade)
    if _stale_time(verified):
        return _Result(
            ProcessingOutcome.PROCESSED,
            NotificationFlag.STALE_NOTIFY_TIME,
            "notify_time is far from now",
            trade=trade,
        )
    return _Result(ProcessingOutcome.PROCESSED, trade=trade)


def _process_refund(
    notification: Notification, merchant: Merchant, verified: wire.VerifiedNotification
) -> _Result:
    params = verified.params
    gateway_id = params.get("out_return_no") or params.get("partner_refund_id") or ""
    refund = (
        rows.select_one(Refund, merchant_id=merchant.pk, gateway_refund_id=gateway_id) if gateway_id else None
    )
    if refund is None:
        return _Result(
            ProcessingOutcome.IGNORED, NotificationFlag.UNKNOWN_REFUND, f"no refund {gateway_id[:64]!r}"
        )
    trade = _locked_trade(id=refund.trade_id)
    if trade is None:
        raise Trade.DoesNotExist(f"trade {refund.trade_id} of refund {refund.pk}")
    status = params.get("refund_status", "")
    earlier = _duplicate(
        notification, merchant, notify_id=verified.notify_id or "", refund=refund, status=status
    )
    if earlier is not None:
        return _Result(ProcessingOutcome.DUPLICATE, trade=trade, refund=refund, duplicate_of=earlier)
    order = verified.out_trade_no
    if order and order != trade.out_trade_no:
        return _Result(
            ProcessingOutcome.IGNORED,
            NotificationFlag.UNKNOWN_REFUND,
            f"refund {gateway_id} belongs to order {trade.out_trade_no}, not {order[:64]!r}",
            trade=trade,
            refund=refund,
        )
    mismatch = _partner_mismatch(merchant, params)
    if mismatch:
        return _Result(
            ProcessingOutcome.IGNORED, NotificationFlag.PARTNER_MISMATCH, mismatch, trade=trade, refund=refund
        )
    if status == "REFUND_SUCCESS":
        problem = _refund_amount_problem(refund, params)
        if problem is not None:
            flag, message = problem
            return _Result(ProcessingOutcome.IGNORED, flag, message, trade=trade, refund=refund)
        outcome, code = RefundStatus.SUCCEEDED, ""
    elif status == "REFUND_FAIL":
        outcome, code = RefundStatus.FAILED, params.get("error_code", "") or "REFUND_FAIL"
    else:
        return _Result(
            ProcessingOutcome.IGNORED,
            NotificationFlag.UNKNOWN_STATUS,
            f"refund status {status[:32]!r}",
            trade,
            refund,
        )
    refunds.record_result(
        refund, outcome=outcome, code=code, response=dict(params), event=RefundEvent.NOTIFICATION
    )
    if refund.status != outcome:
        return _Result(
            ProcessingOutcome.IGNORED,
            NotificationFlag.CONFLICTING_RESULT,
            f"refund {gateway_id} is already {refund.status}; Alipay now reports {status}",
            trade=trade,
            refund=refund,
        )
    return _Result(ProcessingOutcome.PROCESSED, trade=trade, refund=refund)


def _refund_amount_problem(refund: Refund, params: Mapping[str, str]) -> tuple[NotificationFlag, str] | None:
    currency = params.get("currency")
    if currency and currency != refund.currency:
        return (
            NotificationFlag.CURRENCY_MISMATCH,
            f"refund currency {currency[:8]!r}, expected {refund.currency}",
        )
    for name in ("return_amount", "refund_amount", "refund_fee"):
        text = params.get(name)
        if not text:
            continue
        try:
            reported = trades.reported_amount(text, refund.currency)
        except AlipayError:
            return NotificationFlag.BAD_AMOUNT, f"{name} {text[:32]!r} is not an amount"
        if reported != refund.amount:
            return (
                NotificationFlag.AMOUNT_MISMATCH,
                f"{name} {text[:32]} differs from the refund's {refund.amount}",
            )
    return None


# --- reprocessing ------------------------------------------------------------------------------------------

#: Outcomes that mean nothing was done with a notification, so running it again cannot apply it twice.
_REPROCESSABLE = (ProcessingOutcome.RETRY, ProcessingOutcome.ERROR, ProcessingOutcome.REJECTED)
#: A row still PENDING after this long was abandoned mid-way (the process died), not being worked on.
ABANDONED_AFTER = timedelta(minutes=10)


def reprocess(notification: Notification) -> NotificationAnswer:
    """Run a stored notification that was not acted upon through verification and processing again.

    For what Alipay's own retries did not settle: an order created after its notification arrived, a
    processing error since fixed, merchant keys since corrected. The stored raw bytes are decoded and their
    signature checked again with the merchant's current keys; notify_verify is asked again unless this
    delivery already passed it (Alipay will not confirm an old notify_id twice). The row's outcome columns
    are overwritten and its earlier outcome is kept at the head of ``flag_info``.

    Raises ReprocessNotAllowed for a return_url visit, a row already acted upon (processed, ignored,
    duplicate) or being processed right now, a row naming no merchant, and a body too large to have been
    kept. Must not run inside a transaction, like :func:`receive`.
    """
    fresh = Notification.objects.select_related("merchant").get(pk=notification.pk)
    label = {"id": fresh.pk}
    if fresh.kind == NotificationKind.RETURN:
        raise ReprocessNotAllowed(
            _("Notification %(id)s is a buyer's return visit; it never changes anything.") % label
        )
    abandoned = (
        fresh.outcome == ProcessingOutcome.PENDING and clock.now() - fresh.received_at > ABANDONED_AFTER
    )
    if fresh.outcome not in _REPROCESSABLE and not abandoned:
        if fresh.outcome == ProcessingOutcome.PENDING:
            raise ReprocessNotAllowed(_("Notification %(id)s is being processed right now.") % label)
        raise ReprocessNotAllowed(
            _(
                "Notification %(id)s was already acted upon (%(outcome)s); processing it again could apply "
                "it twice."
            )
            % {**label, "outcome": fresh.get_outcome_display().lower()}
        )
    merchant = fresh.merchant
    if merchant is None:
        raise ReprocessNotAllowed(
            _("Notification %(id)s came to the notify URL of no merchant: no keys can check it.") % label
        )
    if fresh.body_truncated:
        raise ReprocessNotAllowed(
            _("Notification %(id)s was too large to be kept; only Alipay can send it again.") % label
        )
    ask_alipay = fresh.verification != Verification.VERIFIED
    before = fresh.get_outcome_display() + (f" ({fresh.flag})" if fresh.flag else "")
    note = f"Reprocessed at {clock.now().isoformat(timespec='seconds')}; before: {before}."
    # Claimed with a conditional update, so two people pressing "reprocess" at once run it once.
    claimed = Notification.objects.filter(pk=fresh.pk, outcome=fresh.outcome).update(
        outcome=ProcessingOutcome.PENDING,
        verification=Verification.VERIFIED if not ask_alipay else Verification.PENDING,
        flag="",
        flag_info="",
        error="",
        traceback="",
        processed_at=None,
    )
    if not claimed:
        raise ReprocessNotAllowed(_("Notification %(id)s is being processed right now.") % label)
    fresh.refresh_from_db()
    answer = _run(
        fresh, merchant, bytes(fresh.body), fresh.content_type, fresh.query_string, ask_alipay=ask_alipay
    )
    fresh.refresh_from_db()
    _update(fresh, flag_info=f"{note}\n{fresh.flag_info}".strip()[:2000])
    rows.copy_into(notification, fresh)
    return NotificationAnswer(answer.status, answer.body, notification, answer.flag, answer.message)


# --- return_url --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReturnVisit:
    """A buyer's return from the cashier: whether its data is genuine, and the trade it names.

    Never changes state (the URL can be forged or replayed): the page shows "checking..." and relies on the
    notification or a query.
    """

    notification: Notification | None  # None: an unknown return URL past the rate limit, nothing stored
    genuine: bool
    trade: Trade | None


def receive_return(
    merchant_token: str,
    *,
    query_string: str,
    remote_addr: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> ReturnVisit:
    """Store and check a return_url GET; the result is for display only."""
    notification = _store(
        merchant_token,
        body=b"",
        content_type="",
        query_string=query_string,
        remote_addr=remote_addr,
        headers=headers or {},
        method="GET",
        kind=NotificationKind.RETURN,
    )
    if notification is None:
        return ReturnVisit(None, False, None)
    merchant = notification.merchant
    if merchant is None:
        _update(
            notification, flag=NotificationFlag.UNKNOWN_MERCHANT.value, verification=Verification.REJECTED
        )
        return ReturnVisit(notification, False, None)
    try:
        parsed = wire.parse_form(
            b"", content_type=None, query_string=query_string, default_charset=merchant.charset
        )
        _update(notification, params=parsed.params, out_trade_no=parsed.params.get("out_trade_no", "")[:128])
        verified = wire.verify_notification(
            parsed,
            key=merchant.verification_keys(),
            allowed_sign_types=_allowed_sign_types(merchant),
            require_notify_id=False,
        )
    except NotificationError as exc:
        _update(
            notification,
            flag=_flag(exc).value,
            verification=Verification.REJECTED,
            outcome=ProcessingOutcome.IGNORED,
        )
        return ReturnVisit(notification, False, None)
    except (AlipayConfigurationError, AlipayError):
        _update(notification, verification=Verification.UNVERIFIABLE, outcome=ProcessingOutcome.IGNORED)
        return ReturnVisit(notification, False, None)
    trade = Trade.objects.filter(merchant=merchant, out_trade_no=verified.out_trade_no or "").first()
    _update(notification, verification=Verification.VERIFIED, outcome=ProcessingOutcome.IGNORED, trade=trade)
    return ReturnVisit(notification, True, trade)
