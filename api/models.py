"""Personal API tokens, idempotent creates and webhooks: the API's own rows, beside jobs'."""

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from jobs.models import VideoJob

# A token is looked up by its hash; last_used_at is written at most this often, so
# a busy script does not turn every read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)
IDEMPOTENCY_TTL = timedelta(hours=24)
TOKEN_PREFIX = "sw_"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def live(self) -> "ApiTokenQuerySet":
        return self.filter(revoked_at__isnull=True)


class ApiToken(models.Model):
    """A personal token: only its SHA-256 is kept; the secret is shown once, when made."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    # The first characters of the token, enough for a person to tell their tokens apart.
    prefix = models.CharField(max_length=16)
    hashed = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self):
        return f"{self.name} ({self.prefix}…) of {self.user}"

    @classmethod
    def issue(cls, user: Any, name: str) -> tuple["ApiToken", str]:
        """A new token for user; returns (row, secret). The secret exists only in this answer."""
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(user=user, name=name, prefix=secret[:10], hashed=digest(secret))
        return token, secret

    @classmethod
    def authenticate(cls, secret: str) -> "ApiToken | None":
        """The live token with this secret, its last use recorded; None if unknown or revoked."""
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
            return None
        token = cls.objects.live().select_related("user").filter(hashed=digest(secret)).first()
        if token is None or not token.user.is_active:
            return None
        now = timezone.now()
        if token.last_used_at is None or token.last_used_at < now - LAST_USED_RESOLUTION:
            cls.objects.filter(pk=token.pk).update(last_used_at=now)
        return token

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def revoke(self) -> bool:
        return bool(
            ApiToken.objects.filter(pk=self.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        )


class IdempotencyKey(models.Model):
    """The first answer to a create sent with an Idempotency-Key, replayed to its repeats for 24 h."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # SHA-256 of the request's canonical JSON and its files' digests.
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    # The rendered answer, as text: a replay is byte for byte the first (jsonb would reorder keys).
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_user_key")]

    def __str__(self):
        return f"{self.key} of {self.user}"

    @property
    def expired(self) -> bool:
        return self.created_at < timezone.now() - IDEMPOTENCY_TTL

    @classmethod
    def forget_expired(cls, now: datetime | None = None) -> int:
        expired = cls.objects.filter(created_at__lt=(now or timezone.now()) - IDEMPOTENCY_TTL)
        # Read first: an empty DELETE would still take SQLite's write lock on every sweep.
        return expired.delete()[0] if expired.exists() else 0


class Webhook(models.Model):
    class Scope(models.TextChoices):
        OWN = "own", "My jobs"
        TEAM = "team", "Every job in the studio (staff)"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=64)
    scope = models.CharField(max_length=8, choices=Scope, default=Scope.OWN)
    active = models.BooleanField(default=True)
    # Set when a delivery gave up; cleared by the next one that gets through.
    failing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.url

    def save(self, *args, **kwargs):
        self.secret = self.secret or "whsec_" + secrets.token_urlsafe(32)
        super().save(*args, **kwargs)

    def covers(self, job: VideoJob) -> bool:
        """Whether this webhook hears about job: its owner's own, or (staff, team scope) every job."""
        if self.scope == self.Scope.TEAM and self.owner.is_staff:
            return True
        return job.owner_id == self.owner_id


class WebhookDelivery(models.Model):
    """One event for one webhook, sent at least once from the database like the jobs' sweep."""

    class Event(models.TextChoices):
        SUCCEEDED = "job.succeeded", "Succeeded"
        FAILED = "job.failed", "Failed"
        CANCELLED = "job.cancelled", "Cancelled"
        NEEDS_ATTENTION = "job.needs_attention", "Needs attention"
        TEST = "test", "Test event"

    # The final status each event announces.
    FOR_STATUS = {
        VideoJob.Status.SUCCEEDED: Event.SUCCEEDED,
        VideoJob.Status.FAILED: Event.FAILED,
        VideoJob.Status.CANCELLED: Event.CANCELLED,
        VideoJob.Status.UNKNOWN: Event.NEEDS_ATTENTION,
    }

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    # SET_NULL: a delivery of a deleted job still goes out (its payload is kept) and stays in the log.
    job = models.ForeignKey(VideoJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    event = models.CharField(max_length=32, choices=Event)
    payload = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=32, blank=True)
    # [{"at": iso time, "status": HTTP status or null, "error": text, "ms": duration}], newest last.
    log = models.JSONField(default=list)
    delivered_at = models.DateTimeField(null=True, blank=True)
    given_up_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            # An event is queued once per webhook, however often the sweep sees the job.
            models.UniqueConstraint(fields=["webhook", "job", "event"], name="delivery_once"),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(delivered_at__isnull=True, given_up_at__isnull=True),
                name="delivery_due",
            ),
        ]

    def __str__(self):
        return f"{self.event} to {self.webhook}"

    @property
    def state(self) -> str:
        if self.delivered_at:
            return "delivered"
        if self.given_up_at:
            return "gave up"
        return "retrying" if self.attempts else "queued"

    @classmethod
    def lease_due(cls, limit: int = 100, now: datetime | None = None) -> list[tuple[int, str]]:
        """Lease the deliveries whose turn has come; returns [(pk, token)] to send."""
        now = now or timezone.now()
        pending = cls.objects.filter(delivered_at__isnull=True, given_up_at__isnull=True)
        pks = list(
            pending.filter(next_attempt_at__lte=now)
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:limit]
        )
        token = uuid.uuid4().hex
        lease = timedelta(seconds=2 * sum(webhook_timeout()) + 5)
        # Conditional: a row another sweep leased in between (its next_attempt_at moved) is skipped.
        cls.objects.filter(pk__in=pks, next_attempt_at__lte=now, delivered_at__isnull=True).update(
            lease_token=token, next_attempt_at=now + lease
        )
        return list(cls.objects.filter(pk__in=pks, lease_token=token).values_list("pk", "lease_token"))

    def take_lease(self, token: str) -> bool:
        return bool(token) and bool(
            WebhookDelivery.objects.filter(pk=self.pk, lease_token=token, delivered_at__isnull=True).update(
                lease_token=""
            )
        )

    def record(self, status: int | None, error: str, millis: int, now: datetime | None = None) -> None:
        """Log one attempt and decide what comes next: done, a later try, or giving up."""
        now = now or timezone.now()
        self.attempts += 1
        self.log = [*self.log, {"at": now.isoformat(), "status": status, "error": error[:300], "ms": millis}][
            -30:
        ]
        fields = ["attempts", "log", "next_attempt_at"]
        if status is not None and 200 <= status < 300:
            self.delivered_at, self.next_attempt_at = now, None
            fields.append("delivered_at")
            Webhook.objects.filter(pk=self.webhook_id, failing_since__isnull=False).update(failing_since=None)
        elif now - self.created_at >= timedelta(seconds=settings.SORAWEB_WEBHOOK_GIVE_UP_AFTER):
            self.given_up_at, self.next_attempt_at = now, None
            fields.append("given_up_at")
            Webhook.objects.filter(pk=self.webhook_id, failing_since__isnull=True).update(failing_since=now)
        else:
            delay = min(settings.SORAWEB_WEBHOOK_BACKOFF * 2 ** (self.attempts - 1), 3600)
            self.next_attempt_at = now + timedelta(seconds=delay)
        self.save(update_fields=fields)


def webhook_timeout() -> tuple[float, float]:
    return (settings.SORAWEB_WEBHOOK_CONNECT_TIMEOUT, settings.SORAWEB_WEBHOOK_READ_TIMEOUT)


class Watermark(models.Model):
    """How far the webhook sweep has read the jobs' completion times."""

    name = models.CharField(max_length=40, primary_key=True)
    reached = models.DateTimeField()

    def __str__(self):
        return f"{self.name} at {self.reached}"
