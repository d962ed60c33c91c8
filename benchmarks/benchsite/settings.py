"""Settings of the benchmark server: django_alipay with its REST API, and the baseline views, on PostgreSQL.

Everything comes from the environment the benchmark scripts set (nothing secret is ever on a command line):

- ``DATABASE_URL``: ``postgres://user:password@host:port/name`` (required).
- ``BENCH_FERNET_KEY``: the Fernet key merchant secrets are encrypted with (required).
- ``BENCH_CONN_MAX_AGE``: Django's CONN_MAX_AGE in seconds (default 60: persistent connections, as
  production sites usually run; 0 opens a connection per request).
- ``BENCH_NOTIFY_URL_BASE``: ``ALIPAY["NOTIFY_URL_BASE"]`` (default unset).
- ``BENCH_REFUND_SPACING``: ``ALIPAY["REFUND_SPACING"]`` in seconds (default 0: no spacing).
- ``BENCH_REFUND_SYNC``: ``ALIPAY["REFUND_SYNC"]``, ``1`` or ``0`` (default 1).
- ``BENCH_REFUND_DISPATCHER``: ``ALIPAY["REFUND_DISPATCHER"]`` (default: the library's, which sends at once).
- ``BENCH_NOTIFY_VERIFY``: ``ALIPAY["NOTIFY_VERIFY"]``, ``1`` or ``0`` (default 1; 0 for a diagnostic run).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlsplit


def _database(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise RuntimeError("DATABASE_URL must name a PostgreSQL database (run under scripts/with-services)")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "postgres",
        "USER": unquote(parts.username or "postgres"),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": str(parts.port or 5432),
        "CONN_MAX_AGE": int(os.environ.get("BENCH_CONN_MAX_AGE", "60")),
        "CONN_HEALTH_CHECKS": True,
    }


SECRET_KEY = os.environ.get("BENCH_SECRET_KEY") or os.urandom(32).hex()
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_alipay",
]

# A shop's usual stack: both the library's views and the baselines pass through it.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

ROOT_URLCONF = "benchsite.urls"
WSGI_APPLICATION = "benchsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

DATABASES = {"default": _database(os.environ.get("DATABASE_URL", ""))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

# Server-to-server API clients authenticate with a token (no session, no CSRF).
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.TokenAuthentication"],
}

ALIPAY: dict[str, Any] = {
    "FERNET_KEYS": [os.environ.get("BENCH_FERNET_KEY", "")],
    "API_ENABLED": True,
    "REFUND_SPACING": float(os.environ.get("BENCH_REFUND_SPACING", "0")),
    "REFUND_SYNC": os.environ.get("BENCH_REFUND_SYNC", "1") == "1",
    "NOTIFY_URL_BASE": os.environ.get("BENCH_NOTIFY_URL_BASE") or None,
    "NOTIFY_VERIFY": os.environ.get("BENCH_NOTIFY_VERIFY", "1") == "1",
}
if os.environ.get("BENCH_REFUND_DISPATCHER"):
    ALIPAY["REFUND_DISPATCHER"] = os.environ["BENCH_REFUND_DISPATCHER"]

# The emulator is not installed here: it runs as its own process. The merchant points at it.
SILENCED_SYSTEM_CHECKS = ["django_alipay.W011", "django_alipay.W002"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
    # 4xx answers (409 refusals) are expected here; errors still show.
    "loggers": {"django.request": {"level": "ERROR"}},
}
