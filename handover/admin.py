from django.contrib import admin, messages

from handover.models import ShareLink


@admin.register(ShareLink)
class ShareLinkAdmin(admin.ModelAdmin):
    list_display = ("__str__", "created_by", "created_at", "expires_at", "revoked_at")
    list_filter = ("revoked_at",)
    list_select_related = ("board", "created_by")
    raw_id_fields = ("job", "board")
    # The token is never stored, so a link cannot be made or edited here: only seen and revoked.
    readonly_fields = ("job", "board", "created_by", "created_at", "expires_at", "revoked_at")
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected links")
    def revoke(self, request, queryset):
        count = sum(link.revoke() for link in queryset)
        self.message_user(request, f"{count} link(s) revoked.", messages.SUCCESS)
