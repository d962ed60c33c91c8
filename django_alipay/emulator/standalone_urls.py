"""Root URLconf of the standalone emulator: the emulator's URLs at the root, under their namespace."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [path("", include("django_alipay.emulator.urls"))]
