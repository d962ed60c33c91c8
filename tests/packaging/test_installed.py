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
ALIPAY = {"FERNET_KEYS": ["Pfb9ofqBIaATt0WUh3VQZz7Wk7q2n2aBoXCvtp0Jm8Q="]}
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


def test_the_standalone_emulator_runs_from_the_wheel(shop: FreshEnv) -> None:
    command = [str(shop.python), "-m", "django_alipay.emulator", "--port", "0", "--quiet"]
    process = subprocess.Popen(command, cwd=shop.work, env=shop.environ(), stdout=subprocess.PIPE, text=True)
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
        assert process.wait(timeout=30) == 0


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
