"""URLs of the example shop: the shop, the admin, django_alipay (notify, return, API) and the emulator."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("shop.urls")),
    path("admin/", admin.site.urls),
    # notify/<token>/, return/<token>/, and the REST API at api/ (schema at api/schema/).
    path("alipay/", include("django_alipay.urls")),
    # The gateway emulator: gateway.do, the cashier, control/ — for development and the demo only.
    path("emulator/", include("django_alipay.emulator.urls")),
]
