"""URLs of the emulator; mount them with ``path("emulator/", include("django_alipay.emulator.urls"))``."""

from __future__ import annotations

from django.urls import path, re_path

from . import cashier, console, control, views

app_name = "django_alipay_emulator"

urlpatterns = [
    path("", console.index, name="index"),
    path("console/clock", console.clock, name="console-clock"),
    path("console/faults", console.faults, name="console-faults"),
    path("console/notifications", console.notifications, name="console-notifications"),
    path("gateway.do", views.gateway, name="gateway"),
    path("cashier/<str:token>/", cashier.page, name="cashier"),
    path("cashier/<str:token>/login", cashier.login, name="cashier-login"),
    path("cashier/<str:token>/pay", cashier.pay, name="cashier-pay"),
    path("cashier/<str:token>/cancel", cashier.cancel, name="cashier-cancel"),
    re_path(r"^qr/(?P<token>[A-Za-z0-9_-]+)\.(?P<fmt>png|svg)$", views.qr_code, name="qr"),
    path("control/partners", control.partners, name="control-partners"),
    path("control/pay", control.pay, name="control-pay"),
    path("control/clock", control.clock, name="control-clock"),
    path("control/faults", control.faults, name="control-faults"),
    path("control/config", control.config, name="control-config"),
    path("control/notifications", control.notifications, name="control-notifications"),
    path("control/deliver", control.deliver, name="control-deliver"),
    path("control/keys", control.keys, name="control-keys"),
    path("control/buyers", control.buyers, name="control-buyers"),
    path("control/trades", control.trades, name="control-trades"),
    path("control/calls", control.calls, name="control-calls"),
    path("control/reset", control.reset, name="control-reset"),
]
