from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

import audit
from jobs import actions, submission
from jobs.models import AttachRefused, UserLimits, VideoJob


@admin.register(VideoJob)
class VideoJobAdmin(admin.ModelAdmin):
    list_display = [
        "id", "prompt_excerpt", "status", "owner", "model", "aspect_ratio", "duration", "cost_in_unit",
        "created_at",
    ]  # fmt: skip
    list_display_links = ["id", "prompt_excerpt"]

    @admin.display(description="cost", ordering="cost")
    def cost_in_unit(self, job):
        return f"{job.cost:f} {settings.SORAWEB_COST_UNIT}" if job.cost is not None else "—"

    list_filter = ["status", "model", "owner", "created_at"]
    list_select_related = ["owner"]
    search_fields = ["prompt", "upstream_id"]
    date_hierarchy = "created_at"
    # No COUNT(*) of the whole table on every filtered page.
    show_full_result_count = False
    actions = ["poll_now", "attach_upstream_id", "retry_as_new", "mark_failed", "cancel"]
    # Every field is read-only: a status written by a form would skip the conditional
    # UPDATEs that keep workers from acting twice. Changes go through the actions.
    fieldsets = [
        (None, {"fields": ["video_preview", "prompt", "owner", "retry_of"]}),
        (
            "Settings",
            {"fields": [*VideoJob.CHOICES, "reference_preview", "reference_note"]},
        ),
        ("State", {"fields": ["status", "failure_kind", "error", "history_list"]}),
        (
            "Upstream",
            {
                "fields": [
                    "upstream_id",
                    "upstream_status",
                    "result_url",
                    "result_expires_at",
                    "actual_duration",
                    "cost",
                ]  # fmt: skip
            },
        ),
        (
            "Timings and counters",
            {
                "fields": [
                    "created_at",
                    "submitted_at",
                    "completed_at",
                    "updated_at",
                    "deadline_at",
                    "next_check_at",
                    "lease_token",
                    "submit_attempts",
                    "poll_count",
                    "error_count",
                    "download_attempts",
                ]  # fmt: skip
            },
        ),
        # `kept` is the one field a form may write: no worker ever touches it.
        ("Retention", {"fields": ["kept", "files_removed_at", "stored_bytes"]}),
    ]
    readonly_fields = [name for _, section in fieldsets for name in section["fields"] if name != "kept"]

    @admin.display(description="Prompt")
    def prompt_excerpt(self, job):
        return Truncator(job.prompt).chars(60)

    @admin.display(description="Video")
    def video_preview(self, job):
        if not job.video:
            return "No video yet."
        return format_html(
            '<video controls preload="metadata" width="480" src="{}" poster="{}"></video>',
            reverse("jobs:video", args=[job.pk]),
            reverse("jobs:poster", args=[job.pk]) if job.poster else "",
        )

    @admin.display(description="Reference image")
    def reference_preview(self, job):
        # Through the sign-in-only view: the stored files have no public URL.
        if not job.reference_image:
            return "None"
        return format_html(
            '<img src="{}" alt="Reference image" width="{}">',
            reverse("jobs:reference_image", args=[job.pk]),
            240 if job.is_landscape else 90,
        )

    def has_add_permission(self, request):
        # Jobs are made by the studio's form, which checks the image and submits them.
        return False

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and (obj is None or obj.is_final)

    def save_model(self, request, obj, form, change):
        # A full-row save could overwrite what a worker wrote meanwhile: save only what the form changed.
        if form.changed_data:
            obj.save(update_fields=form.changed_data)

    def delete_model(self, request, obj):
        actions.delete(obj, request.user)

    def delete_queryset(self, request, queryset):
        # has_delete_permission already refuses a selection with a job in progress.
        for job in queryset.filter(status__in=VideoJob.FINAL):
            self.delete_model(request, job)

    @admin.action(description="Poll now (queued or generating jobs)")
    def poll_now(self, request, queryset):
        count = sum(job.check_now() for job in queryset.filter(status__in=VideoJob.POLLING))
        self.message_user(request, f"{count} job(s) will be checked at the next sweep.", messages.SUCCESS)

    @admin.display(description="History")
    def history_list(self, job):
        if not job.history:
            return "—"
        return format_html_join(
            "\n",
            "<p>{} {}{}</p>",
            ((e["at"][:19], e["what"], f" (by {e['who']})" if e["who"] else "") for e in job.history),
        )

    @admin.action(description="Attach the gateway's job id (one job that needs attention)")
    def attach_upstream_id(self, request, queryset):
        """An intermediate page asks for the id; the sweep's next status call checks it."""
        jobs = list(queryset[:2])
        if len(jobs) != 1 or jobs[0].status != VideoJob.Status.UNKNOWN:
            self.message_user(request, "Choose exactly one job that needs attention.", messages.ERROR)
            return None
        job = jobs[0]
        if "apply" in request.POST:
            try:
                actions.attach(job, request.POST.get("upstream_id", ""), by=request.user)
            except AttachRefused as exc:
                self.message_user(request, f"Not attached: {exc}", messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Attached {job.upstream_id} to job #{job.pk}; it is checked at the next sweep.",
                    messages.SUCCESS,
                )
                return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Attach the gateway's job id",
            "job": job,
            "opts": self.model._meta,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/jobs/attach_upstream_id.html", context)

    @admin.action(description="Retry as a new job")
    def retry_as_new(self, request, queryset):
        count = 0
        for job in queryset.filter(status__in=VideoJob.FINAL):
            try:
                # The new jobs are this admin's, so this admin's own limits apply.
                submission.submit(request.user, lambda job=job: job.retry_as_new(request.user))
            except submission.LimitReached as exc:
                self.message_user(request, f"Stopped before job {job.pk}: {exc}", messages.ERROR)
                break
            except OSError:
                self.message_user(request, f"Job {job.pk}: its reference image is missing.", messages.ERROR)
            else:
                count += 1
        self.message_user(
            request, f"{count} new job(s) submitted; jobs still in progress are skipped.", messages.SUCCESS
        )

    @admin.action(description="Mark failed")
    def mark_failed(self, request, queryset):
        count = sum(
            job.mark_failed(VideoJob.FailureKind.PROVIDER, "Marked failed by an administrator.")
            for job in queryset.filter(status__in=VideoJob.ACTIVE)
        )
        self.message_user(request, f"{count} job(s) marked failed.", messages.SUCCESS)

    @admin.action(description="Cancel")
    def cancel(self, request, queryset):
        count = 0
        for job in queryset.filter(status__in=VideoJob.ACTIVE):
            count += actions.cancel(job, request.user)
        self.message_user(request, f"{count} job(s) cancelled.", messages.SUCCESS)


class LimitsInline(admin.StackedInline):
    model = UserLimits
    can_delete = False
    fields = ["active_jobs", "jobs_per_day", "monthly_spend", "usage_now"]
    readonly_fields = ["usage_now"]

    @admin.display(description="Used now")
    def usage_now(self, row):
        user = row.user if row and row.user_id else None
        if user is None:
            return "—"
        effective, used = submission.limits_for(user), submission.used_by(user, timezone.now())

        def of(limit):
            return f" of {limit}" if limit else " (no limit)"

        return (
            f"{used.in_progress} in progress{of(effective.active_jobs)}; "
            f"{used.today} today{of(effective.jobs_per_day)}; "
            f"{used.this_month:.2f} spent this month{of(effective.monthly_spend)}"
        )


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class TeamUserAdmin(UserAdmin):
    """Django's user admin, with each person's limits on their page."""

    inlines = [LimitsInline]

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        if formset.model is not UserLimits:
            return
        for inline in formset.forms:
            if inline.has_changed():
                changes = {
                    name: {
                        "before": _limit(inline.initial.get(name)),
                        "after": _limit(inline.cleaned_data[name]),
                    }
                    for name in inline.changed_data
                }
                audit.record(request.user, "limit_changed", target=f"limits of {form.instance}", **changes)


def _limit(value):
    return "server default" if value is None else str(value)
