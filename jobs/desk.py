"""The staff desk: the jobs a person has to decide about, and the actions that decide.

Pages only; the decisions themselves are VideoJob's transitions.
"""

from datetime import timedelta
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from jobs import actions
from jobs.models import AttachRefused, VideoJob
from jobs.templatetags.jobs_extras import seconds_text

Status = VideoJob.Status
SHOWN = 50
# A job this close to its deadline is on the desk even if it is not yet "stuck".
DEADLINE_SOON = timedelta(minutes=10)


def staff_only(view):
    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("Only staff can use the desk.")
        return view(request, *args, **kwargs)

    return wrapper


def waiting(now):
    """{group: queryset} of what needs a decision, each oldest first."""
    stuck_since = now - timedelta(minutes=settings.SORAWEB_STUCK_AFTER_MINUTES)
    open_jobs = VideoJob.objects.filter(dismissed_at__isnull=True).select_related("owner")
    return {
        "unknown": open_jobs.filter(status=Status.UNKNOWN),
        "download": open_jobs.filter(status=Status.FAILED, failure_kind=VideoJob.FailureKind.DOWNLOAD),
        "stuck": open_jobs.filter(status__in=VideoJob.ACTIVE).filter(
            Q(created_at__lte=stuck_since) | Q(deadline_at__lte=now + DEADLINE_SOON)
        ),
    }


def reason(group, job, now):
    """Why the job is on the desk, in a sentence."""
    if group == "stuck":
        took = seconds_text((now - job.created_at).total_seconds())
        expected = settings.SORAWEB_STUCK_AFTER_MINUTES
        text = f"{job.get_status_display()} for {took}; expected within {expected} min."
        if job.deadline_at and job.deadline_at <= now + DEADLINE_SOON:
            left = (job.deadline_at - now).total_seconds()
            text += f" Its deadline is in {seconds_text(left)}." if left > 0 else " Past its deadline."
        return text
    if group == "download" and job.result_url:
        return f"{job.error} " + (
            "The gateway's link is still alive: the download can be tried again."
            if job.link_alive
            else "The gateway's link has expired."
        )
    return job.error


@staff_only
@require_GET
def desk(request):
    now = timezone.now()
    lists = waiting(now)
    groups = []
    for key, title in [
        ("unknown", "Creates with an uncertain outcome"),
        ("download", "Finished videos that could not be downloaded"),
        ("stuck", "Jobs taking longer than expected"),
    ]:
        jobs = lists[key]
        rows = list(jobs.order_by("created_at", "id")[:SHOWN])
        count = len(rows) if len(rows) < SHOWN else jobs.count()
        groups.append(
            {
                "key": key,
                "title": title,
                "count": count,
                "more": count - len(rows),
                "rows": [{"job": job, "reason": reason(key, job, now)} for job in rows],
            }
        )
    return render(request, "jobs/desk.html", {"groups": groups, "total": sum(g["count"] for g in groups)})


def _back(request, job):
    return redirect("jobs:detail", pk=job.pk) if request.POST.get("back") == "job" else redirect("jobs:desk")


@staff_only
@require_POST
def attach(request, pk):
    job = get_object_or_404(VideoJob, pk=pk)
    try:
        actions.attach(job, request.POST.get("upstream_id", ""), by=request.user)
    except AttachRefused as exc:
        messages.error(request, f"Not attached: {exc}")
        return _back(request, job)
    messages.success(
        request,
        f"Attached {job.upstream_id} to job #{job.pk}. The next status check (within seconds) "
        "tells whether the gateway knows it; this page shows the answer.",
    )
    return redirect("jobs:detail", pk=job.pk)


@staff_only
@require_POST
def redownload(request, pk):
    job = get_object_or_404(VideoJob, pk=pk)
    if job.retry_download(by=request.user):
        messages.success(request, f"Job #{job.pk}: the download will be tried again in a few seconds.")
    else:
        messages.error(
            request, f"Job #{job.pk}: only a failed download whose link is still alive can be retried."
        )
    return _back(request, job)


@staff_only
@require_POST
def check(request, pk):
    job = get_object_or_404(VideoJob, pk=pk)
    if job.check_now():
        messages.success(request, f"Job #{job.pk} will be checked at the next sweep.")
    else:
        messages.info(request, f"Job #{job.pk} is not waiting for the gateway, so there is nothing to check.")
    return _back(request, job)


@staff_only
@require_POST
def dismiss(request, pk):
    job = get_object_or_404(VideoJob, pk=pk)
    if job.dismiss(by=request.user):
        messages.success(request, f"Job #{job.pk} is off the desk; it keeps its state and history.")
    return _back(request, job)
