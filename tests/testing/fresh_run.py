"""A minimal shop project (settings, URLs) that pytester runs write into their temporary directory."""

SHOP_SETTINGS = """
SECRET_KEY = "shop-tests-only"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_alipay"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
ROOT_URLCONF = "shop_urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ALIPAY = {
    "FERNET_KEYS": ["Pfb9ofqBIaATt0WUh3VQZz7Wk7q2n2aBoXCvtp0Jm8Q="],
    "NOTIFY_URL_BASE": "http://127.0.0.1:9/alipay/notify/",
    "REFUND_SPACING": 0,
}
"""

SHOP_URLS = """
from django.urls import include, path

urlpatterns = [path("alipay/", include("django_alipay.urls"))]
"""
