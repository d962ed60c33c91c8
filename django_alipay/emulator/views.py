"""The emulator's HTTP entry points besides the cashier, the console and the control API: gateway.do, QR."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from typing import Any, Final, TypeVar, cast

import segno
from django.http import Http404, HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from . import notifier
from .conf import emulator_allowed
from .gateway import handle_gateway
from .models import Trade
from .partners import ensure_configured_partners

__all__ = ["emulator_view", "gateway", "qr_code"]

View = TypeVar("View", bound=Callable[..., HttpResponse])

_QR_SCALES: Final = {"S": 3, "M": 5, "L": 8}


def disabled_response() -> HttpResponse:
    """The clear refusal served when the emulator is installed in a project that runs without DEBUG."""
    page = render_to_string("django_alipay_emulator/disabled.html")
    return HttpResponse(page, status=403, content_type="text/html; charset=utf-8")


def emulator_view(view: View) -> View:
    """Refuse to serve unless DEBUG is on or ALIPAY_EMULATOR_ALLOW is True; start the notifier lazily."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not emulator_allowed():
            return disabled_response()
        notifier.ensure_started()
        ensure_configured_partners()
        return view(request, *args, **kwargs)

    return cast(View, wrapper)


@csrf_exempt
@emulator_view
def gateway(request: HttpRequest) -> HttpResponse:
    """``gateway.do`` (GET or POST)."""
    return handle_gateway(request)


@emulator_view
def qr_code(request: HttpRequest, token: str, fmt: str) -> HttpResponse:
    """The QR image of a precreate trade (what pic_url points at): PNG or SVG, picSize S, M or L."""
    trade = Trade.objects.filter(cashier_token=token).first()
    if trade is None:
        raise Http404("no such QR code")
    target = request.build_absolute_uri(reverse("django_alipay_emulator:cashier", args=[token]))
    scale = _QR_SCALES.get(request.GET.get("picSize", "M").upper(), _QR_SCALES["M"])
    code = segno.make(target, error="m")
    buffer = io.BytesIO()
    if fmt == "svg":
        code.save(buffer, kind="svg", scale=scale, xmldecl=True)
        return HttpResponse(buffer.getvalue(), content_type="image/svg+xml")
    code.save(buffer, kind="png", scale=scale)
    return HttpResponse(buffer.getvalue(), content_type="image/png")
