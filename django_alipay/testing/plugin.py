"""The pytest plugin of django_alipay: fixtures for the gateway emulator, the Beijing clock and faults.

Loaded through the ``pytest11`` entry point (or ``-p django_alipay.testing.plugin``). Importing it costs
nothing and needs no Django: every fixture imports what it uses when a test asks for it, so a project that
never uses these fixtures (or does not use Django at all) is not affected.

Fixtures: ``alipay_emulator`` (a fresh emulator process per test; options with the ``alipay_emulator``
mark), ``alipay_emulator_session`` (one process for the whole session), ``alipay_clock`` (the domain clock
standing at a chosen Beijing time; start time with the ``alipay_clock`` mark), ``alipay_faults`` (fault
injection into the emulator the test uses, cleared afterwards).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from django_alipay.testing.clock import BeijingClock
    from django_alipay.testing.emulator import EmulatorProcess
    from django_alipay.testing.faults import FaultInjector

__all__ = ["alipay_clock", "alipay_emulator", "alipay_emulator_session", "alipay_faults"]


def pytest_configure(config: pytest.Config) -> None:
    """Register the plugin's marks (so ``--strict-markers`` projects accept them)."""
    config.addinivalue_line(
        "markers",
        "alipay_emulator(**options): options of the alipay_emulator fixture: merchant_key ('RSA', 'DSA' or "
        "None), sign_types, services, time_scale, refund_interval, notifier, seed, partner, md5_key.",
    )
    config.addinivalue_line(
        "markers",
        "alipay_clock(when): where the alipay_clock fixture starts, e.g. '2024-03-01 23:59:59' (Beijing).",
    )


def _refunds_module() -> Any:
    """django_alipay's refunds module when this run has Django set up with the app, else None.

    Imports nothing of Django itself: a run that has not loaded Django is left as it is.
    """
    if "django.apps" not in sys.modules:
        return None
    try:
        from django.apps import apps
        from django.conf import settings

        if not settings.configured or not apps.ready or not apps.is_installed("django_alipay"):
            return None
        from django_alipay.domain import refunds
    except Exception:  # no Django, or a project without the app: nothing to do
        return None
    return refunds


def blackout_only_on_a_fixed_clock() -> bool:
    """The asynchronous-refund window (00:00-01:30 Beijing) applies only while a test has fixed the clock."""
    from django_alipay.domain import clock
    from django_alipay.protocol.clock import SystemClock

    return not isinstance(clock.get_clock(), SystemClock)


@pytest.fixture(autouse=True)
def _alipay_refunds_sync_on_the_real_clock() -> Iterator[None]:
    """A test on the real clock sends refunds synchronously whatever the time of day.

    Alipay does not execute synchronous refunds between 00:00 and 01:30 Beijing time, so the library sends
    them asynchronously then; a suite that happens to run in that window would otherwise see different
    results from the rest of the day. A test about the window fixes the clock (``alipay_clock``).
    """
    refunds = _refunds_module()
    if refunds is None:
        yield
        return
    previous = refunds.blackout_applies
    refunds.blackout_applies = blackout_only_on_a_fixed_clock
    try:
        yield
    finally:
        refunds.blackout_applies = previous


def _start(options: dict[str, Any]) -> EmulatorProcess:
    from django_alipay.protocol.errors import AlipayError
    from django_alipay.testing.emulator import EmulatorProcess

    try:
        return EmulatorProcess(**options).start()
    except AlipayError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def alipay_emulator(request: pytest.FixtureRequest) -> Iterator[EmulatorProcess]:
    """A gateway emulator process for this test, stopped afterwards.

    It has a random partner id, MD5 key and merchant RSA key pair, and notifications wait until asked for
    (``.notifications()``). Options: ``@pytest.mark.alipay_emulator(merchant_key="DSA", time_scale=100)``.
    """
    marker = request.node.get_closest_marker("alipay_emulator")
    options = dict(marker.kwargs) if marker is not None else {}
    emulator = _start(options)
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def alipay_emulator_session() -> Iterator[EmulatorProcess]:
    """One emulator process shared by every test of the session (faster; state carries over).

    Use distinct order numbers per test. Faults injected through ``alipay_faults`` are cleared after each
    test; a clock set with ``.set_clock()`` is not: free it with ``.set_clock("real")``.
    """
    emulator = _start({})
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def alipay_clock(request: pytest.FixtureRequest) -> Iterator[BeijingClock]:
    """The domain clock standing still at a Beijing time; the previous clock comes back afterwards.

    Starts at the ``alipay_clock`` mark's time (``@pytest.mark.alipay_clock("2024-03-01 23:59:59")``), else at
    the current second. Move it with ``.set_beijing("2024-03-02 00:00:00")`` or ``.advance(seconds=1)``.
    """
    from django_alipay.testing.clock import standing_at

    marker = request.node.get_closest_marker("alipay_clock")
    when = marker.args[0] if marker is not None and marker.args else None
    with standing_at(when) as clock:
        yield clock


def _mounted_emulator_api() -> Any:
    from django.core.exceptions import ImproperlyConfigured

    try:
        from django_alipay.emulator import api
    except (ImportError, RuntimeError, ImproperlyConfigured) as exc:
        pytest.fail(
            "alipay_faults needs the alipay_emulator (or alipay_emulator_session) fixture, or the emulator "
            "app django_alipay.emulator in INSTALLED_APPS of configured Django settings "
            f"({type(exc).__name__}: {exc})",
            pytrace=False,
        )
    return api


def _mounted_apply(api: Any) -> Callable[[dict[str, Any] | None], dict[str, Any]]:
    def apply(plan: dict[str, Any] | None) -> dict[str, Any]:
        answer: dict[str, Any] = api.set_faults(plan).as_dict()
        return answer

    return apply


@pytest.fixture
def alipay_faults(request: pytest.FixtureRequest) -> Iterator[FaultInjector]:
    """Inject gateway and notification faults; every fault is cleared after the test.

    The faults go to the emulator process the test uses (``alipay_emulator`` or ``alipay_emulator_session``),
    else to the emulator app mounted in the Django project under test (``django_alipay.emulator`` in
    INSTALLED_APPS). ``alipay_faults.inject(faults.drop("forex_refund", limit=1))``.
    """
    from django_alipay.testing.faults import FaultInjector

    injector: FaultInjector | None = None
    for name in ("alipay_emulator", "alipay_emulator_session"):
        if name in request.fixturenames:
            process: EmulatorProcess = request.getfixturevalue(name)
            injector = process.fault_injector
            break
    if injector is None:
        injector = FaultInjector(_mounted_apply(_mounted_emulator_api()))
    try:
        yield injector
    finally:
        injector.clear()
