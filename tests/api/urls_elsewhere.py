"""URLs of one schema test: the REST API mounted under another prefix, with a converter in it."""

from django.urls import include, path

urlpatterns = [
    path("shops/<slug:shop>/payments/", include("django_alipay.api.urls")),
]
