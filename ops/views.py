"""Staff pages about the server itself."""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, Q, Sum
from django.shortcuts import render
from django.views.decorators.http import require_GET

from jobs import disk, retention
from jobs.desk import staff_only


@staff_only
@require_GET
def storage(request):
    """Storage used per person and in total, free space, and what retention removes this week."""
    stored = Q(jobs__status="succeeded", jobs__files_removed_at__isnull=True)
    people = (
        get_user_model()
        .objects.annotate(
            videos=Count("jobs", filter=stored & ~Q(jobs__video="")),
            bytes=Sum("jobs__stored_bytes", filter=stored),
            unmeasured=Count("jobs", filter=stored & ~Q(jobs__video="") & Q(jobs__stored_bytes__isnull=True)),
            removed=Count("jobs", filter=Q(jobs__files_removed_at__isnull=False)),
        )
        .filter(Q(videos__gt=0) | Q(removed__gt=0))
        .order_by("-bytes", "username")
    )
    people = list(people)
    context = {
        "people": people,
        "total_bytes": sum(person.bytes or 0 for person in people),
        "total_videos": sum(person.videos for person in people),
        "unmeasured": sum(person.unmeasured for person in people),
        "free": disk.free_mb(),
        "shortage": disk.shortage(),
        "min_free_mb": settings.SORAWEB_MIN_FREE_DISK_MB,
        "keep_days": settings.SORAWEB_KEEP_VIDEOS_DAYS,
        "removed_this_week": retention.due(within=timedelta(days=7)).count(),
    }
    return render(request, "ops/storage.html", context)
