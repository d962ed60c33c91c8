"""URLs of the test project."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("emulator/", include("django_alipay.emulator.urls")),
    path("alipay/", include("django_alipay.urls")),
]
