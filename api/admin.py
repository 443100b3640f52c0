from django.contrib import admin, messages
from django.db import models

from api.models import ApiToken, Webhook, WebhookDelivery


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username", "prefix"]
    # The hash is never shown; nobody can make a token here (it would need showing once).
    fields = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        revoked = sum(token.revoke() for token in queryset)
        messages.success(request, f"Revoked {revoked} token(s); they stop working at once.")


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ["url", "owner", "scope", "active", "failing_since", "created_at"]
    list_filter = ["active", "scope"]
    exclude = ["secret"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["event", "webhook", "job", "attempts", "delivered_at", "given_up_at", "created_at"]
    list_filter = ["event"]
    readonly_fields = [field.name for field in WebhookDelivery._meta.fields] + ["log"]

    def has_add_permission(self, request):
        return False  # Deliveries are made by the webhook sweep.
