"""Sending asynchronous notifications to merchants on Alipay's retry schedule, from a lazy background thread.

Each due notification is POSTed as a form in the request's charset, signed, with a fresh ``notify_id`` per
send (the knob ``NOTIFY_ID_REUSE`` = ``reused`` keeps the first send's notify_id for every resend). It is
resent after 2m, 10m, 10m, 1h, 2h, 6h and 15h (eight sends in all, durations divided by the time scale)
until the merchant answers ``success`` (trimmed, any letter case, with a 2xx status). Every send is recorded
as a :class:`~django_alipay.emulator.models.Delivery`, created *before* the POST so that the merchant's
``notify_verify`` call made while handling it already finds its notify_id.
"""

from __future__ import annotations

import http.client
import logging
import os
import threading
from datetime import datetime, timedelta
from typing import Final
from urllib.parse import urlsplit

from django.db import close_old_connections, connections, transaction
from django.db.models import Min, Q

from django_alipay.protocol.clock import format_datetime
from django_alipay.protocol.signing import sign

from . import alipay_keys
from .conf import runtime, setting
from .ids import new_notify_id
from .models import Delivery, Notification
from .wire import CONTENT_LABELS, form_encode, laid_out

__all__ = ["deliver_due_notifications", "ensure_started", "next_due_in", "stop", "wake"]

logger = logging.getLogger("django_alipay.emulator.notifier")

_RESPONSE_LIMIT: Final = 4096
_IDLE_WAIT: Final = 1.0

_deliver_lock = threading.Lock()
_start_lock = threading.Lock()
_wakeup = threading.Event()
_stopping = threading.Event()
_thread: threading.Thread | None = None
_thread_pid: int | None = None


def acknowledged(status: int | None, text: str) -> bool:
    """Whether a merchant's answer acknowledges a notification: 2xx and the body ``success``."""
    return status is not None and 200 <= status < 300 and text.strip().lower() == "success"


def _post(url: str, body: str, charset: str) -> tuple[int | None, str, str]:
    """POST the form; returns (status, response text, error). Never raises for network trouble.

    The Content-Type names the charset unless the NOTIFY_CHARSET knob says the form names it, or nothing does.
    """
    parts = urlsplit(url)
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    timeout = float(runtime().get("NOTIFY_TIMEOUT"))
    connection = connection_class(parts.netloc, timeout=timeout)
    path = parts.path or "/"
    try:
        connection.request(
            "POST",
            path,
            body=body.encode("ascii"),
            headers={
                "Content-Type": _content_type(charset),
                "User-Agent": "django-alipay-emulator/notifier",
                "Connection": "close",
            },
        )
        response = connection.getresponse()
        raw = response.read(_RESPONSE_LIMIT)
        return response.status, raw.decode(charset, errors="replace"), ""
    except (OSError, http.client.HTTPException) as exc:
        return None, "", f"{type(exc).__name__}: {exc}"[:500]
    finally:
        connection.close()


def _content_type(charset: str) -> str:
    if runtime().get("NOTIFY_CHARSET") == "content_type":
        return f"application/x-www-form-urlencoded; charset={CONTENT_LABELS[charset]}"
    return "application/x-www-form-urlencoded"


def _signed_body(notification: Notification, notify_id: str, notify_time: datetime) -> str:
    params = {"notify_type": notification.notify_type, **notification.params}
    params["notify_id"] = notify_id
    params["notify_time"] = format_datetime(notify_time)
    if runtime().get("NOTIFY_CHARSET") == "form_field":
        # Signed like every field, as in the published sandbox notification sample.
        params["_input_charset"] = notification.charset
    key = alipay_keys.signing_key(notification.sign_type, notification.partner)
    signature = sign(params, sign_type=notification.sign_type, key=key, charset=notification.charset)
    params["sign"] = laid_out(signature, notification.sign_type)
    params["sign_type"] = notification.sign_type
    return form_encode(params, notification.charset)


def _notify_id_for(notification: Notification) -> str:
    """A fresh notify_id per send, or the first send's for every resend (knob NOTIFY_ID_REUSE); its
    length as knob NOTIFY_ID_FORMAT says."""
    state = runtime()
    if state.get("NOTIFY_ID_REUSE") == "reused":
        first = Delivery.objects.filter(notification=notification).order_by("id").first()
        if first is not None:
            return first.notify_id
    return new_notify_id(long=state.get("NOTIFY_ID_FORMAT") == "long")


def _send(
    notification: Notification, attempt: int, *, drop: bool = False, duplicate_of: Delivery | None = None
) -> Delivery:
    """One POST of ``notification``, recorded before and after."""
    state = runtime()
    if duplicate_of is not None:
        notify_id, notify_time, body = duplicate_of.notify_id, duplicate_of.notify_time, duplicate_of.body
    else:
        notify_id, notify_time = _notify_id_for(notification), state.now()
        body = _signed_body(notification, notify_id, notify_time)
    delivery = Delivery.objects.create(
        notification=notification,
        attempt=attempt,
        notify_id=notify_id,
        notify_time=notify_time,
        url=notification.url,
        body=body,
        duplicate=duplicate_of is not None,
        sent_at=state.real_now(),
    )
    if drop:
        delivery.outcome = Delivery.DROPPED
        delivery.error = "dropped by fault injection: never sent"
        delivery.save(update_fields=["outcome", "error"])
        return delivery
    status, text, error = _post(notification.url, body, notification.charset)
    delivery.status_code = status
    delivery.response_text = text
    delivery.error = error
    if acknowledged(status, text):
        delivery.outcome = Delivery.ACKNOWLEDGED
    elif status is None:
        delivery.outcome = Delivery.ERROR
    else:
        delivery.outcome = Delivery.REJECTED
    delivery.save(update_fields=["status_code", "response_text", "error", "outcome"])
    return delivery


def _claim(notification: Notification) -> bool:
    """Take a due notification for this sender; False when another sender took it first.

    The claim is a lease: should this sender die mid-send, the notification falls due again afterwards.
    """
    state = runtime()
    lease = state.real_now() + timedelta(seconds=2 * float(state.get("NOTIFY_TIMEOUT")) + 5)
    return bool(
        Notification.objects.filter(
            pk=notification.pk, state=Notification.PENDING, next_attempt_at=notification.next_attempt_at
        ).update(next_attempt_at=lease)
    )


def _attempt(notification: Notification) -> list[Delivery]:
    state = runtime()
    schedule = tuple(float(gap) for gap in state.get("RETRY_SCHEDULE"))
    attempt = notification.attempts + 1
    decision = state.faults.notification_decision()
    deliveries = [_send(notification, attempt, drop=decision.drop)]
    if decision.duplicate:
        deliveries.append(_send(notification, attempt, duplicate_of=deliveries[0]))
    notification.attempts = attempt
    if any(d.outcome == Delivery.ACKNOWLEDGED for d in deliveries):
        notification.state = Notification.ACKNOWLEDGED
        notification.next_attempt_at = None
    elif attempt > len(schedule):
        notification.state = Notification.GAVE_UP
        notification.next_attempt_at = None
    else:
        # The gap counts from this send, as Alipay's "2m, 10m, 10m ..." are intervals between sends.
        notification.next_attempt_at = deliveries[0].sent_at + timedelta(
            seconds=state.real_seconds(schedule[attempt - 1])
        )
    notification.save(update_fields=["attempts", "state", "next_attempt_at"])
    return deliveries


def deliver_due_notifications() -> list[Delivery]:
    """Send every notification that is due now, once each; return the deliveries made.

    The background thread calls this; tests that disable the thread (``ALIPAY_EMULATOR =
    {"NOTIFIER_THREAD": False}``) call it themselves. Safe to call from several threads at once.
    """
    made: list[Delivery] = []
    with _deliver_lock:
        state = runtime()
        now = state.real_now()
        pending = Notification.objects.select_related("partner", "trade").filter(state=Notification.PENDING)
        condition = Q(next_attempt_at__lte=now)
        if state.faults.out_of_order and pending.filter(condition).exists():
            # First sends were held back by the fault's hold time: once one is due, send every held one
            # with it, newest first, so that later news overtakes earlier news.
            condition |= Q(attempts=0, next_attempt_at__lte=now + timedelta(seconds=state.faults.hold))
        due = list(pending.filter(condition).order_by("-id" if state.faults.out_of_order else "id"))
        for notification in due:
            with transaction.atomic():
                claimed = _claim(notification)
            if claimed:
                made.extend(_attempt(notification))
    return made


def next_due_in() -> float | None:
    """Real seconds until the next pending notification is due (0 when overdue); None when none is pending."""
    earliest = Notification.objects.filter(
        state=Notification.PENDING, next_attempt_at__isnull=False
    ).aggregate(first=Min("next_attempt_at"))["first"]
    if earliest is None:
        return None
    return max(0.0, (earliest - runtime().real_now()).total_seconds())


def _run() -> None:
    """The notifier thread: deliver what is due, then sleep until the next due time or a wake-up."""
    while not _stopping.is_set():
        wait = _IDLE_WAIT
        try:
            close_old_connections()
            deliver_due_notifications()
            due_in = next_due_in()
            if due_in is not None:
                wait = min(wait, due_in)
        except Exception:  # a broken database must not kill the thread for good
            logger.exception("the emulator's notifier failed; retrying")
        finally:
            connections.close_all()
        _wakeup.wait(wait)
        _wakeup.clear()


def ensure_started() -> None:
    """Start the notifier thread once per process (again after a fork), unless NOTIFIER_THREAD is off."""
    global _thread, _thread_pid
    if not setting("NOTIFIER_THREAD"):
        return
    pid = os.getpid()
    if _thread is not None and _thread_pid == pid and _thread.is_alive():
        return
    with _start_lock:
        if _thread is not None and _thread_pid == pid and _thread.is_alive():
            return
        _stopping.clear()
        _thread = threading.Thread(target=_run, name="django-alipay-emulator-notifier", daemon=True)
        _thread_pid = pid
        _thread.start()


def wake() -> None:
    """Tell the notifier that something new may be due (starting it if needed)."""
    ensure_started()
    _wakeup.set()


def stop(timeout: float = 5.0) -> None:
    """Stop the notifier thread (the standalone server calls this on shutdown)."""
    global _thread
    _stopping.set()
    _wakeup.set()
    thread = _thread
    if thread is not None and thread.is_alive() and thread is not threading.current_thread():
        thread.join(timeout)
    _thread = None
