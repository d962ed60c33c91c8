"""The system checks that tell a project, in plain words, when the emulator is off or dangerously on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

__all__ = ["UNSAFE_SETTING", "check_emulator_deployed", "check_emulator_exposure"]

#: The setting that acknowledges a fake gateway reachable without DEBUG (a test run, a demo server).
UNSAFE_SETTING = "ALIPAY_EMULATOR_UNSAFE_WITHOUT_DEBUG"


@register()
def check_emulator_exposure(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """W001 when DEBUG is off and ALIPAY_EMULATOR_ALLOW is not set: every emulator URL answers 403.

    E001 when DEBUG is off and ALIPAY_EMULATOR_ALLOW makes the emulator serve anyway, unless
    ``ALIPAY_EMULATOR_UNSAFE_WITHOUT_DEBUG = True`` says that this is meant (a test run, a demo server).
    """
    if settings.DEBUG:
        return []
    if getattr(settings, "ALIPAY_EMULATOR_ALLOW", False):
        if getattr(settings, UNSAFE_SETTING, False):
            return []
        return [
            Error(
                "The Alipay emulator serves with DEBUG False (ALIPAY_EMULATOR_ALLOW = True): anyone who can "
                "reach it can mark trades as paid and replace a partner's keys.",
                hint=(
                    "Remove 'django_alipay.emulator' from INSTALLED_APPS (or ALIPAY_EMULATOR_ALLOW) on any "
                    "server that takes real payments. For a test run or a demo server, say that you mean "
                    f"it: {UNSAFE_SETTING} = True."
                ),
                id="django_alipay_emulator.E001",
            )
        ]
    return [
        Warning(
            "The Alipay emulator (django_alipay.emulator) is installed but DEBUG is False, so it refuses "
            "every request with HTTP 403.",
            hint=(
                "The emulator is a fake payment gateway for development and tests. Remove "
                "'django_alipay.emulator' from INSTALLED_APPS in production. To serve it without DEBUG "
                "anyway (a test run or a demo), set ALIPAY_EMULATOR_ALLOW = True in your settings."
            ),
            id="django_alipay_emulator.W001",
        )
    ]


@register(deploy=True)
def check_emulator_deployed(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """W002 (``check --deploy``): the emulator may serve without DEBUG: a fake gateway is live."""
    if settings.DEBUG or not getattr(settings, "ALIPAY_EMULATOR_ALLOW", False):
        return []
    return [
        Warning(
            "The Alipay emulator is serving with DEBUG False because ALIPAY_EMULATOR_ALLOW is True: "
            "anyone who can reach it can mark trades as paid.",
            hint="Never enable it on a server that takes real payments.",
            id="django_alipay_emulator.W002",
        )
    ]
