"""What a team keeps: each person's favourites and the team's boards of videos."""

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Exists, OuterRef
from django.utils import timezone

from jobs.models import VideoJob


class Favourite(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="favourites")
    job = models.ForeignKey(VideoJob, on_delete=models.CASCADE, related_name="favourites")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "job"], name="favourite_once")]
        indexes = [models.Index(fields=["user", "-created_at"], name="favourite_newest")]

    def __str__(self):
        return f"{self.user} ★ #{self.job_id}"

    @classmethod
    def toggle(cls, user: Any, job: VideoJob) -> bool:
        """Stars the job for user, or unstars it if starred; True when it is now starred."""
        deleted, _ = cls.objects.filter(user=user, job=job).delete()
        if deleted:
            return False
        cls.objects.get_or_create(user=user, job=job)
        return True

    @classmethod
    def starred(cls, user: Any, job_ids: list[int]) -> set[int]:
        """Which of job_ids user starred, in one query."""
        return set(cls.objects.filter(user=user, job_id__in=job_ids).values_list("job_id", flat=True))


class BoardQuerySet(models.QuerySet):
    def visible_to(self, user: Any) -> "BoardQuerySet":
        """Boards follow the gallery scope: with scope "own" a person sees only the boards they made."""
        if settings.SORAWEB_GALLERY_SCOPE == "own" and not user.is_staff:
            return self.filter(created_by=user)
        return self

    def with_cover(self, user: Any) -> "BoardQuerySet":
        """Each board's newest visible poster (as a job id) and its visible size, as subqueries."""
        items = BoardItem.objects.filter(board=OuterRef("pk"), job__in=VideoJob.objects.visible_to(user))
        cover = items.exclude(job__poster="").order_by("-added_at", "-id").values("job_id")[:1]
        return self.annotate(cover_id=models.Subquery(cover), has_items=Exists(items))


class Board(models.Model):
    name = models.CharField(max_length=80, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="boards")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = BoardQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def may_be_managed_by(self, user: Any) -> bool:
        """Renaming, deleting and sharing are for its maker and staff; the team may add and take off."""
        return bool(user.is_staff or self.created_by_id == user.pk)

    def add(self, user: Any, job_ids: list[int]) -> int:
        """Adds the jobs user may see to the board (already there: left alone); how many were new."""
        visible = VideoJob.objects.visible_to(user).filter(pk__in=job_ids).values_list("pk", flat=True)
        there = set(self.items.filter(job_id__in=job_ids).values_list("job_id", flat=True))
        new = [BoardItem(board=self, job_id=pk, added_by=user) for pk in visible if pk not in there]
        BoardItem.objects.bulk_create(new, ignore_conflicts=True)
        if new:
            self.save(update_fields=["updated_at"])
        return len(new)

    def remove(self, user: Any, job_ids: list[int]) -> int:
        """Takes the jobs user may see off the board (the videos stay); how many were removed."""
        visible = VideoJob.objects.visible_to(user).filter(pk__in=job_ids)
        removed, _ = self.items.filter(job__in=visible).delete()
        return removed


class BoardItem(models.Model):
    board = models.ForeignKey(Board, on_delete=models.CASCADE, related_name="items")
    job = models.ForeignKey(VideoJob, on_delete=models.CASCADE, related_name="board_items")
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["board", "job"], name="board_item_once")]
        indexes = [models.Index(fields=["board", "-added_at"], name="board_item_newest")]

    def __str__(self):
        return f"{self.board} · #{self.job_id}"
