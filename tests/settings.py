"""Django settings for the test suite."""

import os
from urllib.parse import urlsplit

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django.contrib.staticfiles",
    "django_alipay",
    "django_alipay.emulator",
]
STATIC_URL = "/static/"
# rest_framework is deliberately not installed here: tests/api adds it, so the checks for a missing DRF
# (django_alipay.E021) stay testable.
# Fast hashing: the suite logs users in thousands of times; never use this hasher outside tests.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The mounted emulator's background notifier would outlive transactional tests and touch flushed tables;
# tests that need deliveries call deliver_due_notifications() themselves.
ALIPAY_EMULATOR = {"NOTIFIER_THREAD": False}
# The test suite drives the mounted emulator with DEBUG False (pytest-django's default); allow it explicitly.
ALIPAY_EMULATOR_ALLOW = True
ALIPAY_EMULATOR_UNSAFE_WITHOUT_DEBUG = True


def _database_from_env() -> dict:
    """PostgreSQL when DATABASE_URL is set (make test starts a throwaway server), SQLite otherwise."""
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise ValueError(f"tests support postgres:// DATABASE_URLs only, not {parts.scheme!r}")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/") or "postgres",
        "USER": parts.username or "postgres",
        "PASSWORD": parts.password or "",
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": str(parts.port or 5432),
    }


DATABASES = {"default": _database_from_env()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
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

# --- django_alipay settings (the app's own configuration block) ---
# Test-only Fernet keys; a shop generates its own with `Fernet.generate_key()`.
ALIPAY: dict = {
    "FERNET_KEYS": [
        "Pfb9ofqBIaATt0WUh3VQZz7Wk7q2n2aBoXCvtp0Jm8Q=",
    ],
    # Tests send refunds back to back; the one test of the spacing sets its own.
    "REFUND_SPACING": 0,
    # Short deadlines keep the fault tests quick.
    "NOTIFY_VERIFY_TIMEOUT": 3,
    "HTTP_TOTAL_TIMEOUT": 10,
}
