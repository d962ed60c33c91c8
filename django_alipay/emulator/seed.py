"""The emulator's fixed test data: the seeded buyer accounts and the exchange rates it pays and refunds at."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

from django.db import IntegrityError, transaction

from .models import Buyer

__all__ = ["BUYERS", "DEFAULT_BUYER", "PASSWORD", "RATES", "SeedBuyer", "ensure_buyers", "rate", "to_cny"]

#: The password of every seeded buyer (Alipay's sandbox accounts use the same kind of test password).
PASSWORD: Final = "111111"  # noqa: S105  (a published test password, not a secret)


@dataclass(frozen=True)
class SeedBuyer:
    """One seeded buyer account."""

    login_id: str
    name: str
    user_id: str
    barcode: str
    balance: Decimal
    payment_inst: str = "ALIPAYCN"
    enabled: bool = True
    needs_confirmation: bool = False
    note: str = ""


#: Buyer accounts present in every emulator database. Barcodes follow the real rule: 16-24 digits that
#: start with 25-30. Balances are in CNY: the buyer pays the CNY value of the trade at the table's rate.
BUYERS: Final[tuple[SeedBuyer, ...]] = (
    SeedBuyer(
        "buyer@alitest.com",
        "Wang Fang",
        "2088102146225135",
        "286123456789012345",
        Decimal("1000000.00"),
        note="the default buyer: plenty of money",
    ),
    SeedBuyer(
        "13800138000",
        "Li Wei",
        "2088102146225143",
        "2512345678901234",
        Decimal("50000.00"),
        note="a phone-number login, 16-digit barcode",
    ),
    SeedBuyer(
        "hkbuyer@alitest.com",
        "Chan Tai Man",
        "2088102146225151",
        "300000000000000000000123",
        Decimal("200000.00"),
        payment_inst="ALIPAYHK",
        note="an AlipayHK wallet, 24-digit barcode",
    ),
    SeedBuyer(
        "poor@alitest.com",
        "Zhang Min",
        "2088102146225168",
        "260000000000000004",
        Decimal("10.00"),
        note=(
            "only 10.00 CNY: a payment above that is refused with BUYER_ENABLE_STATUS_FORBID "
            "(Alipay has no code of its own for a low balance)"
        ),
    ),
    SeedBuyer(
        "frozen@alitest.com",
        "Zhao Lei",
        "2088102146225176",
        "270000000000000005",
        Decimal("100000.00"),
        enabled=False,
        note="a restricted account: every payment is refused",
    ),
    SeedBuyer(
        "slow@alitest.com",
        "Chen Jing",
        "2088102146225184",
        "290000000000000006",
        Decimal("100000.00"),
        needs_confirmation=True,
        note="spot payments wait for confirmation in the wallet (UNKNOW) until paid via control/pay",
    ),
)

DEFAULT_BUYER: Final = BUYERS[0].login_id

#: CNY per one unit of each currency: fixed, so amounts in tests are predictable. CNY itself is 1.
RATES: Final[dict[str, Decimal]] = {
    "AED": Decimal("1.80970000"),
    "AUD": Decimal("4.70120000"),
    "CAD": Decimal("5.02340000"),
    "CHF": Decimal("7.38900000"),
    "CNY": Decimal("1.00000000"),
    "CZK": Decimal("0.29100000"),
    "DKK": Decimal("0.97560000"),
    "EUR": Decimal("7.28350000"),
    "GBP": Decimal("8.51200000"),
    "HKD": Decimal("0.85120000"),
    "IDR": Decimal("0.00043000"),
    "ILS": Decimal("1.82300000"),
    "JPY": Decimal("0.04830000"),
    "KRW": Decimal("0.00512000"),
    "LKR": Decimal("0.02210000"),
    "MUR": Decimal("0.14500000"),
    "MYR": Decimal("1.48200000"),
    "NOK": Decimal("0.62300000"),
    "NZD": Decimal("4.16000000"),
    "PHP": Decimal("0.11800000"),
    "RUB": Decimal("0.07300000"),
    "SEK": Decimal("0.63400000"),
    "SGD": Decimal("4.95600000"),
    "THB": Decimal("0.19100000"),
    "USD": Decimal("6.64640000"),
    "ZAR": Decimal("0.36800000"),
}

_CENT: Final = Decimal("0.01")


def rate(currency: str) -> Decimal:
    """CNY per unit of ``currency``; KeyError for a currency the emulator does not settle."""
    return RATES[currency]


def to_cny(amount: Decimal, currency: str) -> Decimal:
    """``amount`` of ``currency`` in CNY, rounded half-up to the fen (at least 0.01 for a positive amount)."""
    value = (amount * rate(currency)).quantize(_CENT, rounding=ROUND_HALF_UP)
    return max(value, _CENT) if amount > 0 else value


def ensure_buyers() -> None:
    """Create the seeded buyers that are missing (balances of existing ones are left alone)."""
    if Buyer.objects.count() >= len(BUYERS):
        return
    for seed in BUYERS:
        try:
            with transaction.atomic():
                Buyer.objects.get_or_create(
                    login_id=seed.login_id,
                    defaults={
                        "name": seed.name,
                        "user_id": seed.user_id,
                        "password": PASSWORD,
                        "barcode": seed.barcode,
                        "balance": seed.balance,
                        "payment_inst": seed.payment_inst,
                        "enabled": seed.enabled,
                        "needs_confirmation": seed.needs_confirmation,
                    },
                )
        except IntegrityError:
            # Another thread seeded the same buyer at the same moment.
            continue


def reset_buyers() -> None:
    """Put every seeded buyer back to its original balance and flags."""
    for seed in BUYERS:
        Buyer.objects.update_or_create(
            login_id=seed.login_id,
            defaults={
                "name": seed.name,
                "user_id": seed.user_id,
                "password": PASSWORD,
                "barcode": seed.barcode,
                "balance": seed.balance,
                "payment_inst": seed.payment_inst,
                "enabled": seed.enabled,
                "needs_confirmation": seed.needs_confirmation,
            },
        )
