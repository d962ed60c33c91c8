"""manage.py alipay_generate_keys: make a merchant's key pair, store it encrypted, print the public key."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from django_alipay.enums import Environment
from django_alipay.exceptions import AlipayConfigurationError
from django_alipay.models import Merchant
from django_alipay.protocol import keys
from django_alipay.protocol.errors import InvalidParameterError


class Command(BaseCommand):
    help = (
        "Generate a merchant's RSA2 (default), RSA or DSA key pair, store the private key encrypted on the "
        "merchant, and print the public key to submit to Alipay."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("merchant", help="The merchant's name, partner ID or database id.")
        parser.add_argument(
            "--sign-type", default="RSA2", choices=("RSA2", "RSA", "DSA"), help="Key type (default: RSA2)."
        )
        parser.add_argument("--bits", type=int, default=None, help="Key size (default: 2048).")
        parser.add_argument(
            "--force", action="store_true", help="Replace an existing private key (the old one is lost)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        merchant = self._merchant(options["merchant"])
        if merchant.private_key is not None and not options["force"]:
            raise CommandError(
                f"Merchant {merchant.name} already has a private key. Replacing it breaks signing until "
                "Alipay has the new public key; run again with --force if that is what you want."
            )
        sign_type = options["sign_type"]
        try:
            private = keys.generate_private_key(sign_type, bits=options["bits"])
        except InvalidParameterError as exc:
            raise CommandError(exc.message) from None
        one_line = keys.public_key_one_line(private)
        merchant.private_key = keys.private_key_pem(private)
        merchant.public_key = one_line
        try:
            merchant.save(update_fields=["private_key", "public_key", "updated_at"])
        except AlipayConfigurationError as exc:
            raise CommandError(str(exc)) from None

        self.stdout.write(
            f"A new {sign_type} key pair was made for merchant {merchant.name} ({merchant.partner})."
        )
        self.stdout.write("The private key is stored encrypted on the merchant; it is not shown.")
        self.stdout.write(f"Fingerprint: {keys.fingerprint(private)}")
        self.stdout.write("")
        self.stdout.write("Public key (submit this one line to Alipay):")
        self.stdout.write(one_line)
        self.stdout.write("")
        self.stdout.write("Next steps:")
        self.stdout.write(
            "  1. Send the public key above, with your partner ID, to Alipay's merchant technical support "
            "(or enter it in the Alipay portal)."
        )
        self.stdout.write(
            "  2. Alipay gives you its own public key: paste it into the merchant's Alipay public key."
        )
        self.stdout.write(
            f"  3. Then set the merchant's sign type to {sign_type} and run "
            "`manage.py check --database default`."
        )
        if merchant.environment == Environment.SANDBOX:
            self.stdout.write(
                self.style.WARNING(
                    "Note: Alipay's sandbox signs with MD5 only; this key pair is for production "
                    "(or the emulator)."
                )
            )

    def _merchant(self, name: str) -> Merchant:
        query = Q(name=name) | Q(partner=name)
        if name.isdigit() and len(name) < 16:
            query |= Q(pk=int(name))
        found = list(Merchant.objects.filter(query)[:2])
        if len(found) != 1:
            raise CommandError(
                f"{len(found) or 'No'} merchants match {name!r}; give the exact merchant name."
            )
        return found[0]
