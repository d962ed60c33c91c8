"""The shopping cart, kept in the session as {product id: quantity}."""

from __future__ import annotations

from decimal import Decimal

from django.http import HttpRequest

from shop.models import Product

__all__ = ["MAX_QUANTITY", "add", "clear", "count", "items", "set_quantity", "total"]

MAX_QUANTITY = 20
_KEY = "cart"


def _cart(request: HttpRequest) -> dict[str, int]:
    cart = request.session.get(_KEY)
    return cart if isinstance(cart, dict) else {}


def add(request: HttpRequest, product: Product, quantity: int = 1) -> None:
    """Put ``quantity`` more of ``product`` in the cart."""
    cart = _cart(request)
    cart[str(product.pk)] = min(MAX_QUANTITY, cart.get(str(product.pk), 0) + quantity)
    request.session[_KEY] = cart


def set_quantity(request: HttpRequest, product_id: int, quantity: int) -> None:
    """Change a line's quantity; 0 removes it."""
    cart = _cart(request)
    if quantity <= 0:
        cart.pop(str(product_id), None)
    else:
        cart[str(product_id)] = min(MAX_QUANTITY, quantity)
    request.session[_KEY] = cart


def items(request: HttpRequest) -> list[tuple[Product, int]]:
    """The cart's products and quantities, in the shop's order."""
    cart = _cart(request)
    products = Product.objects.filter(pk__in=[int(pk) for pk in cart if pk.isdigit()])
    return [(product, cart[str(product.pk)]) for product in products]


def count(request: HttpRequest) -> int:
    """How many items are in the cart."""
    return sum(_cart(request).values())


def total(lines: list[tuple[Product, int]]) -> Decimal:
    """The price of the cart's lines."""
    return sum((product.price * quantity for product, quantity in lines), Decimal("0"))


def clear(request: HttpRequest) -> None:
    """Empty the cart (after checkout)."""
    request.session.pop(_KEY, None)
