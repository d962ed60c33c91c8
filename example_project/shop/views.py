"""The shop's pages: products, cart and checkout, the order page and its status poll, the point of sale."""

from __future__ import annotations

import re
from typing import Any

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from shop import cart, payments
from shop.models import Order, Product

#: The emulator's seeded test buyers (docs/emulator.md): what a barcode scanner would read from their phones.
TEST_BARCODES = [
    ("286123456789012345", "buyer@alitest.com", "pays anything"),
    ("2512345678901234", "13800138000", "phone login"),
    ("300000000000000000000123", "hkbuyer@alitest.com", "AlipayHK wallet"),
    ("260000000000000004", "poor@alitest.com", "only 10 CNY: refused above that"),
]
_SESSION_ORDERS = "orders"
_BARCODE = re.compile(r"[0-9]{16,24}")


def shop_context(request: HttpRequest) -> dict[str, Any]:
    """Template context for every page: the cart's size, for the header."""
    return {"cart_count": cart.count(request) if hasattr(request, "session") else 0}


def _remember(request: HttpRequest, order: Order) -> None:
    numbers = [n for n in request.session.get(_SESSION_ORDERS, []) if n != order.number]
    request.session[_SESSION_ORDERS] = [order.number, *numbers][:50]


def _own_order(request: HttpRequest, number: str) -> Order | None:
    """The order, if this visitor placed it (in this session) or is staff; None otherwise, whether or not
    it exists (so that order numbers cannot be probed)."""
    if not number or not (request.user.is_staff or number in request.session.get(_SESSION_ORDERS, [])):
        return None
    return Order.objects.select_related("trade").filter(number=number).first()


def _visible_order(request: HttpRequest, number: str) -> Order:
    """The order, if this visitor placed it (in this session) or is staff; 404 otherwise."""
    order = _own_order(request, number)
    if order is None:
        raise Http404("no such order")
    return order


@require_GET
def products(request: HttpRequest) -> HttpResponse:
    """The shop front: every product, with an Add to cart button."""
    return render(request, "shop/products.html", {"products": Product.objects.all()})


@require_POST
def cart_add(request: HttpRequest, slug: str) -> HttpResponse:
    """Add one of a product to the cart."""
    product = get_object_or_404(Product, slug=slug)
    cart.add(request, product)
    messages.success(request, f"{product.name} is in your cart.")
    return redirect(request.POST.get("next") or "shop:products")


@require_GET
def cart_page(request: HttpRequest) -> HttpResponse:
    """The cart, with the two ways to pay online."""
    lines = cart.items(request)
    rows = [(product, quantity, product.price * quantity) for product, quantity in lines]
    currency = lines[0][0].currency if lines else "USD"
    return render(request, "shop/cart.html", {"rows": rows, "total": cart.total(lines), "currency": currency})


@require_POST
def cart_update(request: HttpRequest) -> HttpResponse:
    """Change quantities (``qty-<id>``) or remove a line (``remove=<id>``)."""
    for name, value in request.POST.items():
        if name.startswith("qty-") and name[4:].isdigit() and value.strip().isdigit():
            cart.set_quantity(request, int(name[4:]), int(value))
    if request.POST.get("remove", "").isdigit():
        cart.set_quantity(request, int(request.POST["remove"]), 0)
    return redirect("shop:cart")


@require_POST
def checkout(request: HttpRequest) -> HttpResponse:
    """Place the order and send the buyer to Alipay's cashier (website or mobile product)."""
    lines = cart.items(request)
    if not lines:
        messages.error(request, "Your cart is empty.")
        return redirect("shop:products")
    channel = Order.Channel.WAP if request.POST.get("channel") == "wap" else Order.Channel.WEB
    order = payments.place_order(lines, channel)
    _remember(request, order)
    try:
        return_url = payments.return_url_for(request.build_absolute_uri)
    except Exception:  # no merchant yet: start_payment says so on the order page
        return_url = None
    start = payments.start_payment(order, return_url=return_url)
    if not start.url:
        messages.error(request, f"The payment could not start: {start.problem}")
        return redirect("shop:order", number=order.number)
    cart.clear(request)
    return HttpResponseRedirect(start.url)


@require_GET
def alipay_return(request: HttpRequest) -> HttpResponse:
    """Where django_alipay's return view forwards the buyer (ALIPAY["RETURN_REDIRECT"]): to the order page.

    The visit itself proves nothing (it can be forged): the order page shows what notifications established.
    Only the session that placed the order (or staff) hears about it; anyone else, whatever the number,
    gets the same neutral answer.
    """
    number = request.GET.get("out_trade_no", "")
    order = _own_order(request, number)
    if order is not None:
        # The notification may have come in after the return view looked: ask the order as it is now.
        state = payments.order_state(order).code
        if state == "waiting":
            messages.info(
                request, "Thank you! Alipay is confirming your payment; this page updates by itself."
            )
        elif state == "closed":
            messages.warning(request, "The payment was not completed.")
        elif state == "paid":
            messages.success(request, "Thank you! Your payment is confirmed.")
        return redirect("shop:order", number=number)
    messages.info(request, "We are checking your payment with Alipay.")
    return redirect("shop:orders")


@require_GET
def order_page(request: HttpRequest, number: str) -> HttpResponse:
    """The order: its lines and payment, updated every 2 s from status.json until it settles."""
    order = _visible_order(request, number)
    state = payments.order_state(order)
    # Staff are pointed at the admin's refund only while there is money to give back.
    refundable = state.code in ("paid", "partly_refunded")
    context = {
        "order": order,
        "state": state,
        "refundable": refundable,
        "payload": payments.status_payload(order),
        "trade_admin_url": (
            reverse("admin:django_alipay_trade_change", args=[order.trade_id]) if order.trade_id else ""
        ),
    }
    return render(request, "shop/order.html", context)


@never_cache
@require_GET
def order_status(request: HttpRequest, number: str) -> JsonResponse:
    """The order's payment state as JSON (polled by the order page)."""
    return JsonResponse(payments.status_payload(_visible_order(request, number)))


@require_GET
def order_list(request: HttpRequest) -> HttpResponse:
    """This visitor's orders (staff: every order)."""
    orders = Order.objects.select_related("trade")
    if not request.user.is_staff:
        orders = orders.filter(number__in=request.session.get(_SESSION_ORDERS, []))
    rows = [(order, payments.order_state(order)) for order in orders[:50]]
    return render(request, "shop/orders.html", {"rows": rows})


def _quantity(text: str) -> int:
    text = text.strip()
    return min(int(text), 20) if text.isdigit() else 0


@staff_member_required
def pos(request: HttpRequest) -> HttpResponse:
    """The point of sale: scan the buyer's barcode (spot pay) or show a QR code for the buyer to scan."""
    products = list(Product.objects.all())
    if request.method != "POST":
        rows = [(product, 0) for product in products]
        return render(request, "shop/pos.html", {"rows": rows, "barcodes": TEST_BARCODES})
    rows = [(product, _quantity(request.POST.get(f"qty-{product.pk}", ""))) for product in products]
    chosen = [(product, qty) for product, qty in rows if qty > 0]
    mode = request.POST.get("mode", "barcode")
    barcode = re.sub(r"\s+", "", request.POST.get("barcode", ""))
    errors = []
    if not chosen:
        errors.append("Choose at least one product.")
    if mode == "barcode" and not _BARCODE.fullmatch(barcode):
        errors.append("A payment code is 16 to 24 digits: scan or type the buyer's barcode.")
    if errors:
        context = {"rows": rows, "barcodes": TEST_BARCODES, "errors": errors, "barcode": barcode}
        return render(request, "shop/pos.html", context, status=400)
    channel = Order.Channel.QRCODE if mode == "qrcode" else Order.Channel.BARCODE
    order = payments.place_order(chosen, channel, prefix="POS")
    _remember(request, order)
    start = payments.start_payment(order, barcode=barcode if channel == Order.Channel.BARCODE else None)
    if channel == Order.Channel.QRCODE and start.qr_code:
        return redirect("shop:pos-qr", number=order.number)
    if start.problem and payments.order_state(order).code == "waiting":
        # An unknown outcome (UNKNOW) is not a failure: the order page turns paid when Alipay confirms it.
        messages.info(
            request,
            f"Alipay has not confirmed the payment yet ({start.problem}); this page updates when it does.",
        )
    elif start.problem:
        messages.error(request, f"Alipay: {start.problem}")
    return redirect("shop:order", number=order.number)


@staff_member_required
@require_GET
def pos_qr(request: HttpRequest, number: str) -> HttpResponse:
    """The QR code for the buyer to scan, with its status updating as the payment arrives."""
    order = _visible_order(request, number)
    trade = order.trade
    if trade is None or not trade.qr_code:
        return redirect("shop:order", number=number)
    response: dict[str, Any] = trade.gateway_response or {}
    context = {
        "order": order,
        "state": payments.order_state(order),
        "payload": payments.status_payload(order),
        "qr_code": trade.qr_code,
        "qr_image": response.get("big_pic_url") or response.get("pic_url") or "",
    }
    return render(request, "shop/pos_qr.html", context)
