"""Settings of the example shop: SQLite and the built-in emulator by default, PostgreSQL/Redis from the env.

Environment variables (all optional):

- ``SHOP_BASE_URL``: where the shop is reached (default ``http://127.0.0.1:8000``); the notify URL Alipay is
  given is built from it, so it must be reachable by the gateway (here: the emulator in the same server).
- ``DATABASE_URL``: e.g. ``postgres://user:pass@localhost/shop`` (read with dj-database-url); default SQLite.
- ``CELERY_BROKER_URL``: e.g. ``redis://localhost:6379/0``; refunds then go through Celery workers.
- ``SHOP_SQLITE_PATH``: the SQLite file (default ``db.sqlite3`` beside manage.py).
- ``SHOP_SECRETS_FILE``: the local secrets file (default ``.demo-secrets.json`` beside manage.py, gitignored).
- ``ALIPAY_FERNET_KEY``, ``DJANGO_SECRET_KEY``: take these from the environment instead of the secrets file.
- ``SHOP_DEBUG=1``: Django's DEBUG (off by default; the emulator is allowed explicitly below).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import django_alipay.schedule
from example_project import demo_secrets

BASE_DIR = Path(__file__).resolve().parent.parent

_secrets = demo_secrets.load_or_create(Path(os.environ.get("SHOP_SECRETS_FILE") or demo_secrets.DEFAULT_PATH))

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or _secrets["secret_key"]
DEBUG = os.environ.get("SHOP_DEBUG", "") in ("1", "true", "yes")

#: The shop's own address, as the gateway and the buyer's browser reach it.
SHOP_BASE_URL = (os.environ.get("SHOP_BASE_URL") or "http://127.0.0.1:8000").rstrip("/")
#: The name of the merchant the shop sells as (made by `manage.py demo_setup`).
SHOP_MERCHANT_NAME = "Demo shop (emulator)"

ALLOWED_HOSTS = sorted({"127.0.0.1", "localhost", "[::1]", urlsplit(SHOP_BASE_URL).hostname or "localhost"})

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files for the API docs at /alipay/api/docs/, served locally
    "django_alipay",
    # The gateway emulator, mounted at /emulator/: a development and demo tool, never for production.
    "django_alipay.emulator",
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "shop.views.shop_context",
            ]
        },
    }
]


def _database() -> dict[str, Any]:
    url = os.environ.get("DATABASE_URL", "")
    if url:
        import dj_database_url  # only needed when a DATABASE_URL is given

        # Connections kept open between requests: opening one per notification costs more than handling it.
        return dict(dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True))
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SHOP_SQLITE_PATH") or str(BASE_DIR / "db.sqlite3"),
        # The shop, the emulator's notifier and a Celery worker write concurrently: wait for the lock, take it
        # at BEGIN (no upgrade deadlocks), and let readers read while one writes.
        "OPTIONS": {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL;",
        },
    }


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "admin:login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "Europe/London"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- django_alipay --------------------------------------------------------------------------------

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")

ALIPAY: dict[str, Any] = {
    "FERNET_KEYS": [os.environ.get("ALIPAY_FERNET_KEY") or _secrets["fernet_key"]],
    "DEFAULT_MERCHANT": SHOP_MERCHANT_NAME,
    # Alipay (here: the emulator in this same server) posts notifications to <base>/alipay/notify/<token>/.
    "NOTIFY_URL_BASE": f"{SHOP_BASE_URL}/alipay/notify/",
    # After paying, the buyer comes back through django_alipay's return view, which forwards to this page.
    "RETURN_REDIRECT": "shop:alipay-return",
    "API_ENABLED": True,
    "CELERY_ENABLED": bool(CELERY_BROKER_URL),
    # Past 16 notifications in progress per process, answer 503 at once and let Alipay resend later
    # (16 takes 50 notifications/s per process at 150 ms notify_verify with room to spare).
    "NOTIFY_MAX_IN_FLIGHT": 16,
}

# Without DEBUG the emulator serves only when allowed; the demo allows it, and says it knows that this is
# unsafe (a fake gateway anyone can pay through): never on a server that takes real payments.
ALIPAY_EMULATOR_ALLOW = True
ALIPAY_EMULATOR_UNSAFE_WITHOUT_DEBUG = True
ALIPAY_EMULATOR = {"NOTIFIER_THREAD": True}

# --- Celery (only when CELERY_BROKER_URL is set) --------------------------------------------------

CELERY_TASK_ALWAYS_EAGER = False
CELERY_BEAT_SCHEDULE = django_alipay.schedule.beat_schedule()
CELERY_TASK_ROUTES = django_alipay.schedule.task_routes()
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"short": {"format": "%(levelname)-7s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "short"}},
    "loggers": {
        "django_alipay": {
            "handlers": ["console"],
            "level": os.environ.get("SHOP_ALIPAY_LOG_LEVEL", "WARNING"),
        },
        "shop": {"handlers": ["console"], "level": "INFO"},
    },
}
