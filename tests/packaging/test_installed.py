"""The wheel in a fresh virtual environment works: imports, migrations, checks, templates, the emulator.

Every command runs in the fresh environment, in a directory outside the checkout, with a minimal shop's
settings written there; the checkout is never importable, so a file missing from the wheel fails here.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import urllib.request
from pathlib import Path

import pytest

from .conftest import FreshEnv

pytestmark = pytest.mark.slow

SHOP_SETTINGS = """
from pathlib import Path

SECRET_KEY = "packaging-test-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_alipay",
    "django_alipay.emulator",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASE_FILE = Path(__file__).with_name("shop.sqlite3")
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DATABASE_FILE}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "shop_urls"
STATIC_URL = "/static/"
ALIPAY = {"FERNET_KEYS": ["Pfb9ofqBIaATt0WUh3VQZz7Wk7q2n2aBoXCvtp0Jm8Q="], "API_ENABLED": True}
ALIPAY_EMULATOR_ALLOW = True
ALIPAY_EMULATOR_UNSAFE_WITHOUT_DEBUG = True
"""

SHOP_URLS = """
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("alipay/", include("django_alipay.urls")),
    path("emulator/", include("django_alipay.emulator.urls")),
]
"""

# Imports every module of the installed package and loads every template it ships; prints a JSON report.
# A module of an optional part may fail only for the optional dependency it names, and only when that
# dependency is really absent (the design rule: optional parts fail with a clear message).
SMOKE = r"""
import importlib, importlib.util, json, sys
from pathlib import Path

import django
django.setup()
from django.template.loader import get_template

import django_alipay

OPTIONAL = {
    "django_alipay.testing.plugin": ["pytest"],
    "django_alipay.api": ["drf_spectacular", "rest_framework"],
}
root = Path(django_alipay.__file__).parent
report = {"location": django_alipay.__file__, "imported": [], "failed": {}, "templates": [], "optional": {}}
for path in sorted(root.rglob("*.py")):
    parts = path.relative_to(root.parent).with_suffix("").parts
    name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    try:
        importlib.import_module(name)
    except Exception as exc:
        part = next((prefix for prefix in OPTIONAL if name == prefix or name.startswith(prefix + ".")), None)
        absent = [dep for dep in OPTIONAL.get(part, []) if importlib.util.find_spec(dep) is None]
        if absent and any(dep in str(exc) or getattr(exc, "name", None) == dep for dep in absent):
            report["optional"][name] = absent
        else:
            report["failed"][name] = repr(exc)
    else:
        report["imported"].append(name)
for template in sorted(root.rglob("templates/**/*.html")):
    name = template.as_posix().split("/templates/", 1)[1]
    get_template(name)
    report["templates"].append(name)
print(json.dumps(report))
"""

# A shop's page views, served from the installed package after migrate.
PAGES = r"""
import json

import django
django.setup()
from django.test import Client

client = Client()
pages = {
    "return": client.get("/alipay/return/no-such-token/"),
    "emulator": client.get("/emulator/"),
    "admin_login": client.get("/admin/login/"),
}
print(json.dumps({name: [page.status_code, page.content.decode()[:2000]] for name, page in pages.items()}))
"""

PLUGIN_TEST = """
import pytest

from django_alipay.testing import build_trade_notification


@pytest.mark.alipay_clock("2024-03-01 23:59:59")
def test_the_kit_works_from_the_wheel(alipay_clock):
    assert build_trade_notification("A-1", key="k" * 32).params["notify_time"] == alipay_clock.beijing


def test_an_emulator_from_the_wheel(alipay_emulator):
    published = alipay_emulator.control("keys")["keys"]["RSA"]["public_key_pem"]
    assert published == alipay_emulator.alipay_public_key
"""


@pytest.fixture(scope="module")
def shop(fresh_env: FreshEnv) -> FreshEnv:
    """The fresh environment with the minimal shop's settings and URLs in its working directory."""
    (fresh_env.work / "shop_settings.py").write_text(SHOP_SETTINGS)
    (fresh_env.work / "shop_urls.py").write_text(SHOP_URLS)
    (fresh_env.work / "smoke.py").write_text(SMOKE)
    (fresh_env.work / "pages.py").write_text(PAGES)
    return fresh_env


def django_admin(shop: FreshEnv, *args: str) -> str:
    return shop.run(shop.tool("django-admin"), *args, DJANGO_SETTINGS_MODULE="shop_settings")


def test_every_module_imports_and_every_template_loads(shop: FreshEnv) -> None:
    report = json.loads(shop.run(shop.python, "smoke.py", DJANGO_SETTINGS_MODULE="shop_settings"))

    assert "site-packages" in report["location"], report["location"]  # the wheel, never the checkout
    assert report["failed"] == {}
    assert {
        "django_alipay.protocol.signing",
        "django_alipay.emulator.server",
        "django_alipay.testing.builders",
    } <= set(report["imported"])
    assert report["optional"].get("django_alipay.testing.plugin") == ["pytest"]
    assert {"django_alipay/return.html", "django_alipay_emulator/cashier.html"} <= set(report["templates"])


def test_migrate_check_and_no_missing_migrations(shop: FreshEnv) -> None:
    migrated = django_admin(shop, "migrate", "--noinput")
    checked = django_admin(shop, "check", "--fail-level", "WARNING")
    pending = django_admin(
        shop, "makemigrations", "--check", "--dry-run", "django_alipay", "django_alipay_emulator"
    )

    assert "Applying django_alipay.0001_initial... OK" in migrated
    assert "Applying django_alipay_emulator.0001_initial... OK" in migrated
    assert "System check identified no issues" in checked
    assert "No changes detected" in pending
    pages = json.loads(shop.run(shop.python, "pages.py", DJANGO_SETTINGS_MODULE="shop_settings"))
    assert {name: status for name, (status, _) in pages.items()} == {
        "return": 200,
        "emulator": 200,
        "admin_login": 200,
    }


def test_the_standalone_emulator_runs_from_the_wheel(shop: FreshEnv, tmp_path: Path) -> None:
    command = [str(shop.python), "-m", "django_alipay.emulator", "--port", "0", "--quiet"]
    errors = (tmp_path / "emulator-stderr.txt").open("w+")
    process = subprocess.Popen(
        command, cwd=shop.work, env=shop.environ(), stdout=subprocess.PIPE, stderr=errors, text=True
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or ()], daemon=True).start()
    try:
        ready = lines.get(timeout=120).split()
        assert ready[0] == "ready", ready
        base = ready[1].removesuffix("gateway.do")
        with urllib.request.urlopen(base, timeout=30) as page:  # the status page renders its templates
            assert (page.status, page.headers.get_content_type()) == (200, "text/html")
        with urllib.request.urlopen(base + "control/keys", timeout=30) as answer:
            assert set(json.load(answer)["keys"]) == {"RSA", "RSA2", "DSA"}
    finally:
        process.terminate()
        code = process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
        errors.seek(0)
        stderr = errors.read()
        errors.close()
    assert code == 0
    assert "Warning" not in stderr, stderr[-4000:]  # e.g. a dependency's deprecation, printed at start


def test_the_pytest_plugin_runs_from_the_wheel(shop: FreshEnv, tmp_path: Path) -> None:
    shop.run(shop.python, "-m", "pip", "install", "--quiet", "pytest", timeout=600)
    (tmp_path / "test_kit.py").write_text(PLUGIN_TEST)

    output = shop.run(
        shop.python,
        "-m",
        "pytest",
        "-p",
        "django_alipay.testing.plugin",
        "-p",
        "no:cacheprovider",
        "-q",
        tmp_path,
    )

    assert "2 passed" in output


def test_pip_check_finds_every_requirement_of_the_fresh_install(shop: FreshEnv) -> None:
    assert "No broken requirements found." in shop.run(shop.python, "-m", "pip", "check")


# Imports every part a shop touches and runs the system checks with warnings as errors: a warning from this
# package (or one it causes in a dependency) fails the command.
NO_WARNINGS = r"""
import django
django.setup()
import django_alipay.protocol.keys, django_alipay.protocol.signing, django_alipay.emulator.server
import django_alipay.tasks, django_alipay.api.views, django_alipay.admin
from django.core.management import call_command
from django_alipay.protocol import keys, signing
key = keys.generate_private_key("DSA")
params = {"service": "test"}
assert signing.verify(dict(params, sign=signing.sign(params, sign_type="DSA", key=key), sign_type="DSA"),
                      key=keys.public_key_pem(key))
call_command("check", "--fail-level", "WARNING")
print("no warnings")
"""


def test_import_check_and_dsa_print_no_warning(shop: FreshEnv) -> None:
    (shop.work / "no_warnings.py").write_text(NO_WARNINGS)
    done = subprocess.run(
        [str(shop.python), "-W", "error", "no_warnings.py"],
        cwd=shop.work,
        env=shop.environ(DJANGO_SETTINGS_MODULE="shop_settings"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.strip().endswith("no warnings")
    assert "Warning" not in done.stderr, done.stderr[-4000:]


WORKER_SETTINGS = """
import os

from shop_settings import *  # noqa: F403
from shop_settings import ALIPAY as SHOP_ALIPAY, DATABASES as SHOP_DATABASES

DATABASES = {"default": {**SHOP_DATABASES["default"], "NAME": os.environ["SHOP_DATABASE"],
                         "OPTIONS": {"timeout": 30}}}
ALIPAY = {**SHOP_ALIPAY, "CELERY_ENABLED": True}
CELERY_BROKER_URL = os.environ["REDIS_URL"]
"""

# The queues docs/celery.md tells a shop's worker to consume.
WORKER_OPTIONS = ("-Q", "celery,alipay,alipay_refunds", "--pool", "solo", "--loglevel", "INFO")

WORKER_APP = """
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "worker_settings")
app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
"""

# Pays a trade at a standalone emulator from the wheel, asks for a refund (sent to Redis on commit) and
# waits for the worker to settle it; prints the refund's final status.
REFUND_THROUGH_WORKER = r"""
import json, time
from decimal import Decimal

import django
django.setup()
import shop_celery  # what a project's __init__.py does: the Celery app in use, configured from settings
from django_alipay.domain import refunds, trades
from django_alipay.testing import EmulatorProcess

with EmulatorProcess() as emulator:
    merchant = emulator.merchant()
    start = trades.create_trade(merchant, out_trade_no="WHEEL-1", amount="25.00", subject="A wheel")
    emulator.pay(url=start.url)
    trade = merchant.trades.get(out_trade_no="WHEEL-1")
    trades.sync_trade(trade)
    trade.refresh_from_db()
    refund = refunds.request_refund(trade, Decimal("10.00"), reason="worker from the wheel")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        refund.refresh_from_db()
        if refund.status in ("succeeded", "failed", "unknown") or refund.accepted:
            break
        time.sleep(0.5)
    calls = emulator.calls("forex_refund")
    # Sent between 00:00 and 01:30 Beijing time, a refund is accepted asynchronously: sent all the same.
    status = "succeeded" if refund.status == "submitted" and refund.accepted else refund.status
    print(json.dumps({"paid": trade.is_paid, "refund": status, "calls": len(calls)}))
"""


def test_a_worker_from_the_wheel_starts_on_redis_and_sends_a_refund(shop: FreshEnv, tmp_path: Path) -> None:
    import os

    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        pytest.fail("REDIS_URL is not set: run the suite through scripts/with-services", pytrace=False)
    (shop.work / "worker_settings.py").write_text(WORKER_SETTINGS)
    (shop.work / "shop_celery.py").write_text(WORKER_APP)
    (shop.work / "refund_through_worker.py").write_text(REFUND_THROUGH_WORKER)
    database = tmp_path / "worker-shop.sqlite3"
    environ = {
        "DJANGO_SETTINGS_MODULE": "worker_settings",
        "SHOP_DATABASE": str(database),
        "REDIS_URL": redis_url,
    }
    shop.run(shop.tool("django-admin"), "migrate", "--noinput", **environ)
    log = tmp_path / "worker.log"
    with log.open("w") as output:
        worker = subprocess.Popen(
            [str(shop.tool("celery")), "-A", "shop_celery", "worker", *WORKER_OPTIONS],
            cwd=shop.work,
            env=shop.environ(**environ),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            result = json.loads(
                shop.run(shop.python, "refund_through_worker.py", timeout=300, **environ).splitlines()[-1]
            )
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    text = log.read_text()
    assert "ModuleNotFoundError" not in text, text[-4000:]
    assert "DeprecationWarning" not in text, text[-4000:]
    assert result == {"paid": True, "refund": "succeeded", "calls": 1}, text[-4000:]
