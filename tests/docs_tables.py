"""Render the documentation's tables that come from code (settings, checks, life cycles) and rewrite them.

``docs/configuration.md``, ``docs/credentials.md``, ``docs/refunds.md`` and ``docs/architecture.md`` hold
blocks between ``<!-- generated: NAME -->`` and ``<!-- end: NAME -->``; ``tests/test_docs.py`` fails when a
block differs from what this module renders. Regenerate them with::

    python -m tests.docs_tables
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Callable
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CHECKS_SOURCE = ROOT / "django_alipay" / "checks.py"


def python_literal(value: Any) -> str:
    """A default as a reader writes it in settings.py (double quotes, lists in brackets)."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(python_literal(item) for item in value) + "]"
    return repr(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_settings_table() -> str:
    """Every key of ``ALIPAY`` with what it takes, its default and description, from ``conf.DEFAULTS``."""
    from django_alipay.conf import DEFAULTS

    lines = ["| Key | Takes | Default | Meaning |", "|---|---|---|---|"]
    for name, setting in DEFAULTS.items():
        lines.append(
            f"| `{name}` | {_cell(setting.takes)} | `{python_literal(setting.default)}` | "
            f"{_cell(setting.description)} |"
        )
    return "\n".join(lines)


def documented_checks() -> list[tuple[str, str, str]]:
    """(id, tag, problem) rows of the table in the docstring of ``django_alipay/checks.py``."""
    rows = []
    for line in CHECKS_SOURCE.read_text(encoding="utf-8").splitlines():
        found = re.match(r"(django_alipay\.[EW]\d{3})\s+(\w+)\s+(.+)$", line)
        if found:
            rows.append((found.group(1), found.group(2), found.group(3).strip()))
    return rows


def emitted_check_ids() -> set[str]:
    """Every check id ``django_alipay/checks.py`` can emit, read from its code (not its docstring)."""
    code = CHECKS_SOURCE.read_text(encoding="utf-8").split('"""', 2)[2]
    numbers = set(re.findall(r'_id\("([EW]\d{3})"\)', code)) | set(
        re.findall(r'error\(\s*"([EW]\d{3})"', code)
    )
    return {f"django_alipay.{number}" for number in numbers}


def render_checks_table() -> str:
    """The system checks of django_alipay, from the docstring table of ``checks.py``."""
    lines = ["| ID | Needs the database | Problem |", "|---|---|---|"]
    for check_id, tag, problem in documented_checks():
        database = "yes" if tag == "database" else "no"
        lines.append(f"| `{check_id}` | {database} | {_cell(problem.replace('``', '`'))} |")
    return "\n".join(lines)


def render_refund_moves() -> str:
    """The refund life cycle, from ``django_alipay.domain.lifecycle.REFUND_MOVES``."""
    from django_alipay.domain import lifecycle

    return lifecycle.render_refund_moves()


def render_trade_moves() -> str:
    """The trade life cycle, from ``django_alipay.domain.lifecycle.TRADE_MOVES``."""
    from django_alipay.domain import lifecycle

    return lifecycle.render_trade_moves()


#: Generated blocks: (page, block name, renderer).
BLOCKS: tuple[tuple[str, str, Callable[[], str]], ...] = (
    ("configuration.md", "alipay-settings", render_settings_table),
    ("credentials.md", "system-checks", render_checks_table),
    ("refunds.md", "refund-moves", render_refund_moves),
    ("refunds.md", "trade-moves", render_trade_moves),
    ("architecture.md", "refund-moves", render_refund_moves),
    ("architecture.md", "trade-moves", render_trade_moves),
)


def block(page: str, name: str) -> str:
    """The current content of a generated block of a page."""
    text = (DOCS / page).read_text(encoding="utf-8")
    found = re.search(rf"<!-- generated: {name} -->\n(.*?)\n<!-- end: {name} -->", text, re.DOTALL)
    assert found, f"docs/{page} has no generated block {name!r}"
    return found.group(1)


def rewrite() -> None:
    """Write every generated block afresh."""
    for page, name, render in BLOCKS:
        path = DOCS / page
        text = path.read_text(encoding="utf-8")
        start, end = f"<!-- generated: {name} -->\n", f"\n<!-- end: {name} -->"
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        path.write_text(head + start + render() + end + tail, encoding="utf-8")


if __name__ == "__main__":  # pragma: no cover - a developer's regeneration step
    rewrite()
