"""Fault injection: a seeded, JSON-configured plan of gateway and notification failures to play back.

A plan looks like this (every part optional)::

    {"seed": 7,
     "global": {"system_error_rate": 0.1, "latency": 0.2},
     "services": {"forex_refund": {"drop_rate": 1.0, "limit": 1}},
     "notifications": {"drop_rate": 0.5, "duplicate_rate": 0.0, "out_of_order": false, "hold": 0.5}}

A service's rule replaces the global rule for that service. Rates are probabilities between 0 and 1, drawn
from one ``random.Random(seed)`` in a fixed order, so the same plan and the same sequence of calls give the
same faults. ``limit`` caps how many calls of a rule may be hit by a fault (then the rule goes quiet).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["FaultPlan", "FaultPlanError", "GatewayDecision", "NotificationDecision"]

#: Gateway faults in the order they are drawn; the first one that fires wins (latency is independent).
GATEWAY_RATES: Final = ("system_error_rate", "http_502_rate", "drop_rate", "truncate_rate", "unsigned_rate")
NOTIFICATION_RATES: Final = ("drop_rate", "duplicate_rate")


class FaultPlanError(ValueError):
    """A fault plan is not valid; the message says which key and why."""


def _rate(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise FaultPlanError(f"{where} must be a number between 0 and 1")
    return float(value)


def _seconds(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 600:
        raise FaultPlanError(f"{where} must be a number of seconds between 0 and 600")
    return float(value)


def _limit(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FaultPlanError(f"{where} must be a whole number of calls, or null")
    return value


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise FaultPlanError(f"{where} must be a JSON object")
    return value


@dataclass
class GatewayRule:
    """Faults for gateway.do calls of one service (or of all services)."""

    system_error_rate: float = 0.0
    http_502_rate: float = 0.0
    drop_rate: float = 0.0
    truncate_rate: float = 0.0
    unsigned_rate: float = 0.0
    latency: float = 0.0
    limit: int | None = None
    fired: int = 0

    @classmethod
    def parse(cls, data: object, where: str) -> GatewayRule:
        """Build a rule from its JSON object; FaultPlanError on unknown keys or bad values."""
        raw = _mapping(data, where)
        unknown = sorted(set(raw) - {*GATEWAY_RATES, "latency", "limit"})
        if unknown:
            raise FaultPlanError(
                f"{where} has unknown key(s) {', '.join(unknown)}; "
                f"known: {', '.join((*GATEWAY_RATES, 'latency', 'limit'))}"
            )
        rule = cls(latency=_seconds(raw.get("latency", 0), f"{where}.latency"))
        rule.limit = _limit(raw.get("limit"), f"{where}.limit")
        for name in GATEWAY_RATES:
            setattr(rule, name, _rate(raw.get(name, 0), f"{where}.{name}"))
        return rule

    def as_dict(self) -> dict[str, Any]:
        """The rule as JSON-ready data, with how often it has fired."""
        data: dict[str, Any] = {name: getattr(self, name) for name in GATEWAY_RATES}
        data.update(latency=self.latency, limit=self.limit, fired=self.fired)
        return data


@dataclass
class NotificationRule:
    """Faults for outgoing notifications."""

    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    out_of_order: bool = False
    hold: float = 0.5
    limit: int | None = None
    fired: int = 0

    @classmethod
    def parse(cls, data: object) -> NotificationRule:
        """Build the notification rule from its JSON object."""
        raw = _mapping(data, "notifications")
        known = {*NOTIFICATION_RATES, "out_of_order", "hold", "limit"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise FaultPlanError(
                f"notifications has unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        out_of_order = raw.get("out_of_order", False)
        if not isinstance(out_of_order, bool):
            raise FaultPlanError("notifications.out_of_order must be true or false")
        return cls(
            drop_rate=_rate(raw.get("drop_rate", 0), "notifications.drop_rate"),
            duplicate_rate=_rate(raw.get("duplicate_rate", 0), "notifications.duplicate_rate"),
            out_of_order=out_of_order,
            hold=_seconds(raw.get("hold", 0.5), "notifications.hold"),
            limit=_limit(raw.get("limit"), "notifications.limit"),
        )

    def as_dict(self) -> dict[str, Any]:
        """The rule as JSON-ready data."""
        return {
            "drop_rate": self.drop_rate,
            "duplicate_rate": self.duplicate_rate,
            "out_of_order": self.out_of_order,
            "hold": self.hold,
            "limit": self.limit,
            "fired": self.fired,
        }


@dataclass(frozen=True)
class GatewayDecision:
    """What to do to one gateway call."""

    latency: float = 0.0
    system_error: bool = False
    http_502: bool = False
    drop: bool = False
    truncate: bool = False
    unsigned: bool = False

    @property
    def name(self) -> str | None:
        """The fault applied, for the call log (latency alone is not named)."""
        for name in ("system_error", "http_502", "drop", "truncate", "unsigned"):
            if getattr(self, name):
                return name
        return None


@dataclass(frozen=True)
class NotificationDecision:
    """What to do to one notification send."""

    drop: bool = False
    duplicate: bool = False


@dataclass
class FaultPlan:
    """A parsed fault plan and its random generator; thread-safe."""

    seed: int = 0
    global_rule: GatewayRule | None = None
    services: dict[str, GatewayRule] = field(default_factory=dict)
    notifications: NotificationRule = field(default_factory=NotificationRule)
    _random: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    @classmethod
    def parse(cls, data: object, *, default_seed: int = 0) -> FaultPlan:
        """Build a plan from its JSON object (see the module docstring); FaultPlanError when invalid."""
        raw = _mapping(data, "the fault plan")
        unknown = sorted(set(raw) - {"seed", "global", "services", "notifications"})
        if unknown:
            raise FaultPlanError(
                f"the fault plan has unknown key(s) {', '.join(unknown)}; "
                "known: seed, global, services, notifications"
            )
        seed = raw.get("seed", default_seed)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise FaultPlanError("seed must be a whole number")
        plan = cls(seed=seed)
        if raw.get("global") is not None:
            plan.global_rule = GatewayRule.parse(raw["global"], "global")
        for name, rule in _mapping(raw.get("services", {}), "services").items():
            plan.services[str(name)] = GatewayRule.parse(rule, f"services.{name}")
        if raw.get("notifications") is not None:
            plan.notifications = NotificationRule.parse(raw["notifications"])
        return plan

    def as_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data, with fired counters."""
        return {
            "seed": self.seed,
            "global": self.global_rule.as_dict() if self.global_rule else None,
            "services": {name: rule.as_dict() for name, rule in self.services.items()},
            "notifications": self.notifications.as_dict(),
        }

    def _draw(self, rate: float) -> bool:
        # Nothing is drawn for a zero rate, so adding a rule elsewhere does not shift this rule's sequence.
        return rate > 0 and self._random.random() < rate

    def gateway_decision(self, service: str) -> GatewayDecision:
        """Decide the faults of one gateway call of ``service``."""
        with self._lock:
            rule = self.services.get(service, self.global_rule)
            if rule is None or (rule.limit is not None and rule.fired >= rule.limit):
                return GatewayDecision()
            chosen = next((name for name in GATEWAY_RATES if self._draw(getattr(rule, name))), None)
            if chosen is None and rule.latency == 0:
                return GatewayDecision()
            rule.fired += 1
            flags = {chosen.removesuffix("_rate"): True} if chosen else {}
            return GatewayDecision(latency=rule.latency, **flags)

    def notification_decision(self) -> NotificationDecision:
        """Decide the faults of one notification send."""
        with self._lock:
            rule = self.notifications
            if rule.limit is not None and rule.fired >= rule.limit:
                return NotificationDecision()
            drop = self._draw(rule.drop_rate)
            duplicate = not drop and self._draw(rule.duplicate_rate)
            if drop or duplicate:
                rule.fired += 1
            return NotificationDecision(drop=drop, duplicate=duplicate)

    @property
    def out_of_order(self) -> bool:
        """Whether notifications are held and then delivered newest first."""
        return self.notifications.out_of_order

    @property
    def hold(self) -> float:
        """Real seconds a new notification waits before its first send when out_of_order is on."""
        return self.notifications.hold if self.notifications.out_of_order else 0.0
