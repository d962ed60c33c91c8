"""URLs of the benchmark server: django_alipay under /alipay/, the baseline views, and a readiness probe."""

from __future__ import annotations

from django.urls import include, path

from benchsite import views

urlpatterns = [
    path("alipay/", include("django_alipay.urls")),
    path("baseline/notify/<str:token>/", views.baseline_notify, name="baseline-notify"),
    path("minimal/notify/<str:token>/", views.minimal_notify, name="minimal-notify"),
    path("ping/", views.ping, name="ping"),
]
