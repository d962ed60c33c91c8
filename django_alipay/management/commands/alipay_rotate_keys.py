"""manage.py alipay_rotate_keys: re-encrypt every stored merchant secret under the newest Fernet key."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_alipay.conf import app_settings
from django_alipay.exceptions import AlipayConfigurationError
from django_alipay.management.commands._shared import plural
from django_alipay.models import Merchant


class Command(BaseCommand):
    help = (
        "Re-encrypt the merchants' stored secrets (MD5 keys, private keys, Alipay public keys) with the "
        "first key of ALIPAY['FERNET_KEYS']. Safe to run again. Afterwards the older keys can be removed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        count = len(app_settings.FERNET_KEYS)
        if count == 0:
            raise CommandError(
                "ALIPAY['FERNET_KEYS'] is empty: there is no key to encrypt with. Add a new key first "
                "(manage.py check says how to make one)."
            )
        merchants = Merchant.objects.count()
        try:
            changed = Merchant.objects.all().rotate_secrets()
        except AlipayConfigurationError as exc:
            raise CommandError(
                "Nothing was changed: a stored secret cannot be decrypted with any key in "
                "ALIPAY['FERNET_KEYS']. Put back the key it was encrypted with (after the new one) and run "
                f"this again. ({exc})"
            ) from None
        without = merchants - changed
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-encrypted the secrets of {plural(changed, 'merchant')} with the newest key "
                f"(the first of the {plural(count, 'key')} in ALIPAY['FERNET_KEYS'])."
            )
        )
        if without:
            self.stdout.write(f"{plural(without, 'merchant')} had no stored secrets.")
        if count > 1:
            self.stdout.write(
                "Every secret now opens with the newest key alone: you can remove the older "
                f"{plural(count - 1, 'key')} from ALIPAY['FERNET_KEYS'] and restart."
            )
        else:
            self.stdout.write("Only one key is configured, so there is no older key to retire.")
