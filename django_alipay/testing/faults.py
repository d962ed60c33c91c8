"""Name the gateway faults a shop's test wants and turn them into the emulator's JSON fault plan.

``inject(drop("forex_refund", limit=1))`` reads better than the plan it stands for::

    {"services": {"forex_refund": {"drop_rate": 1.0, "limit": 1}}}

Each helper returns a :class:`Fault`; :func:`build_plan` merges several into one plan (faults on the same
service share one rule, as the emulator wants). A raw plan fragment (a dict) may be mixed in for anything the
helpers do not name. :class:`FaultInjector` keeps the plan of one emulator and sends it there.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from django_alipay.protocol.errors import InvalidParameterError

__all__ = [
    "Fault",
    "FaultInjector",
    "build_plan",
    "drop",
    "drop_notifications",
    "duplicate_notifications",
    "exempt",
    "http_502",
    "latency",
    "notifications_out_of_order",
    "system_error",
    "truncate",
    "unsigned",
]

#: Gateway fault kinds and the rate key each one sets in the emulator's rule.
GATEWAY_KINDS: Final = {
    "system_error": "system_error_rate",
    "http_502": "http_502_rate",
    "drop": "drop_rate",
    "truncate": "truncate_rate",
    "unsigned": "unsigned_rate",
}
NOTIFICATION_KINDS: Final = {"drop_notifications": "drop_rate", "duplicate_notifications": "duplicate_rate"}
_OTHER_KINDS: Final = ("latency", "exempt", "out_of_order")


@dataclass(frozen=True)
class Fault:
    """One fault to inject: its ``kind``, where (``service``; None = every service), how often and how long.

    ``rate`` is the probability a call is hit (1 = every call), ``limit`` caps how many calls the rule may
    hit, ``seconds`` is the latency (``latency``) or hold time (``out_of_order``).
    """

    kind: str
    service: str | None = None
    rate: float = 1.0
    limit: int | None = None
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in (*GATEWAY_KINDS, *NOTIFICATION_KINDS, *_OTHER_KINDS):
            raise InvalidParameterError(f"unknown fault kind {self.kind!r}", parameter="kind")
        if isinstance(self.rate, bool) or not isinstance(self.rate, int | float) or not 0 <= self.rate <= 1:
            raise InvalidParameterError("rate must be a number between 0 and 1", parameter="rate")
        if self.limit is not None and (
            isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 0
        ):
            raise InvalidParameterError("limit must be a whole number of calls, or None", parameter="limit")
        if (
            isinstance(self.seconds, bool)
            or not isinstance(self.seconds, int | float)
            or not 0 <= self.seconds <= 600
        ):
            raise InvalidParameterError("seconds must be between 0 and 600", parameter="seconds")


def system_error(service: str | None = None, *, rate: float = 1.0, limit: int | None = None) -> Fault:
    """``is_success=F`` with ``SYSTEM_ERROR``: the call was not processed, a retry is safe."""
    return Fault("system_error", service, rate, limit)


def http_502(service: str | None = None, *, rate: float = 1.0, limit: int | None = None) -> Fault:
    """HTTP 502 with a load balancer's HTML page, after the call was processed."""
    return Fault("http_502", service, rate, limit)


def drop(service: str | None = None, *, rate: float = 1.0, limit: int | None = None) -> Fault:
    """The connection closes without an answer, after the call was processed: the outcome is unknown."""
    return Fault("drop", service, rate, limit)


def truncate(service: str | None = None, *, rate: float = 1.0, limit: int | None = None) -> Fault:
    """HTTP 200 with the XML cut in half, after the call was processed."""
    return Fault("truncate", service, rate, limit)


def unsigned(service: str | None = None, *, rate: float = 1.0, limit: int | None = None) -> Fault:
    """A success envelope without ``<sign>``/``<sign_type>``, after the call was processed."""
    return Fault("unsigned", service, rate, limit)


def latency(seconds: float, service: str | None = None, *, limit: int | None = None) -> Fault:
    """The answer arrives ``seconds`` late (the call is processed)."""
    return Fault("latency", service, 1.0, limit, seconds)


def exempt(service: str) -> Fault:
    """Keep ``service`` free of the faults set for every service (an empty rule replaces the global one)."""
    return Fault("exempt", service)


def drop_notifications(*, rate: float = 1.0, limit: int | None = None) -> Fault:
    """Notification sends are skipped (recorded as dropped); Alipay's retries continue on schedule."""
    return Fault("drop_notifications", None, rate, limit)


def duplicate_notifications(*, rate: float = 1.0, limit: int | None = None) -> Fault:
    """The same notification (same notify_id) arrives twice."""
    return Fault("duplicate_notifications", None, rate, limit)


def notifications_out_of_order(*, hold: float = 0.5) -> Fault:
    """First sends wait ``hold`` real seconds, then go newest first (later news overtakes earlier news)."""
    return Fault("out_of_order", None, 1.0, None, hold)


def _set_limit(rule: dict[str, Any], limit: int | None, where: str) -> None:
    if limit is None:
        return
    if rule.get("limit") not in (None, limit):
        raise InvalidParameterError(
            f"two faults on {where} ask for different limits ({rule['limit']} and {limit}); a rule has one",
            parameter="limit",
        )
    rule["limit"] = limit


def _merge(target: dict[str, Any], fragment: Mapping[str, Any]) -> None:
    for name, value in fragment.items():
        if isinstance(value, Mapping) and isinstance(target.get(name), dict):
            _merge(target[name], value)
        else:
            target[name] = copy.deepcopy(dict(value)) if isinstance(value, Mapping) else value


def _add(plan: dict[str, Any], fault: Fault) -> None:
    if fault.kind in NOTIFICATION_KINDS or fault.kind == "out_of_order":
        rule = plan.setdefault("notifications", {})
        if fault.kind == "out_of_order":
            rule.update(out_of_order=True, hold=fault.seconds)
        else:
            rule[NOTIFICATION_KINDS[fault.kind]] = fault.rate
        _set_limit(rule, fault.limit, "notifications")
        return
    if fault.service is None:
        if fault.kind == "exempt":
            raise InvalidParameterError("exempt() needs a service", parameter="service")
        rule = plan.setdefault("global", {})
        where = "every service"
    else:
        rule = plan.setdefault("services", {}).setdefault(fault.service, {})
        where = fault.service
    if fault.kind == "latency":
        rule["latency"] = fault.seconds
    elif fault.kind in GATEWAY_KINDS:
        rule[GATEWAY_KINDS[fault.kind]] = fault.rate
    _set_limit(rule, fault.limit, where)


def build_plan(
    *faults: Fault | Mapping[str, Any], seed: int | None = None, base: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The emulator fault plan (``POST control/faults`` body) for ``faults``, added to ``base`` if given.

    A Mapping among ``faults`` is a raw plan fragment, merged key by key. ``seed`` fixes the random draws
    of rates below 1 (same plan and calls, same faults).
    """
    plan: dict[str, Any] = copy.deepcopy(dict(base or {}))
    for fault in faults:
        if isinstance(fault, Fault):
            _add(plan, fault)
        elif isinstance(fault, Mapping):
            _merge(plan, fault)
        else:
            raise InvalidParameterError(
                f"expected a Fault or a plan fragment (dict), not {type(fault).__name__}", parameter="faults"
            )
    if seed is not None:
        plan["seed"] = seed
    return plan


class FaultInjector:
    """The fault plan of one emulator: ``inject`` adds faults to it, ``clear`` removes them all.

    ``apply`` sends a whole plan to the emulator (``None`` clears it) and returns the emulator's view of it,
    with the ``fired`` counters; the emulator answers for a plan it refuses (unknown service rule keys,
    out-of-range values) with an error.
    """

    def __init__(self, apply: Callable[[dict[str, Any] | None], dict[str, Any]]) -> None:
        self._apply = apply
        self._plan: dict[str, Any] = {}

    @property
    def plan(self) -> dict[str, Any]:
        """The plan injected so far (a copy)."""
        return copy.deepcopy(self._plan)

    def inject(self, *faults: Fault | Mapping[str, Any], seed: int | None = None) -> dict[str, Any]:
        """Add ``faults`` to the current plan and send it; returns the emulator's plan (with ``fired``)."""
        plan = build_plan(*faults, seed=seed, base=self._plan)
        answer = self._apply(plan)
        self._plan = plan
        return answer

    def replace(self, plan: Mapping[str, Any]) -> dict[str, Any]:
        """Send ``plan`` as it is (the emulator's JSON format), replacing everything injected before."""
        answer = self._apply(dict(plan))
        self._plan = copy.deepcopy(dict(plan))
        return answer

    def clear(self) -> dict[str, Any]:
        """Remove every fault."""
        answer = self._apply(None)
        self._plan = {}
        return answer
