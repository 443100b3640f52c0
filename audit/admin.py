from django.contrib import admin

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: a record nobody can edit or delete from the web."""

    list_display = ["created_at", "actor_name", "action", "job_id", "job_label", "target"]
    list_filter = ["action", "created_at"]
    search_fields = ["actor_name", "job_label", "target"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
