"""URLs of the mounting test: the app's own URLconf at alipay/, as a shop includes it (the API inside it)."""

from django.urls import include, path

urlpatterns = [
    path("alipay/", include("django_alipay.urls")),
]
