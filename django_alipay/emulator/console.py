"""The emulator's console for people: the index page's forms that move the clock, set faults and resend
notifications, each handled by a small view calling the emulator's own functions (not the JSON control API).

Every form carries Django's CSRF token; a refused form shows the index page again with the reason next to the
form (HTTP 400), a successful one returns to the index page (post/redirect/get).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo
from typing import Any, Final

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_protect, ensure_csrf_cookie
from django.views.decorators.http import require_POST

from django_alipay.protocol.clock import BEIJING, FixedClock, format_datetime

from . import alipay_keys, notifier
from .conf import runtime
from .faults import (
    GATEWAY_RATES,
    NOTIFICATION_RATES,
    FaultPlan,
    FaultPlanError,
    GatewayRule,
    NotificationRule,
)
from .gateway import SERVICES
from .models import Notification, Partner, Trade
from .seed import BUYERS, PASSWORD
from .views import emulator_view

__all__ = ["clock", "faults", "index", "notifications", "parse_clock_time"]

#: "…T10:00:00 08:00": a "+" that form decoding (``-d now=...+08:00``) turned into a space.
_SPACED_OFFSET: Final = re.compile(r"(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}(?::?\d{2})?)$")
#: Where a fault may go: every service, one service, or the notifications.
GLOBAL: Final = "global"
NOTIFICATIONS: Final = "notifications"


def parse_clock_time(text: str, *, naive: tzinfo | None = None) -> datetime:
    """A time for the emulator clock: ISO-8601 (``T`` or a space between date and time) with an offset.

    A ``+`` turned into a space by form decoding (``2024-05-01T23:59:59 08:00``) is read as ``+``. A time
    without an offset is in ``naive`` (the console: Beijing time); with ``naive`` None it is refused.
    ValueError says what was expected.
    """
    cleaned = _SPACED_OFFSET.sub(r"\1+\2", text.strip())
    try:
        when = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: write it as 2024-05-01 23:59:59 (Beijing time) or ISO-8601 with an "
            "offset, e.g. 2024-05-01T23:59:59+08:00"
        ) from None
    if when.tzinfo is None or when.utcoffset() is None:
        if naive is None:
            raise ValueError("now needs a UTC offset, e.g. +08:00: a naive time is ambiguous")
        when = when.replace(tzinfo=naive)
    return when


def _fault_rows() -> list[dict[str, Any]]:
    """The faults in force, one row per target and fault, with how often each has fired."""
    plan = runtime().faults.as_dict()
    rules: list[tuple[str, dict[str, Any] | None]] = [(GLOBAL, plan["global"])]
    rules += sorted(plan["services"].items())
    rules.append((NOTIFICATIONS, plan["notifications"]))
    rows = []
    for target, rule in rules:
        if not rule:
            continue
        for name, value in rule.items():
            if value and (name.endswith("_rate") or name == "latency"):
                rows.append(
                    {
                        "target": target,
                        "fault": name,
                        "value": value,
                        "limit": rule["limit"],
                        "fired": rule["fired"],
                    }
                )
    return rows


def _page(request: HttpRequest, *, errors: dict[str, str] | None = None, status: int = 200) -> HttpResponse:
    state = runtime()
    now = state.now()
    context = {
        "gateway_url": request.build_absolute_uri(reverse("django_alipay_emulator:gateway")),
        "buyers": BUYERS,
        "password": PASSWORD,
        "partners": Partner.objects.all(),
        "fingerprints": {name: data["fingerprint"] for name, data in alipay_keys.public_keys().items()},
        "now": now,
        "now_beijing": format_datetime(now),
        "clock_fixed": isinstance(state.clock, FixedClock),
        "time_scale": state.time_scale,
        "timestamp_tolerance": state.get("TIMESTAMP_TOLERANCE"),
        "fault_rows": _fault_rows(),
        "fault_targets": [GLOBAL, *sorted(SERVICES), NOTIFICATIONS],
        "fault_kinds": [*GATEWAY_RATES, "latency", *(f"notification {name}" for name in NOTIFICATION_RATES)],
        "notifications": Notification.objects.select_related("trade").order_by("-id")[:20],
        "recent_trades": Trade.objects.select_related("partner")
        .prefetch_related("refunds")
        .order_by("-id")[:20],
        "errors": errors or {},
        "form": request.POST if request.method == "POST" else {},
    }
    return render(request, "django_alipay_emulator/index.html", context, status=status)


def _back(anchor: str) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("django_alipay_emulator:index") + f"#{anchor}")


@ensure_csrf_cookie  # the standalone emulator has no CSRF middleware to set it
@emulator_view
def index(request: HttpRequest) -> HttpResponse:
    """The console: gateway, clock, faults, notifications, trades with their refunds, test buyers."""
    return _page(request)


@csrf_protect
@require_POST
@emulator_view
def clock(request: HttpRequest) -> HttpResponse:
    """Stand the clock at a Beijing time, move it a day on, or let it run with the real time again."""
    state = runtime()
    action = request.POST.get("action", "")
    if action == "real":
        state.set_clock(None)
    elif action == "day":
        state.advance_clock(timedelta(days=1).total_seconds())
    elif action == "set":
        try:
            state.set_clock(parse_clock_time(request.POST.get("now", ""), naive=BEIJING))
        except ValueError as exc:
            return _page(request, errors={"clock": str(exc)}, status=400)
    else:
        return _page(request, errors={"clock": _("Choose what to do with the clock.")}, status=400)
    notifier.wake()
    return _back("clock")


@csrf_protect
@require_POST
@emulator_view
def faults(request: HttpRequest) -> HttpResponse:
    """Add one fault (a rate, or latency in seconds, for every service, one service or the notifications),
    or clear them all."""
    state = runtime()
    if request.POST.get("action") == "clear":
        state.faults = FaultPlan(seed=state.faults.seed)
        return _back("faults")
    target = request.POST.get("target", "")
    kind = request.POST.get("fault", "").removeprefix("notification ")
    value = request.POST.get("value", "").strip()
    limit = request.POST.get("limit", "").strip()
    try:
        number = float(value)
        rule: dict[str, Any] = {kind: number}
        if limit:
            rule["limit"] = int(limit)
        with state.lock:
            plan = state.faults
            if target == NOTIFICATIONS:
                if kind not in NOTIFICATION_RATES:
                    raise FaultPlanError(f"notifications take {', '.join(NOTIFICATION_RATES)}, not {kind}")
                merged = {**_settings(plan.notifications.as_dict()), **rule}
                plan.notifications = NotificationRule.parse(merged)
            elif target == GLOBAL or target in SERVICES:
                current = plan.global_rule if target == GLOBAL else plan.services.get(target)
                merged = {**_settings(current.as_dict() if current else {}), **rule}
                parsed = GatewayRule.parse(merged, target)
                if target == GLOBAL:
                    plan.global_rule = parsed
                else:
                    plan.services[target] = parsed
            else:
                raise FaultPlanError(f"{target!r} is not a service")
    except (ValueError, FaultPlanError) as exc:
        message = str(exc) if isinstance(exc, FaultPlanError) else _("The value and limit must be numbers.")
        return _page(request, errors={"faults": message}, status=400)
    return _back("faults")


def _settings(rule: dict[str, Any]) -> dict[str, Any]:
    """A rule's settings without its counters, ready to parse again."""
    return {name: value for name, value in rule.items() if name != "fired" and value is not None}


@csrf_protect
@require_POST
@emulator_view
def notifications(request: HttpRequest) -> HttpResponse:
    """Resend one notification now (whatever its state), or send every notification that is due."""
    wanted = request.POST.get("notification", "")
    if wanted:
        updated = Notification.objects.filter(pk=int(wanted) if wanted.isdigit() else 0).update(
            state=Notification.PENDING, next_attempt_at=runtime().real_now()
        )
        if not updated:
            return _page(request, errors={"notifications": _("No such notification.")}, status=400)
    notifier.deliver_due_notifications()
    return _back("notifications")
