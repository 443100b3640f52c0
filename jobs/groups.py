"""The group page: variants of one submission side by side, keep one, delete the rest, retry them all."""

import uuid
from functools import partial

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from jobs import actions, submission
from jobs.models import VideoJob
from jobs.views import _manageable_job


def members(request, group):
    jobs = list(
        VideoJob.objects.visible_to(request.user).filter(group=group).select_related("owner").order_by("pk")
    )
    if not jobs:
        raise Http404
    return jobs


@login_required
@require_GET
@vary_on_headers("HX-Request")
def group(request, group):
    jobs = members(request, group)
    for job in jobs:
        job.manageable = job.may_be_managed_by(request.user)
    context = {
        "group": group,
        "jobs": jobs,
        "first": jobs[0],
        "live": any(not job.is_final for job in jobs),
        "deletable": deletable(request.user, jobs),
    }
    template = "jobs/_group_body.html" if request.htmx else "jobs/group.html"
    return render(request, template, context)


def deletable(user, jobs):
    """ "The rest": final variants user may manage that are not kept; only once one is kept."""
    if not any(job.kept for job in jobs):
        return []
    return [job for job in jobs if job.is_final and not job.kept and job.may_be_managed_by(user)]


@login_required
@require_POST
def keep(request, pk):
    """Star a variant (or unstar it with keep=0)."""
    job = _manageable_job(request, pk)
    kept = request.POST.get("keep", "1") == "1"
    VideoJob.objects.filter(pk=job.pk).update(kept=kept)
    messages.success(request, "Kept: this variant is starred." if kept else "No longer starred.")
    return redirect("jobs:group", group=job.group) if job.group else redirect("jobs:detail", pk=job.pk)


@login_required
@require_http_methods(["GET", "POST"])
def delete_rest(request, group):
    """Asks first (GET); deletes the finished, unkept variants the person may manage (POST)."""
    jobs = members(request, group)
    doomed = deletable(request.user, jobs)
    if not any(job.kept for job in jobs):
        messages.error(request, "Keep one variant first (the star), then delete the rest.")
        return redirect("jobs:group", group=group)
    if request.method == "POST":
        for job in doomed:
            actions.delete(job, request.user)
        messages.success(
            request, f"Deleted {len(doomed)} variant{'s' if len(doomed) != 1 else ''}; the kept ones stay."
        )
        return redirect("jobs:group", group=group)
    return render(
        request,
        "jobs/delete_rest.html",
        {"group": group, "doomed": doomed, "kept": [j for j in jobs if j.kept]},
    )


@login_required
@require_POST
def retry_group(request, group):
    """Every finished variant again, as one new group (all or none under the limits)."""
    jobs = [job for job in members(request, group) if job.is_final]
    if not jobs:
        messages.error(request, "The variants are still in progress; wait for them to finish first.")
        return redirect("jobs:group", group=group)
    new_group = uuid.uuid4()
    try:
        submission.submit_many(
            request.user, [partial(job.retry_as_new, request.user, new_group) for job in jobs]
        )
    except submission.LimitReached as exc:
        messages.error(request, f"Not retried: {exc}")
        return redirect("jobs:group", group=group)
    except OSError:
        messages.error(
            request, "A reference image is missing from storage; use “Use these settings” instead."
        )
        return redirect("jobs:group", group=group)
    messages.success(request, f"{len(jobs)} new variants with the same settings are on their way.")
    return redirect("jobs:group", group=new_group)
