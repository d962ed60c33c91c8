"""Check a merchant's Alipay credentials and say, in a shop owner's words, what is wrong with them; and keep
the merchants behind notify URLs cached per process."""

from __future__ import annotations

import copy
import logging
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models.expressions import RawSQL
from django.db.models.signals import post_delete, post_save
from django.utils.translation import gettext as _

from django_alipay import gateway
from django_alipay.catalog_text import describe
from django_alipay.exceptions import AlipayConfigurationError
from django_alipay.fields import Secret
from django_alipay.models import Merchant
from django_alipay.models.merchant import split_public_keys
from django_alipay.protocol import keys
from django_alipay.protocol.errors import (
    AlipayError,
    KeyFormatError,
    OutcomeUnknownError,
    SignatureError,
    TransportError,
)

__all__ = [
    "CredentialReport",
    "cached_for_notify_token",
    "check_credentials",
    "forget_notify_tokens",
    "read_for_notify_token",
]

logger = logging.getLogger("django_alipay.merchants")

#: Answers that prove Alipay accepted the partner ID and the signature of the test query.
_ACCEPTED = frozenset({"TRADE_NOT_EXIST", "PURCHASE_TRADE_NOT_EXIST", "TRANS_NOT_FOUND"})


@dataclass(frozen=True)
class CredentialReport:
    """The result of :func:`check_credentials`.

    ``ok`` is True when Alipay accepted a query signed with the stored credentials. ``problem`` is a short
    machine-readable name (``""`` when ok): ``no_key``, ``unreadable_key``, ``own_public_key``,
    ``keys_swapped``, ``key_pair_mismatch``, ``wrong_partner``, ``wrong_key``, ``sign_type_refused``,
    ``alipay_key_wrong``, ``unreachable``, ``no_answer``, ``refused``, ``configuration``. ``message`` says
    what happened and what to do, for a shop owner.
    """

    ok: bool
    problem: str
    message: str


def _fail(problem: str, message: str) -> CredentialReport:
    return CredentialReport(False, problem, message)


def _revealed(merchant: Merchant, field: str) -> str:
    secret = getattr(merchant, field)
    assert isinstance(secret, Secret)
    return secret.reveal()


def _local_problem(merchant: Merchant) -> CredentialReport | None:
    """What is wrong with the stored keys themselves, found without asking Alipay."""
    if merchant.sign_type == "MD5":
        if merchant.md5_key is None:
            return _fail(
                "no_key", _("No MD5 key is stored: copy it from the Alipay portal into the MD5 key field.")
            )
        return None
    if merchant.private_key is None:
        return _fail(
            "no_key",
            _(
                "Sign type %(sign_type)s needs your private key, and none is stored. Generate a key pair "
                "(manage.py alipay_generate_keys) and upload its public key to Alipay."
            )
            % {"sign_type": merchant.sign_type},
        )
    if merchant.alipay_public_key is None:
        return _fail(
            "no_key",
            _(
                "Sign type %(sign_type)s needs Alipay's public key, and none is stored: copy it from the "
                "Alipay portal."
            )
            % {"sign_type": merchant.sign_type},
        )
    try:
        private = keys.load_private_key(_revealed(merchant, "private_key"))
    except KeyFormatError as exc:
        return _fail(
            "unreadable_key", _("The stored private key cannot be used: %(why)s.") % {"why": exc.message}
        )
    alipay_keys: list[Any] = []
    for text in split_public_keys(_revealed(merchant, "alipay_public_key")):
        try:
            alipay_keys.append(keys.load_public_key(text))
        except KeyFormatError as exc:
            return _fail(
                "unreadable_key",
                _("The stored Alipay public key cannot be used: %(why)s.") % {"why": exc.message},
            )
    if any(keys.is_own_public_key(key, private) for key in alipay_keys):
        return _fail(
            "own_public_key",
            _(
                "The key stored as Alipay's public key is your own public key (the one you uploaded to "
                "Alipay). Alipay's signatures can never verify with it: paste the public key the Alipay "
                "portal shows as Alipay's."
            ),
        )
    if merchant.public_key.strip():
        try:
            recorded = keys.load_public_key(merchant.public_key)
        except KeyFormatError as exc:
            return _fail(
                "unreadable_key",
                _("The public key on record cannot be read: %(why)s.") % {"why": exc.message},
            )
        if not keys.is_key_pair(private, recorded):
            alipay_prints = {keys.fingerprint(key) for key in alipay_keys}
            if keys.fingerprint(recorded) in alipay_prints:
                return _fail(
                    "keys_swapped",
                    _(
                        "The key recorded as your public key is Alipay's public key: the two keys were "
                        "swapped. Record the public key of your own private key, and keep Alipay's in its "
                        "own field."
                    ),
                )
            return _fail(
                "key_pair_mismatch",
                _(
                    "Your private key does not belong to the public key on record (the one you gave Alipay): "
                    "the private key's fingerprint is %(fingerprint)s. Restore the matching private key, or "
                    "upload this key's public key to Alipay and record it here."
                )
                % {"fingerprint": keys.fingerprint(private)},
            )
    return None


def _wrong_key_message(merchant: Merchant) -> str:
    if merchant.sign_type == "MD5":
        return _(
            "Alipay rejected the signature (ILLEGAL_SIGN): the MD5 key is not the one Alipay holds for "
            "partner %(partner)s. Copy the key again from the Alipay portal."
        ) % {"partner": merchant.partner}
    return _(
        "Alipay rejected the signature (ILLEGAL_SIGN): Alipay does not hold the public key of this private "
        "key for partner %(partner)s. Upload its public key (%(fingerprint)s) in the Alipay portal, or "
        "restore the private key whose public key you uploaded."
    ) % {"partner": merchant.partner, "fingerprint": merchant.fingerprint("private_key")}


def _explain(merchant: Merchant, exc: AlipayError, url: str) -> CredentialReport:
    code = exc.code or ""
    if code in _ACCEPTED:
        return CredentialReport(
            True,
            "",
            _(
                "The credentials work: Alipay accepted a query signed as partner %(partner)s (%(sign_type)s) "
                "and answered %(code)s, as expected for a made-up order number."
            )
            % {"partner": merchant.partner, "sign_type": merchant.sign_type, "code": code},
        )
    if code == "ILLEGAL_PARTNER":
        return _fail(
            "wrong_partner",
            _(
                "Alipay does not know partner ID %(partner)s (ILLEGAL_PARTNER). Check the 16-digit ID "
                "(2088...) in the Alipay portal, and the environment: sandbox IDs do not work in production."
            )
            % {"partner": merchant.partner},
        )
    if code == "ILLEGAL_SIGN":
        return _fail("wrong_key", _wrong_key_message(merchant))
    if code in ("ILLEGAL_SIGN_TYPE", "ILLEGAL_SECURITY_PROFILE"):
        return _fail(
            "sign_type_refused",
            _(
                "Alipay does not accept %(sign_type)s signatures from this partner (%(code)s): choose the "
                "sign type set up in the Alipay portal, or upload your public key there."
            )
            % {"sign_type": merchant.sign_type, "code": code},
        )
    if code == "ILLEGAL_PARTNER_EXTERFACE":
        return CredentialReport(
            True,
            "",
            _(
                "The partner ID and key are accepted, but this account is not contracted for the trade query "
                "service (ILLEGAL_PARTNER_EXTERFACE); ask Alipay to enable the services you use."
            ),
        )
    if isinstance(exc, TransportError):
        return _fail(
            "unreachable",
            _(
                "Alipay's gateway at %(url)s could not be reached (%(why)s). Check the gateway URL and that "
                "this server may connect to it."
            )
            % {"url": url, "why": exc.message},
        )
    if isinstance(exc, OutcomeUnknownError) and isinstance(exc.__cause__, SignatureError):
        return _fail(
            "alipay_key_wrong",
            _(
                "Alipay answered, but its signature does not verify with the Alipay public key stored here: "
                "paste the current Alipay public key from the portal."
            ),
        )
    if isinstance(exc, OutcomeUnknownError):
        return _fail(
            "no_answer",
            _("The gateway at %(url)s gave no usable answer (%(why)s); it may be down. Try again later.")
            % {"url": url, "why": exc.message},
        )
    return _fail(
        "refused",
        _("Alipay refused the test query: %(code)s (%(why)s).")
        % {"code": code or type(exc).__name__, "why": describe(exc.description or "") or exc.message},
    )


def check_credentials(merchant: Merchant) -> CredentialReport:
    """Sign a harmless query (single_trade_query of a made-up order number) and say what Alipay thinks of it.

    Stored keys are checked first without a network call: missing, unreadable, Alipay's public key that is
    in fact the merchant's own, keys swapped, a private key that does not match the public key on record.
    Then Alipay's answer is read: TRADE_NOT_EXIST means the partner ID and key are accepted;
    ILLEGAL_PARTNER, ILLEGAL_SIGN, an unreachable gateway and the rest each get their own explanation.
    Changes nothing; never raises for what the gateway answers.
    """
    try:
        problem = _local_problem(merchant)
        if problem is not None:
            return problem
        url = merchant.resolved_gateway_url()
        client = gateway.client(merchant)
    except AlipayConfigurationError as exc:
        return _fail("configuration", _("The merchant cannot be used as configured: %(why)s") % {"why": exc})
    order = "CREDENTIAL-CHECK-" + secrets.token_hex(6).upper()
    try:
        client.single_trade_query(out_trade_no=order)
    except AlipayError as exc:
        report = _explain(merchant, exc, url)
    else:
        report = CredentialReport(
            True,
            "",
            _("The credentials work: Alipay answered a query signed as partner %(partner)s.")
            % {"partner": merchant.partner},
        )
    logger.info("credential check of merchant %s: %s", merchant.pk, report.problem or "ok")
    return report


# --- the merchant behind a notify URL, cached per process -------------------------------------------------

#: Merchants read for their notify token, each with its row version (PostgreSQL's ``xmin``: it changes with
#: every write of the row, whoever makes it). One notification needs the merchant; a cached one is used only
#: when the database says in the same statement that stores the notification that the row is the one cached.
_by_token: dict[str, tuple[Merchant, str]] = {}
_by_token_lock = threading.Lock()
#: More distinct notify tokens than this in one process (a shop has a few merchants) empties the cache.
NOTIFY_TOKEN_CACHE_SIZE = 256


def cached_for_notify_token(token: str, version: str) -> Merchant | None:
    """The merchant cached for ``token`` if it was read at row version ``version``, else None.

    A shallow copy: callers may set attributes on it without touching the cached one. Its decrypted keys are
    shared with the cached instance, so they are read once per process and version.
    """
    found = _by_token.get(token)
    if found is None or found[1] != version:
        return None
    return copy.copy(found[0])


def read_for_notify_token(token: str, *, pk: int | None = None) -> Merchant | None:
    """The merchant whose notify URL carries ``token`` (the one with ``pk``, if given), read and cached.

    On PostgreSQL the row version comes with it and the merchant is kept for
    :func:`cached_for_notify_token`; on other databases nothing is cached.
    """
    if not isinstance(token, str) or not 0 < len(token) <= 64:
        return None
    rows = Merchant.objects.filter(notify_token=token)
    if pk is not None:
        rows = rows.filter(pk=pk)
    if connection.vendor != "postgresql":
        return rows.first()
    merchant = rows.annotate(
        row_version=RawSQL(f"{connection.ops.quote_name(Merchant._meta.db_table)}.xmin::text", ())  # noqa: S611 (the table's own name)
    ).first()
    if merchant is not None:
        with _by_token_lock:
            if len(_by_token) >= NOTIFY_TOKEN_CACHE_SIZE:
                _by_token.clear()
            _by_token[token] = (merchant, merchant.row_version)
        merchant = copy.copy(merchant)
    return merchant


def forget_notify_tokens(merchant_pk: int | None = None) -> None:
    """Drop the cached merchants (or those of ``merchant_pk``): the next notification reads them again."""
    with _by_token_lock:
        for token in [t for t, (m, _v) in _by_token.items() if merchant_pk is None or m.pk == merchant_pk]:
            del _by_token[token]


def _merchant_changed(sender: type[Merchant], instance: Merchant, **kwargs: Any) -> None:
    forget_notify_tokens(instance.pk)


# Saves and deletions in this process drop the merchant at once; changes made elsewhere (another process, a
# queryset update) are caught by the row version.
post_save.connect(_merchant_changed, sender=Merchant, dispatch_uid="django_alipay.merchant-cache-save")
post_delete.connect(_merchant_changed, sender=Merchant, dispatch_uid="django_alipay.merchant-cache-delete")
