import hashlib
from functools import wraps
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_not_required, login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import slugify
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST, require_safe
from django.views.decorators.vary import vary_on_headers

from jobs import actions, disk, estimates, files, firstrun, media, params, retention, submission
from jobs.forms import GalleryFilterForm, VideoJobForm
from jobs.models import VideoJob, cursor_value, parse_cursor

PAGE_SIZE = 24
TAB_COUNT_LIMIT = 1000
MAX_LIVE_IDS = 100
Status = VideoJob.Status
FILTERS = VideoJob.TABS
# What a card needs; prompts can be long but are shown, the rest of the row is not.
CARD_FIELDS = (
    "id", "prompt", "model", "aspect_ratio", "duration", "status", "failure_kind", "poster",
    "created_at", "submitted_at", "completed_at", "owner__username", "group", "kept", "files_removed_at",
)  # fmt: skip


def _visible_job(request, pk):
    return get_object_or_404(VideoJob.objects.visible_to(request.user).select_related("owner"), pk=pk)


def _manageable_job(request, pk):
    job = _visible_job(request, pk)
    if not job.may_be_managed_by(request.user):
        raise PermissionDenied("Only the job's owner or an admin can do that.")
    return job


def first_run_redirect(view):
    """While no account exists at all, send visitors to create the first one."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated and not get_user_model().objects.exists():
            return redirect("jobs:setup")
        return view(request, *args, **kwargs)

    return wrapper


# --- First run ------------------------------------------------------------------


@login_not_required
@never_cache
@require_http_methods(["GET", "POST"])
def setup(request):
    """Create the first (admin) account, proven by the setup code; gone once any account exists."""
    if not firstrun.needed():
        return redirect("login")
    form = firstrun.FirstAccountForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = firstrun.create_first_account(form)
        if user is None:  # Someone else was first, a moment ago.
            return redirect("login")
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.username}. You are this studio's first admin.")
        return redirect("jobs:gallery")
    firstrun.setup_code()  # Made and logged now if web's start could not (no tables yet, runserver).
    return render(request, "jobs/setup.html", {"form": form})


# --- Gallery --------------------------------------------------------------------


# Exempt from the sign-in middleware only so the first visit can reach the first-run
# page; @login_required below still sends everyone else to sign in.
@login_not_required
@first_run_redirect
@login_required
@require_GET
def gallery(request):
    tab = request.GET.get("status", "all")
    tab = tab if tab in FILTERS else "all"
    mine = request.GET.get("mine") == "1"
    filters = gallery_filters(request)
    unpicked = filters.apply(gallery_scope(request.user, mine), picks=False)
    counts = tab_counts(unpicked, filters)
    scope = filters.apply_picks(unpicked)
    jobs = scope.select_related("owner").only(*CARD_FIELDS).with_starred(request.user)
    if FILTERS[tab]:
        jobs = jobs.filter(status__in=FILTERS[tab])

    # Keyset pagination on (created_at, id): every page costs the same, however deep.
    before, after = _cursor(request.GET.get("before")), _cursor(request.GET.get("after"))
    if after:
        created_at, pk = after
        page = list(
            jobs.filter(created_at__gte=created_at)
            .filter(Q(created_at__gt=created_at) | Q(pk__gt=pk))
            .order_by("created_at", "id")[: PAGE_SIZE + 1]
        )
        has_newer, has_older = len(page) > PAGE_SIZE, True
        page = page[:PAGE_SIZE][::-1]
    else:
        if before:
            created_at, pk = before
            # The first filter is an index range; the second only settles ties on created_at.
            jobs = jobs.filter(created_at__lte=created_at).filter(Q(created_at__lt=created_at) | Q(pk__lt=pk))
        page = list(jobs.order_by("-created_at", "-id")[: PAGE_SIZE + 1])
        has_newer, has_older = bool(before), len(page) > PAGE_SIZE
        page = page[:PAGE_SIZE]
    page = whole_groups(jobs, page)

    kept = {**filters.params(), "mine": "1" if mine else None}

    def link(**params):
        query = {**kept, "status": tab if tab != "all" else None, **params}
        return "?" + urlencode({key: value for key, value in query.items() if value is not None})

    tabs = [
        {"key": key, "label": label, "count": counts[key], "url": link(status=key if key != "all" else None)}
        for key, label in [
            ("all", "All"),
            ("active", "In progress"),
            ("succeeded", "Succeeded"),
            ("failed", "Failed or needs attention"),
        ]
    ]
    removals = retention.removals_within(page)
    for job in page:
        job.removal_at = removals.get(job.pk)
    context = {
        "jobs": page,
        "entries": gallery_entries(page),
        # Staff are told before people's submissions start being refused for it.
        "storage_shortage": disk.shortage() if request.user.is_staff else None,
        "tab": tab,
        "tabs": tabs,
        "mine": mine,
        "filters": filters,
        "filtered": bool(filters.params()),
        "board_id": filters.values().get("board"),
        "filter_query": urlencode({key: value for key, value in kept.items() if value}),
        "mine_url": link(mine=None if mine else "1"),
        "newer_url": link(after=_cursor_value(page[0])) if has_newer and page else None,
        "older_url": link(before=_cursor_value(page[-1])) if has_older and page else None,
        "first_url": link() if (before or after) else None,
        "live_ids": [job.pk for job in page if not job.is_final],
        "live_version": live_version(page),
    }
    return render(request, "jobs/gallery.html", context)


def whole_groups(jobs, page):
    """The page, with any group cut by its first or last card completed from the next page.

    Variants sit next to each other in the gallery's order, so only the two ends can cut one;
    the cursors then follow the completed ends, and the next page starts after the group.
    """
    if not page:
        return page
    newest, oldest = page[0], page[-1]
    if oldest.group:
        older = jobs.filter(group=oldest.group, created_at__lte=oldest.created_at).filter(
            Q(created_at__lt=oldest.created_at) | Q(pk__lt=oldest.pk)
        )
        page = page + list(older.order_by("-created_at", "-id")[: VideoJob.MAX_VARIANTS])
    if newest.group:
        newer = jobs.filter(group=newest.group, created_at__gte=newest.created_at).filter(
            Q(created_at__gt=newest.created_at) | Q(pk__gt=newest.pk)
        )
        page = list(newer.order_by("-created_at", "-id")[: VideoJob.MAX_VARIANTS]) + page
    return page


def gallery_entries(page):
    """The page's cards: a job alone, or a group's variants stacked in one card.

    Variants are made in one transaction, so they sit next to each other in the gallery's order.
    """
    entries: list[dict] = []
    for job in page:
        if job.group and entries and entries[-1]["group"] == job.group:
            entries[-1]["members"].append(job)
        else:
            entries.append({"job": job, "group": job.group, "members": [job]})
    for entry in entries:
        entry["members"].reverse()  # The first made first, left to right.
    return entries


def gallery_scope(user, mine):
    scope = VideoJob.objects.visible_to(user)
    return scope.filter(owner=user) if mine else scope


def gallery_filters(request):
    """The search and filters in the URL."""
    return GalleryFilterForm(request.GET, request.user)


def tab_counts(unpicked, filters):
    """The count on each tab; unpicked: the gallery's jobs within the filters but favourites and board."""
    # A board's or someone's favourites' jobs are read by id, not found by walking the jobs
    # table and probing each row: see capped_counts.
    jobs, among = filters.counted_among(unpicked)
    counts = jobs.capped_counts(FILTERS, TAB_COUNT_LIMIT, among=among)
    return {
        name: f"{TAB_COUNT_LIMIT:,}+" if count > TAB_COUNT_LIMIT else count for name, count in counts.items()
    }


_cursor_value, _cursor = cursor_value, parse_cursor


@login_required
@require_GET
def cards(request):
    """The cards for ?ids=1,2,3 and the tab counts, each swapping itself in, and the next poll."""
    ids = [pk for part in request.GET.get("ids", "").split(",") if (pk := params.pk_or_none(part))]
    ids = list(dict.fromkeys(ids))[:MAX_LIVE_IDS]
    if version := request.GET.get("v"):
        shown = VideoJob.objects.visible_to(request.user).filter(pk__in=ids).values_list("pk", "status")
        if _version(shown) == version:
            # Nothing moved since the poller's last answer: htmx swaps nothing on a 204.
            return HttpResponse(status=204)
    jobs = list(
        VideoJob.objects.visible_to(request.user)
        .filter(pk__in=ids)
        .select_related("owner")
        .only(*CARD_FIELDS)
        .with_starred(request.user)
    )
    found = {job.pk for job in jobs}
    mine = request.GET.get("mine") == "1"
    filters = gallery_filters(request)
    context = {
        "jobs": sorted(jobs, key=lambda job: ids.index(job.pk)),
        "gone": [pk for pk in ids if pk not in found],
        # A card that moved moves the tab counts (of the filtered view) too.
        "counts": tab_counts(filters.apply(gallery_scope(request.user, mine), picks=False), filters),
        "filter_query": urlencode({**filters.params(), **({"mine": "1"} if mine else {})}),
        "live_ids": [job.pk for job in jobs if not job.is_final],
        "live_version": live_version(jobs),
    }
    return render(request, "jobs/cards.html", context)


def live_version(jobs):
    """Names what the in-progress cards show; the poller sends it back with its next request."""
    return _version((job.pk, job.status) for job in jobs if not job.is_final)


def _version(pks_and_statuses):
    # A card changes only with its status (the poster comes with success; the page counts the time).
    return hashlib.blake2b(repr(sorted(pks_and_statuses)).encode(), digest_size=8).hexdigest()


# --- Creating -------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def create(request):
    status = 200
    if request.method == "POST":
        form = VideoJobForm(
            request.POST,
            request.FILES,
            refused_uploads=getattr(request, "refused_uploads", None),
            user=request.user,
        )
        if form.is_valid():
            try:
                jobs = submission.submit_many(request.user, form.builds(request.user))
            except submission.LimitReached as exc:
                form.add_error(None, str(exc))
                status = 429
            else:
                what = (
                    f"Your {len(jobs)} variants are on their way."
                    if len(jobs) > 1
                    else "Your video is on its way."
                )
                messages.success(request, f"{what} It usually takes a few minutes.")
                return redirect("jobs:gallery")
        limit_notice = None
    else:
        source = _job_from_query(request)
        variants = request.GET.get("variants", "1")
        variants = int(variants) if variants in {"1", "2", "3", "4"} else 1
        form = VideoJobForm(
            initial=VideoJobForm.initial_from(source, variants) if source else {"variants": variants},
            user=request.user,
            source=source,
        )
        limit_notice = submission.refusal(request.user)
    context = {
        "form": form,
        "limit_notice": limit_notice,
        "estimates": estimates.table(),
    }
    return render(request, "jobs/create.html", context, status=status)


def _job_from_query(request):
    pk = params.pk_or_none(request.GET.get("from"))
    return (
        VideoJob.objects.visible_to(request.user).select_related("owner").filter(pk=pk).first()
        if pk
        else None
    )


# --- One job ----------------------------------------------------------------------


@login_required
@require_GET
@vary_on_headers("HX-Request")
def detail(request, pk):
    """The video page; an htmx poll gets just its live body, which stops polling once final."""
    scope = VideoJob.objects.visible_to(request.user).with_starred(request.user).select_related("owner")
    job = get_object_or_404(scope, pk=pk)
    context = {"job": job, "may_manage": job.may_be_managed_by(request.user)}
    template = "jobs/_detail_body.html" if request.htmx else "jobs/detail.html"
    return render(request, template, context)


@login_required
@require_POST
def retry(request, pk):
    job = _visible_job(request, pk)
    if not job.is_final:
        messages.error(request, "This job is still in progress; wait for it to finish or cancel it first.")
        return redirect("jobs:detail", pk=job.pk)
    try:
        submission.submit(request.user, lambda: job.retry_as_new(request.user))
    except submission.LimitReached as exc:
        messages.error(request, f"Not retried: {exc}")
        return redirect("jobs:detail", pk=job.pk)
    except OSError:
        messages.error(
            request,
            "This job's reference image is missing from storage, so it cannot be repeated as it was. "
            "Use “Use these settings” and choose the image again.",
        )
        return redirect("jobs:detail", pk=job.pk)
    messages.success(request, "A new job with the same settings is on its way.")
    return redirect("jobs:gallery")


@login_required
@require_POST
def cancel(request, pk):
    job = _manageable_job(request, pk)
    if actions.cancel(job, request.user):
        messages.success(
            request,
            "Cancelled: soraweb stopped tracking this job. If the service had already started it, "
            "it may still be billed.",
        )
    else:
        messages.info(request, "This job had already finished, so there was nothing to cancel.")
    return redirect("jobs:detail", pk=job.pk)


@login_required
@require_http_methods(["GET", "POST"])
def delete(request, pk):
    """Asks first (GET), deletes the job and its files (POST); only finished jobs."""
    job = _manageable_job(request, pk)
    if not job.is_final:
        messages.error(request, "This job is still in progress: cancel it first, then delete it.")
        return redirect("jobs:detail", pk=job.pk)
    if request.method == "POST":
        actions.delete(job, request.user)
        messages.success(request, "The job and its files were deleted.")
        return redirect("jobs:gallery")
    return render(request, "jobs/delete.html", {"job": job})


# --- Files: only through these views, only to signed-in people ---------------------


@login_required
@require_safe
def video(request, pk):
    job = _visible_job(request, pk)
    return files.response(request, job.video, "video/mp4")


@login_required
@require_safe
def download(request, pk):
    job = _visible_job(request, pk)
    name = slugify(job.prompt, allow_unicode=True)[:80].strip("-_") or f"video-{job.pk}"
    return files.response(request, job.video, "video/mp4", filename=f"{name}.mp4", as_attachment=True)


@login_required
@require_safe
def poster(request, pk):
    job = _visible_job(request, pk)
    return files.response(request, media.sized(job.poster, request.GET.get("w")), "image/jpeg", max_age=86400)


@login_required
@require_safe
def reference_image(request, pk):
    job = _visible_job(request, pk)
    field = media.sized(job.reference_image, request.GET.get("w"))
    return files.response(request, field, files.image_type(field.name), max_age=86400)


@login_not_required
@require_GET
def reference(request, token):
    """The signed, expiring link the gateway fetches a reference image from (no sign-in)."""
    pk = media.job_pk_from_reference_token(token)
    job = get_object_or_404(VideoJob, pk=pk) if pk else None
    if job is None or not job.reference_image:
        raise Http404
    # Streamed even on object storage: the gateway is not known to follow redirects.
    return files.response(
        request, job.reference_image, files.image_type(job.reference_image.name), offload=False
    )
