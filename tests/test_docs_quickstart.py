"""The quickstart, pasted as written into a brand-new ``startproject``, gives a project that works.

Each python block of docs/quickstart.md that opens with a file name (``# settings.py``, ``# shop/views.py``)
is put where a reader would put it: settings blocks are appended to the generated settings, other files are
written whole (the last block naming a file wins, as when a reader follows the page to its end). The project
then passes ``manage.py check``, migrates, serves the browsable API, and its pay view sends a second click
to the same cashier page.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "docs" / "quickstart.md"
FENCE = re.compile(r"^```python\n(.*?)\n```", re.MULTILINE | re.DOTALL)
NAMED = re.compile(r"\A# (?P<name>[\w/]+\.py)\n")


def quickstart_files() -> tuple[list[str], dict[str, str]]:
    """The settings blocks in page order, and the last block for every other file the page names."""
    settings: list[str] = []
    files: dict[str, str] = {}
    for found in FENCE.finditer(QUICKSTART.read_text(encoding="utf-8")):
        code = found.group(1) + "\n"
        named = NAMED.match(code)
        if named is None:
            continue
        if named["name"] == "settings.py":
            settings.append(code)
        else:
            files[named["name"]] = code
    return settings, files


def run(project: pathlib.Path, *args: str) -> str:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}\n{result.stderr[-3000:]}"
    return result.stdout


#: What a reader does in the shell and the browser after following the page (run with manage.py shell).
WALK = textwrap.dedent(
    """
    from decimal import Decimal

    from django.contrib.auth.models import User
    from django.test import Client
    from django.test.utils import setup_test_environment

    from django_alipay.models import Merchant, Trade
    from django_alipay.signals import trade_paid
    from shop.models import Order

    setup_test_environment()
    Merchant.objects.create(
        name="Emulator", partner="2088101122136241", environment="emulator",
        gateway_url="http://127.0.0.1:8765/gateway.do", sign_type="MD5",
        md5_key="760bdzec6y9goq7ctyx96ezkz78287de", currency="USD",
    )
    browser = Client()
    browser.force_login(User.objects.create_superuser("owner", "owner@example.com", "a-long-password"))

    api = browser.get("/alipay/api/", headers={"accept": "text/html"})
    print("api", api.status_code, b"Django REST framework" in api.content)

    Order.objects.create(number="ORDER-1002", total=Decimal("30.00"))
    first = browser.get("/shop/orders/ORDER-1002/pay/")
    second = browser.get("/shop/orders/ORDER-1002/pay/")
    print("pay", first.status_code, second.status_code, first["Location"] == second["Location"])
    print("cashier", first["Location"].startswith("http://127.0.0.1:8765/gateway.do?"))

    trade = Trade.objects.get(out_trade_no="ORDER-1002")
    trade_paid.send(sender=Trade, trade=trade, params={})
    print("paid", Order.objects.get(number="ORDER-1002").paid)
    """
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A new project (``startproject myshop``) and app (``startapp shop``) with the quickstart pasted in."""
    project = tmp_path_factory.mktemp("quickstart")
    run(project, "-m", "django", "startproject", "myshop", ".")
    run(project, "manage.py", "startapp", "shop")
    settings, files = quickstart_files()
    settings_py = project / "myshop" / "settings.py"
    settings_py.write_text(
        settings_py.read_text(encoding="utf-8") + "\n" + "\n".join(settings), encoding="utf-8"
    )
    for name, code in files.items():
        target = project / ("myshop" if "/" not in name else "") / name
        target.write_text(code, encoding="utf-8")
    return project


def test_the_quickstart_names_every_file_a_reader_writes():
    settings, files = quickstart_files()

    assert len(settings) >= 3  # the app list and ALIPAY, SQLite, the shop app
    assert {
        "urls.py",
        "shop/models.py",
        "shop/apps.py",
        "shop/receivers.py",
        "shop/views.py",
        "shop/urls.py",
    } <= set(files)


def test_a_project_made_from_the_quickstart_passes_its_checks(project: pathlib.Path):
    run(project, "manage.py", "makemigrations", "shop")

    output = run(project, "manage.py", "check")

    assert "System check identified no issues (0 silenced)." in output


def test_a_project_made_from_the_quickstart_browses_the_api_and_pays_an_order_once(project: pathlib.Path):
    run(project, "manage.py", "makemigrations", "shop")
    run(project, "manage.py", "migrate", "--verbosity", "0")

    output = run(project, "manage.py", "shell", "--command", WALK).split("\n")

    assert "api 200 True" in output  # the browsable API renders (rest_framework is installed)
    assert "pay 302 302 True" in output  # a second click goes to the same cashier page
    assert "cashier True" in output
    assert "paid True" in output  # the receiver in shop/receivers.py is connected
