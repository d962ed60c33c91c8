"""The merchant admin: credentials entered write-only, the URLs Alipay needs, and a credentials test."""

from __future__ import annotations

from functools import update_wrapper
from typing import Any, ClassVar

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from django_alipay.admin.common import MerchantScopedAdmin
from django_alipay.domain import merchants
from django_alipay.enums import Environment
from django_alipay.forms import MerchantAdminForm
from django_alipay.models import Merchant
from django_alipay.models.merchant import ENCRYPTED_FIELDS

__all__ = ["MerchantAdmin"]

SECRET_POST_FIELDS = ("md5_key", "private_key", "alipay_public_key")


def _report(request: HttpRequest, merchant: Merchant) -> None:
    report = merchants.check_credentials(merchant)
    level = messages.SUCCESS if report.ok else messages.ERROR
    messages.add_message(request, level, f"{merchant.name}: {report.message}")


@admin.register(Merchant)
class MerchantAdmin(MerchantScopedAdmin):
    """Merchants with write-only secrets (last characters and a fingerprint shown, never the secret)."""

    form = MerchantAdminForm
    merchant_path = "pk"
    formfield_overrides: ClassVar[dict[type[models.Field[Any, Any]], dict[str, Any]]] = {
        models.URLField: {"assume_scheme": "https"}
    }
    change_form_template = "django_alipay/admin/merchant/change_form.html"
    list_display = ("name", "partner", "environment", "sign_type", "currency", "is_active", "key_summary")
    list_filter = ("environment", "sign_type", "is_active")
    search_fields = ("name", "partner")
    actions = ("test_credentials",)
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "partner", "environment", "is_active", "currency")}),
        (
            gettext_lazy("Gateway"),
            {
                "fields": (
                    "sign_type",
                    "charset",
                    "gateway_url",
                    "instore_gateway_url",
                    "notify_verify_url",
                    "notify_verify_method",
                )
            },
        ),
        (
            gettext_lazy("Keys (write-only: what you type replaces the stored key; empty keeps it)"),
            {"fields": ("md5_key", "private_key", "alipay_public_key", "public_key")},
        ),
        (gettext_lazy("Record"), {"classes": ("collapse",), "fields": ("created_at", "updated_at")}),
    )

    # --- view-only pages: the keys as their last characters, never the stored value -----------------------

    def get_fieldsets(self, request: HttpRequest, obj: Merchant | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or self.has_change_permission(request, obj):
            return fieldsets
        masked = {name: f"{name}_masked" for name in ENCRYPTED_FIELDS}
        return [
            (title, {**options, "fields": tuple(masked.get(str(f), f) for f in options["fields"])})
            for title, options in fieldsets
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Merchant | None = None) -> Any:
        return (*super().get_readonly_fields(request, obj), *(f"{name}_masked" for name in ENCRYPTED_FIELDS))

    @admin.display(description=gettext_lazy("MD5 key"))
    def md5_key_masked(self, obj: Merchant) -> str:
        return obj.masked("md5_key") or "—"

    @admin.display(description=gettext_lazy("merchant private key"))
    def private_key_masked(self, obj: Merchant) -> str:
        return obj.masked("private_key") or "—"

    @admin.display(description=gettext_lazy("Alipay public key"))
    def alipay_public_key_masked(self, obj: Merchant) -> str:
        return obj.masked("alipay_public_key") or "—"

    # --- display --------------------------------------------------------------------------------------------

    @admin.display(description=gettext_lazy("Keys"))
    def key_summary(self, obj: Merchant) -> str:
        field = "md5_key" if obj.sign_type == "MD5" else "private_key"
        return obj.masked(field) or _("missing")

    # --- secrets never reach error reports -------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        def wrap(view: Any) -> Any:
            def wrapper(*args: Any, **kwargs: Any) -> HttpResponse:
                return self.admin_site.admin_view(view)(*args, **kwargs)

            return update_wrapper(wrapper, view)

        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/test-credentials/",
                wrap(self.test_credentials_view),
                name="{}_{}_test_credentials".format(*info),
            ),
            *super().get_urls(),
        ]

    # Typed keys are hidden from Django's error reports should anything fail while saving.
    @method_decorator(sensitive_post_parameters(*SECRET_POST_FIELDS))
    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        return super().changeform_view(
            request, object_id, form_url, self._urls_context(request, object_id, extra_context)
        )

    def _urls_context(
        self, request: HttpRequest, object_id: str | None, extra: dict[str, Any] | None
    ) -> dict[str, Any]:
        context = dict(extra or {})
        merchant = self.get_object(request, unquote(object_id)) if object_id else None
        if merchant is not None:
            token = merchant.notify_token
            context["alipay_urls"] = {
                "notify": merchant.notify_url()
                or request.build_absolute_uri(reverse("django_alipay:notify", args=[token])),
                "notify_configured": bool(merchant.notify_url()),
                "return": request.build_absolute_uri(reverse("django_alipay:return", args=[token])),
                "test": reverse("admin:django_alipay_merchant_test_credentials", args=[merchant.pk]),
                "is_emulator": merchant.environment == Environment.EMULATOR,
            }
            context["can_test_credentials"] = self.has_change_permission(request, merchant)
        return context

    # --- credentials test ------------------------------------------------------------------------------

    @admin.action(description=gettext_lazy("Test credentials with Alipay"), permissions=["change"])
    def test_credentials(self, request: HttpRequest, queryset: QuerySet[Merchant]) -> None:
        for merchant in queryset:
            _report(request, merchant)

    def test_credentials_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return require_POST(self._test_credentials)(request, object_id)

    def _test_credentials(self, request: HttpRequest, object_id: str) -> HttpResponse:
        merchant = self.get_object(request, unquote(object_id))
        if merchant is None:
            raise Http404(_("No such merchant."))
        if not self.has_change_permission(request, merchant):
            raise PermissionDenied
        _report(request, merchant)
        return HttpResponseRedirect(reverse("admin:django_alipay_merchant_change", args=[merchant.pk]))
