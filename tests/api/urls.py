"""URLs of the API tests: the REST API mounted where the example project mounts it."""

from django.urls import include, path

urlpatterns = [
    path("alipay/api/", include("django_alipay.api.urls")),
]
