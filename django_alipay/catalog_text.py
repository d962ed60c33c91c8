"""Show the protocol catalogs' English texts (error codes, statuses, payment types) in the active language.

The catalogs live in :mod:`django_alipay.protocol.codes`, which cannot import Django, so their descriptions
are plain English there. :mod:`django_alipay._catalog_messages` lists every one of them inside
``gettext_noop()`` so that ``makemessages`` extracts them; it is generated from the catalogs::

    python -m django_alipay.catalog_text > django_alipay/_catalog_messages.py

(``tests/test_translations.py`` fails when it is out of date). Code of the Django layer that shows a catalog
text to a person passes it through :func:`describe`.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.utils.functional import lazy
from django.utils.translation import gettext

from django_alipay.protocol import codes

__all__ = ["catalog_texts", "describe", "describe_lazy", "render_catalog_messages"]

#: How :func:`django_alipay.protocol.codes.lookup_error` describes a code the catalog does not know.
_UNKNOWN_PREFIX = "Unknown Alipay error code "
_CATALOG_ENUMS = (
    codes.TradeStatus,
    codes.AdditionalTradeStatus,
    codes.PaymentType,
    codes.RefundStatus,
    codes.ResultCode,
    codes.SignType,
    codes.Service,
    codes.ProductCode,
)


def describe(text: str) -> str:
    """``text`` in the active language when it is a catalog text with a translation, else unchanged.

    Safe on any text, stored or received: a description Alipay sent itself, or one recorded before a
    translation existed, simply comes back as it is.
    """
    if not text:
        return text
    translated = gettext(text)
    if translated == text and text.startswith(_UNKNOWN_PREFIX):
        return gettext("Unknown Alipay error code %(code)s") % {"code": text[len(_UNKNOWN_PREFIX) :]}
    return translated


#: :func:`describe` evaluated when the text is shown (for choices and other module-level labels).
describe_lazy = lazy(describe, str)


def catalog_texts() -> Iterator[str]:
    """Every English text of the catalogs, once each, in catalog order: descriptions, then hints."""
    seen: set[str] = set()
    texts = [codes.lookup_error(None).description]
    texts += [entry.description for entry in codes.ERROR_CODES.values()]
    texts += [member.description for enum_class in _CATALOG_ENUMS for member in enum_class]
    texts += [entry.hint for entry in codes.ERROR_CODES.values()]
    texts.append(codes.lookup_error("NOT-A-CATALOG-CODE").hint)
    for text in texts:
        if text and text not in seen:
            seen.add(text)
            yield text


_LINE_LENGTH = 110


def _literal(text: str) -> str:
    """A double-quoted Python literal of ``text`` (the quotes ruff format keeps)."""
    if "\n" in text or "\r" in text:
        raise ValueError(f"a catalog text must be one line: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_catalog_messages() -> str:
    """The source of :mod:`django_alipay._catalog_messages` for the current catalogs."""
    lines = [
        '"""Every English text of the protocol catalogs, marked for translation (generated: do not edit).',
        "",
        "Regenerate with ``python -m django_alipay.catalog_text > django_alipay/_catalog_messages.py`` after",
        "changing django_alipay/protocol/codes.py, then run makemessages and translate the new entries.",
        '"""',
        "",
        "from django.utils.translation import gettext_noop",
        "",
        "CATALOG_TEXTS = (",
    ]
    for text in catalog_texts():
        literal = _literal(text)
        line = f"    gettext_noop({literal}),"
        if len(line) > _LINE_LENGTH:
            # The shape ruff format gives a call too long for one line, so the file stays format-clean.
            line = f"    gettext_noop(\n        {literal}\n    ),"
        lines.append(line)
    lines += [")", ""]
    if any(len(line) > _LINE_LENGTH for line in "\n".join(lines).splitlines()):
        lines.insert(0, "# ruff: noqa: E501")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - a developer's regeneration step
    print(render_catalog_messages(), end="")
