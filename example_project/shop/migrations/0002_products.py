"""The demo's products: a small tea shop, so the shop has something to sell right after migrate."""

# ruff: noqa: RUF012
from decimal import Decimal

from django.db import migrations

PRODUCTS = [
    ("Celadon teacup", "celadon-teacup", "Hand-thrown, pale green glaze; holds 120 ml.", "18.00", "#4f8a7b"),
    ("Oolong tea, 250 g", "oolong-tea", "Tieguanyin from Anxi, lightly roasted.", "42.00", "#b7791f"),
    ("Clay teapot", "clay-teapot", "Yixing clay, 200 ml, for one or two.", "88.00", "#9b4a2f"),
    ("Bamboo tea tray", "bamboo-tray", "Slatted tray with a drip drawer, 40 x 25 cm.", "35.50", "#6b7f3a"),
    (
        "Jasmine pearls, 100 g",
        "jasmine-pearls",
        "Green tea rolled by hand, scented with jasmine.",
        "24.00",
        "#6b5ca5",
    ),
    ("Gift card", "gift-card", "A card for 5.00 USD: handy to try small payments.", "5.00", "#2b6cb0"),
]


def add_products(apps, schema_editor):
    Product = apps.get_model("shop", "Product")
    for position, (name, slug, description, price, colour) in enumerate(PRODUCTS):
        Product.objects.get_or_create(
            slug=slug,
            defaults={
                "name": name,
                "description": description,
                "price": Decimal(price),
                "colour": colour,
                "position": position,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]

    operations = [migrations.RunPython(add_products, migrations.RunPython.noop)]
