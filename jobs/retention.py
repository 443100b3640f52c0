"""Retention: videos older than SORAWEB_KEEP_VIDEOS_DAYS lose their files, never their row.

A video is exempt when its job is `kept` (the take a group keeps, or marked by staff in
the admin), or when an exemption registered by another app says so (the library
registers "starred or on a board"): jobs/ never names the apps built on it, they add
their rule here from their AppConfig.ready().
"""

from collections.abc import Callable, Iterable
from contextlib import suppress
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from jobs import media
from jobs.models import VideoJob

# Each returns a Q matching VideoJob rows that must be kept.
_exemptions: list[Callable[[], Q]] = []


def exempt_when(rule: Callable[[], Q]) -> None:
    """Register a rule (a callable returning a Q over VideoJob) for videos retention keeps."""
    _exemptions.append(rule)


def exempt() -> Q:
    rule = Q(kept=True)
    for extra in _exemptions:
        rule |= extra()
    return rule


def stored() -> QuerySet[VideoJob]:
    """Succeeded jobs whose files are still stored."""
    return VideoJob.objects.filter(status=VideoJob.Status.SUCCEEDED, files_removed_at__isnull=True)


def due(now: datetime | None = None, within: timedelta = timedelta(0)) -> QuerySet[VideoJob]:
    """Jobs whose files retention removes by now + within (empty when videos are kept forever)."""
    days = settings.SORAWEB_KEEP_VIDEOS_DAYS
    if not days:
        return VideoJob.objects.none()
    cutoff = (now or timezone.now()) + within - timedelta(days=days)
    return stored().filter(completed_at__lte=cutoff).exclude(exempt())


def remove_expired(now: datetime | None = None, limit: int = 500) -> int:
    """Remove the video and poster of each job past its time; returns how many."""
    removed = 0
    for job in due(now).order_by("completed_at")[:limit]:
        storage = job.video.storage
        names = [field.name for field in (job.video, job.poster) if field]
        if job.poster:
            names += [media.sized_name(job.poster.name, width) for width in media.IMAGE_WIDTHS]
        # The row first: a page never links to a file that is gone; at worst a file outlives it.
        if not job.mark_files_removed(settings.SORAWEB_KEEP_VIDEOS_DAYS):
            continue
        for name in names:
            with suppress(OSError):
                storage.delete(name)
        removed += 1
    return removed


def removals_within(jobs: Iterable[VideoJob], days: int = 7) -> dict[int, datetime]:
    """{pk: removal time} for those of jobs whose files go within days; one query, none when kept forever."""
    keep_days = settings.SORAWEB_KEEP_VIDEOS_DAYS
    candidates = [job.pk for job in jobs if job.status == VideoJob.Status.SUCCEEDED]
    if not keep_days or not candidates:
        return {}
    rows = due(within=timedelta(days=days)).filter(pk__in=candidates).values_list("pk", "completed_at")
    return {pk: completed + timedelta(days=keep_days) for pk, completed in rows if completed}
