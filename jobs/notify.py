"""What static/js/notify.js asks for: the person's own jobs that finished since a cursor."""

import calendar
import re
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.text import Truncator
from django.views.decorators.http import require_GET

from jobs.models import VideoJob

Status = VideoJob.Status
# Cancelling is the person's own doing: nothing to tell them.
TOLD = {
    Status.SUCCEEDED: "Your video is ready",
    Status.FAILED: "Your video failed",
    Status.UNKNOWN: "Your video needs attention",
}
BATCH = 20
# A tab opened after a long absence tells only of the last hour, not of every job since.
MAX_AGE = timedelta(hours=1)


def cursor_of(completed_at, pk):
    micros = calendar.timegm(completed_at.utctimetuple()) * 10**6 + completed_at.microsecond
    return f"{micros}_{pk}"


def parse_cursor(value):
    match = re.fullmatch(r"(\d{1,17})_(\d{1,19})", value or "")
    if not match:
        return None
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(match[1])), int(match[2])


def message(job):
    prompt = Truncator(job.prompt).chars(100)
    if job.status == Status.SUCCEEDED:
        return prompt
    return f"{prompt}\n{Truncator(job.error).chars(160)}" if job.error else prompt


@login_required
@require_GET
def finished(request):
    """{"cursor", "poll", "jobs": [...]}; without ?since= only the cursor to start from."""
    mine = VideoJob.objects.filter(owner=request.user, completed_at__isnull=False)
    poll = {
        "visible": settings.SORAWEB_NOTIFY_POLL_SECONDS,
        "hidden": settings.SORAWEB_NOTIFY_HIDDEN_POLL_SECONDS,
    }
    since = parse_cursor(request.GET.get("since"))
    if since is None:
        latest = mine.order_by("-completed_at", "-id").values_list("completed_at", "id").first()
        return JsonResponse({"cursor": cursor_of(*latest) if latest else "0_0", "poll": poll, "jobs": []})
    at, pk = since
    oldest = timezone.now() - MAX_AGE
    if at < oldest:
        at, pk = oldest, 0
    # (completed_at, id) keyset on the job_owner_finished index: the same cost however long the history.
    rows = list(
        mine.filter(completed_at__gte=at)
        .filter(Q(completed_at__gt=at) | Q(pk__gt=pk))
        .order_by("completed_at", "id")
        .only("id", "prompt", "status", "error", "poster", "completed_at")[:BATCH]
    )
    jobs = [
        {
            "id": job.pk,
            "status": job.status,
            "title": TOLD[job.status],
            "body": message(job),
            "url": reverse("jobs:detail", args=[job.pk]),
            "icon": reverse("jobs:poster", args=[job.pk]) if job.poster else "",
        }
        for job in rows
        if job.status in TOLD
    ]
    cursor = cursor_of(rows[-1].completed_at, rows[-1].pk) if rows else request.GET["since"]
    return JsonResponse({"cursor": cursor, "poll": poll, "jobs": jobs})
