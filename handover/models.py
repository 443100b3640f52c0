import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from jobs.models import VideoJob
from library.models import Board

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
        return self.select_related("job", "board", "created_by").filter(token_hash=token_hash(token)).first()


class ShareLink(models.Model):
    """A read-only link for someone without an account: to one finished video, or to one board's."""

    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    job = models.ForeignKey(
        VideoJob, on_delete=models.CASCADE, null=True, blank=True, related_name="share_links"
    )
    board = models.ForeignKey(
        Board, on_delete=models.CASCADE, null=True, blank=True, related_name="share_links"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ShareLinkQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(job__isnull=False, board__isnull=True)
                | models.Q(job__isnull=True, board__isnull=False),
                name="share_link_one_target",
                violation_error_message="A share link opens one video or one board.",
            )
        ]

    def __str__(self):
        return f"share link to {self.target_label}"

    @property
    def target_label(self) -> str:
        """What the link opens, in words: "video #12" or "board “Picks”"."""
        return f"board “{self.board}”" if self.board_id else f"video #{self.job_id}"

    @classmethod
    def make(
        cls, target: VideoJob | Board, user: Any, days: int = DEFAULT_LIFETIME
    ) -> tuple["ShareLink", str]:
        """A new link to a job or a board, and its token; the token is shown once and never stored."""
        token = secrets.token_urlsafe(32)  # 32 random bytes, 43 characters
        now = timezone.now()
        link = cls.objects.create(
            token_hash=token_hash(token),
            job=target if isinstance(target, VideoJob) else None,
            board=target if isinstance(target, Board) else None,
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
        # A link speaks for the person who made it: it stops when their account is deactivated.
        return self.revoked_at is None and not self.is_expired and self.created_by.is_active

    def board_jobs(self) -> "models.QuerySet[VideoJob]":
        """The videos a board link serves: ready ones on the board now that its maker may still see."""
        if not self.board_id:
            return VideoJob.objects.none()
        return (
            VideoJob.objects.visible_to(self.created_by)
            .on_board(self.board_id, self.created_by)
            .filter(status=VideoJob.Status.SUCCEEDED)
            .exclude(video="")
        )

    def revoke(self) -> bool:
        """Stop the link working; False if it already was revoked."""
        changed = ShareLink.objects.filter(pk=self.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        self.refresh_from_db(fields=["revoked_at"])
        return bool(changed)
