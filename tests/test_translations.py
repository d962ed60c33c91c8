"""Every user-facing text has a real Simplified Chinese translation, compiled, and in step with the code.

When a test here fails after a text changed, regenerate and translate::

    python -m django_alipay.catalog_text > django_alipay/_catalog_messages.py   # catalog texts changed
    cd django_alipay && django-admin makemessages -l zh_Hans --ignore='emulator/*' --no-obsolete \\
        --settings=tests.settings --pythonpath=..
    cd emulator && django-admin makemessages -l zh_Hans --no-obsolete --settings=tests.settings \\
        --pythonpath=../..
    # translate the new entries (msgstr), remove their "fuzzy" flags, then:
    django-admin compilemessages --settings=tests.settings --pythonpath=.. (from django_alipay/)
"""

from __future__ import annotations

import gettext as python_gettext
import pathlib
import re
import shutil
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest
from django.template.loader import render_to_string
from django.utils import translation

from django_alipay.catalog_text import catalog_texts, describe, render_catalog_messages
from django_alipay.protocol.codes import ERROR_CODES, TradeStatus, lookup_error

ROOT = pathlib.Path(__file__).resolve().parent.parent
CATALOGS = {
    "django_alipay": ROOT / "django_alipay" / "locale" / "zh_Hans" / "LC_MESSAGES",
    "django_alipay.emulator": ROOT / "django_alipay" / "emulator" / "locale" / "zh_Hans" / "LC_MESSAGES",
}
_HAN = re.compile(r"[\u4e00-\u9fff]")
# The placeholders and markup a translation must keep exactly: %(name)s, %(n)d, %(x).2f, {type}, <tags>.
_PLACEHOLDER = re.compile(r"%\(\w+\)(?:\.\d+)?[sdrf]|\{\w+\}|<[^>]+>")


def read_po(path: pathlib.Path) -> list[dict[str, Any]]:
    """The entries of a .po file (header excluded): msgid, msgstr and flags, with the quoting undone."""
    entries: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    field = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#,"):
            current = {"msgid": "", "msgstr": "", "flags": {f.strip() for f in line[2:].split(",")}}
            entries.append(current)
        elif line.startswith(("msgid ", "msgstr ")):
            field, _, rest = line.partition(" ")
            if field == "msgid" and (current is None or current["msgid"] or current["msgstr"]):
                current = {"msgid": "", "msgstr": "", "flags": set()}
                entries.append(current)
            assert current is not None
            current[field] = _unquote(rest)
        elif line.startswith('"') and current is not None:
            current[field] += _unquote(line)
        elif not line.strip():
            field = ""
    return [entry for entry in entries if entry["msgid"]]


_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def _unquote(text: str) -> str:
    """The text of one quoted .po string, its escapes (\\n, \\t, \\", \\\\) undone."""
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), text.strip()[1:-1])


@pytest.mark.parametrize("app", sorted(CATALOGS))
def test_every_message_has_a_chinese_translation_and_none_is_fuzzy(app: str) -> None:
    entries = read_po(CATALOGS[app] / "django.po")

    assert len(entries) > 50
    untranslated = [e["msgid"] for e in entries if not e["msgstr"]]
    fuzzy = [e["msgid"] for e in entries if "fuzzy" in e["flags"]]
    not_chinese = [
        e["msgid"] for e in entries if not _HAN.search(e["msgstr"]) and _HAN.search(e["msgid"]) is None
    ]
    assert not untranslated, f"{app}: untranslated: {untranslated[:5]}"
    assert not fuzzy, f"{app}: fuzzy: {fuzzy[:5]}"
    # A few texts are names that stay as they are (X-Forwarded-For, Motopay); anything else must be Chinese.
    assert set(not_chinese) <= {"X-Forwarded-For", "Motopay"}, not_chinese


@pytest.mark.parametrize("app", sorted(CATALOGS))
def test_translations_keep_every_placeholder_and_tag(app: str) -> None:
    for entry in read_po(CATALOGS[app] / "django.po"):
        assert sorted(_PLACEHOLDER.findall(entry["msgid"])) == sorted(
            _PLACEHOLDER.findall(entry["msgstr"])
        ), entry["msgid"]


@pytest.mark.parametrize("app", sorted(CATALOGS))
def test_the_compiled_catalog_holds_exactly_the_po_files_translations(app: str) -> None:
    with (CATALOGS[app] / "django.mo").open("rb") as handle:
        compiled = python_gettext.GNUTranslations(handle)
    in_po = {entry["msgid"]: entry["msgstr"] for entry in read_po(CATALOGS[app] / "django.po")}

    in_mo = {msgid: text for msgid, text in compiled._catalog.items() if msgid}  # type: ignore[attr-defined]

    assert in_mo == in_po, f"{CATALOGS[app] / 'django.mo'} is stale: run compilemessages"
    assert compiled.info()["plural-forms"] == "nplurals=1; plural=0;"


def test_the_catalog_messages_module_lists_the_current_catalogs() -> None:
    module = (ROOT / "django_alipay" / "_catalog_messages.py").read_text(encoding="utf-8")

    assert module == render_catalog_messages(), (
        "django_alipay/_catalog_messages.py is stale: run "
        "`python -m django_alipay.catalog_text > django_alipay/_catalog_messages.py`, then makemessages"
    )


def test_every_catalog_text_is_in_the_translation_catalog() -> None:
    translated = {entry["msgid"] for entry in read_po(CATALOGS["django_alipay"] / "django.po")}

    missing = [text for text in catalog_texts() if text not in translated]

    assert not missing, f"catalog texts missing from django.po (run makemessages): {missing[:5]}"
    assert len(list(catalog_texts())) > len(ERROR_CODES)


def test_an_error_code_description_comes_out_in_chinese() -> None:
    with translation.override("zh-hans"):
        assert describe(lookup_error("ILLEGAL_SIGN").description) == "签名不正确。"
        assert describe(lookup_error("NO_SUCH_CODE").description) == "未知的支付宝错误码 NO_SUCH_CODE"
        assert describe("A text Alipay sent itself.") == "A text Alipay sent itself."
    with translation.override("en"):
        assert describe(lookup_error("ILLEGAL_SIGN").description) == "Illegal signature."


def test_status_choices_follow_the_active_language() -> None:
    from django_alipay.models import Trade

    trade = Trade(status=TradeStatus.WAIT_BUYER_PAY.value)

    with translation.override("zh-hans"):
        assert trade.get_status_display() == "交易已创建，等待买家付款。"
    with translation.override("en"):
        assert trade.get_status_display() == TradeStatus.WAIT_BUYER_PAY.description


def test_an_admin_action_label_comes_out_in_chinese() -> None:
    from django_alipay.admin.trade import TradeAdmin

    with translation.override("zh-hans"):
        assert str(TradeAdmin.reverse_trades.short_description) == "撤销（仅限北京时间当日）…"  # type: ignore[attr-defined]
        assert str(TradeAdmin.refund_in_full.short_description) == "全额退款…"  # type: ignore[attr-defined]


def test_a_domain_refusal_comes_out_in_chinese() -> None:
    from django_alipay.domain.refunds import reverse_refusal
    from django_alipay.models import Trade

    online = Trade(out_trade_no="ORDER-7", product="web", amount=Decimal("5.00"), currency="USD")

    with translation.override("zh-hans"):
        refusal = reverse_refusal(online)
    with translation.override("en"):
        english = reverse_refusal(online)

    assert refusal == "订单 ORDER-7 为线上支付；线上支付无法撤销，请改用退款。"
    assert (
        english == "Order ORDER-7 was paid online; online payments cannot be reversed, refund them instead."
    )


def test_the_return_page_speaks_chinese() -> None:
    with translation.override("zh-hans"):
        page = render_to_string("django_alipay/return.html", {"state": "paid", "trade": None, "amount": ""})

    assert "支付完成" in page
    assert "支付宝已确认您的付款。谢谢！" in page


def test_the_emulator_cashier_speaks_chinese() -> None:
    with translation.override("zh-hans"):
        page = render_to_string("django_alipay_emulator/disabled.html")

    assert "支付宝模拟器已关闭" in page
    assert "<code>ALIPAY_EMULATOR_ALLOW = True</code>" in page


def test_the_po_files_hold_every_translatable_text_of_the_code(tmp_path: pathlib.Path) -> None:
    """makemessages over a copy of the package finds no text the committed catalogs lack, and no extra one."""
    assert shutil.which("xgettext"), "GNU gettext is needed to extract messages: apt-get install gettext"
    copy = tmp_path / "django_alipay"
    shutil.copytree(ROOT / "django_alipay", copy, ignore=shutil.ignore_patterns("__pycache__"))
    command = [sys.executable, "-m", "django", "makemessages", "-l", "zh_Hans", "--no-obsolete"]
    options = ["--settings=tests.settings", f"--pythonpath={ROOT}"]
    for where, extra in ((copy, ["--ignore=emulator/*"]), (copy / "emulator", [])):
        subprocess.run([*command, *extra, *options], cwd=where, check=True, capture_output=True)

    for app, committed in CATALOGS.items():
        extracted = copy.joinpath(*app.split(".")[1:], "locale", "zh_Hans", "LC_MESSAGES", "django.po")
        fresh = {entry["msgid"] for entry in read_po(extracted)}
        known = {entry["msgid"] for entry in read_po(committed / "django.po")}
        assert fresh - known == set(), (
            f"{app}: texts not in the catalog yet (run makemessages): {fresh - known}"
        )
        assert known - fresh == set(), f"{app}: texts no longer in the code: {known - fresh}"
