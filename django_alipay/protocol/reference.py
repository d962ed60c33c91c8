"""Render the catalogs of error codes, trade statuses and payment types as the Markdown reference in docs/."""

from __future__ import annotations

from enum import Enum

from django_alipay.protocol import codes

__all__ = ["render_catalog_reference"]

_CATEGORY_TITLES = {
    "gateway": "Gateway errors (the request was refused before any business ran)",
    "business": "Business errors (the gateway accepted the request; the business was refused)",
    "system": "System errors (Alipay's side)",
}


def _cell(text: str) -> str:
    """Markdown table cells cannot hold a bare pipe or a line break."""
    return text.replace("|", "\\|").replace("\n", " ")


def _enum_table(enum_class: type[Enum]) -> list[str]:
    lines = ["| Value | Meaning |", "|---|---|"]
    for member in enum_class:
        description = getattr(member, "description", "")
        lines.append(f"| `{member.value}` | {_cell(description)} |")
    return lines


def render_catalog_reference() -> str:
    """The whole reference page; `docs/reference/catalogs.md` must equal this (a test checks it)."""
    out = [
        "# Catalog reference",
        "",
        "Generated from `django_alipay.protocol.codes` by `python -m django_alipay.protocol.reference`;",
        "do not edit by hand. Every code, status and payment type of Alipay's reference text is here, with",
        "how the library treats it.",
        "",
        "## Error codes",
        "",
        "*Retryable* means sending the same request again can help. An error code the catalog does not",
        "know is still reported (category `unknown`, not retryable), never a crash.",
    ]
    for category, title in _CATEGORY_TITLES.items():
        out += ["", f"### {title}", ""]
        out += ["| Code | Description | Retryable | What to do |", "|---|---|---|---|"]
        for code in sorted(
            (c for c in codes.ERROR_CODES.values() if c.category == category), key=lambda c: c.code
        ):
            retry = "yes" if code.retryable else "no"
            out.append(f"| `{code.code}` | {_cell(code.description)} | {retry} | {_cell(code.hint)} |")
    sections: list[tuple[str, type[Enum]]] = [
        ("Trade statuses", codes.TradeStatus),
        ("Additional trade statuses", codes.AdditionalTradeStatus),
        ("Payment types", codes.PaymentType),
        ("Refund statuses", codes.RefundStatus),
        ("Result codes", codes.ResultCode),
        ("Sign types", codes.SignType),
        ("Services", codes.Service),
        ("Product codes", codes.ProductCode),
    ]
    for title, enum_class in sections:
        out += ["", f"## {title}", "", *_enum_table(enum_class)]
    return "\n".join(out) + "\n"


if __name__ == "__main__":  # pragma: no cover - a developer's regeneration step
    print(render_catalog_reference(), end="")
