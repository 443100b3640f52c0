import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from jobs.models import VideoJob

# Days a link may live, as the form offers them; the first one listed is not the default.
LIFETIMES = (1, 7, 30)
DEFAULT_LIFETIME = 7


def token_hash(token: str) -> str:
    # Only the hash is stored: a leaked database or backup holds no working link.
    return hashlib.sha256(token.encode()).hexdigest()


class ShareLinkQuerySet(models.QuerySet):
    def managed_by(self, user: Any) -> "ShareLinkQuerySet":
        """The links user may see in the list and revoke: their own; staff, everyone's."""
        return self if user.is_staff else self.filter(created_by=user)

    def for_token(self, token: str) -> "ShareLink | None":
        """The link a token opens (revoked or expired ones too, so they can answer 410), or None."""
        # A lookup by hash: the database compares digests, never a prefix of the secret.
        return self.select_related("job").filter(token_hash=token_hash(token)).first()


class ShareLink(models.Model):
    """A read-only link to one finished video for someone without an account.

    Board links (issue 11) are left to the merge with library/: a link here always names a job.
    """

    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    job = models.ForeignKey(VideoJob, on_delete=models.CASCADE, related_name="share_links")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ShareLinkQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"share link to job #{self.job_id}"

    @classmethod
    def make(cls, job: VideoJob, user: Any, days: int = DEFAULT_LIFETIME) -> tuple["ShareLink", str]:
        """A new link and its token; the token is shown once and never stored."""
        token = secrets.token_urlsafe(32)  # 32 random bytes, 43 characters
        now = timezone.now()
        link = cls.objects.create(
            token_hash=token_hash(token),
            job=job,
            created_by=user,
            created_at=now,
            expires_at=now + timedelta(days=days),
        )
        return link, token

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def is_live(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    def revoke(self) -> bool:
        """Stop the link working; False if it already was revoked."""
        changed = ShareLink.objects.filter(pk=self.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        self.refresh_from_db(fields=["revoked_at"])
        return bool(changed)
