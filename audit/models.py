from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    """Who did what to a job, a limit or the budget; kept when the job or the person is gone."""

    class Action(models.TextChoices):
        SUBMITTED = "submitted", "Submitted a job"
        RETRIED = "retried", "Retried a job"
        CANCELLED = "cancelled", "Cancelled a job"
        DELETED = "deleted", "Deleted a job"
        ATTACHED_ID = "attached_id", "Attached a gateway id"
        LIMIT_CHANGED = "limit_changed", "Changed a person's limits"
        BUDGET_CHANGED = "budget_changed", "Changed the team budget"

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # A copy, so the record still names someone whose account was deleted.
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=32, choices=Action)
    # A plain number, not a foreign key: the record outlives the job it names.
    job_id = models.BigIntegerField(null=True, blank=True)
    job_label = models.CharField(max_length=80, blank=True)
    target = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="audit_newest"),
            models.Index(fields=["action", "-created_at"], name="audit_action_newest"),
            models.Index(fields=["actor", "-created_at"], name="audit_actor_newest"),
            models.Index(fields=["job_id", "-created_at"], name="audit_job_newest"),
        ]

    def __str__(self):
        return f"{self.actor_name} {self.get_action_display().lower()} at {self.created_at:%Y-%m-%d %H:%M}"
