import re
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required, login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header, url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST, require_safe

from handover import actions, zips
from handover.models import DEFAULT_LIFETIME, LIFETIMES, ShareLink
from jobs import files, media, params, submission
from jobs.models import VideoJob
from library.models import Board

# --- Bulk actions on the gallery's selection ---------------------------------------


@login_required
@require_POST
def bulk(request):
    """The selection's action: zip answers with the ZIP, retry and delete go back with a message."""
    back = _next(request)
    action = request.POST.get("action")
    ids = actions.selected_ids(request.POST.getlist("ids"))
    if action not in ("zip", "retry", "delete"):
        messages.error(request, "Choose what to do with the selected videos.")
        return redirect(back)
    if not ids:
        messages.error(request, "Select at least one video first.")
        return redirect(back)
    if action == "zip":
        return _zip(request, ids, back)
    if action == "retry":
        try:
            outcome = actions.retry(request.user, ids)
        except submission.LimitReached as exc:
            messages.error(request, f"Nothing was retried: {exc}")
            return redirect(back)
        except OSError:
            messages.error(
                request,
                "Nothing was retried: a selected job's reference image is missing from storage. "
                "Retry the others without it, or use “Use these settings” on its page.",
            )
            return redirect(back)
        _report(request, outcome, "retried as new jobs", "Not retried")
    else:
        outcome = actions.delete(request.user, ids)
        _report(request, outcome, "deleted with their files", "Not deleted")
    return redirect(back)


def _zip(request, ids, back):
    if len(ids) > zips.MAX_JOBS:
        messages.error(
            request,
            f"A ZIP holds at most {zips.MAX_JOBS} videos and {len(ids)} are selected: "
            "download them in smaller groups.",
        )
        return redirect(back)
    jobs = list(
        VideoJob.objects.visible_to(request.user).filter(pk__in=ids).select_related("owner").order_by("-id")
    )
    if not jobs:
        messages.error(request, "None of the selected videos could be found.")
        return redirect(back)
    stream = zips.archive(jobs)
    response = StreamingHttpResponse(stream, content_type="application/zip")
    response["Content-Length"] = len(stream)
    name = f"soraweb-{timezone.localdate():%Y-%m-%d}-{len(jobs)}-videos.zip"
    response["Content-Disposition"] = content_disposition_header(True, name)
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    # Behind nginx: pass the pieces on as they come instead of spooling the ZIP to a temporary file.
    response["X-Accel-Buffering"] = "no"
    return response


def _next(request):
    target = request.POST.get("next", "")
    # A path of this site only: redirect() would try anything else as a view name.
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("jobs:gallery")


def _report(request, outcome, done_text, refused_text):
    if outcome.done:
        count = len(outcome.done)
        messages.success(request, f"{count} video{'s' if count != 1 else ''} {done_text}.")
    if outcome.refused:
        reasons = "; ".join(f"{_numbers(pks)} ({reason})" for reason, pks in outcome.refused.items())
        messages.warning(request, f"{refused_text}: {reasons}.")


def _numbers(pks, shown=20):
    text = ", ".join(f"#{pk}" for pk in pks[:shown])
    return text + (f" and {len(pks) - shown} more" if len(pks) > shown else "")


# --- Share links: made and revoked by the job's owner, the board's maker, or staff ----


@login_required
@require_POST
def share(request, pk):
    job = get_object_or_404(VideoJob.objects.visible_to(request.user), pk=pk)
    if not job.may_be_managed_by(request.user):
        raise PermissionDenied("Only the job's owner or an admin can share it.")
    if not (job.status == VideoJob.Status.SUCCEEDED and job.video):
        messages.error(request, "Only a finished video can be shared.")
        return redirect("jobs:detail", pk=job.pk)
    return _created(request, job)


@login_required
@require_POST
def share_board(request, pk):
    board = get_object_or_404(Board.objects.visible_to(request.user), pk=pk)
    if not board.may_be_managed_by(request.user):
        raise PermissionDenied("Only the board's maker or an admin can share it.")
    return _created(request, board)


def _created(request, target):
    days = params.pk_or_none(request.POST.get("days"))
    days = days if days in LIFETIMES else DEFAULT_LIFETIME
    link, token = ShareLink.make(target, request.user, days)
    path = reverse("handover:shared", args=[token])
    # The token is shown on this page only: the database keeps just its hash.
    url = settings.PUBLIC_BASE_URL + path if settings.PUBLIC_BASE_URL else request.build_absolute_uri(path)
    context = {"link": link, "url": url, "job": link.job, "board": link.board}
    response = render(request, "handover/created.html", context)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def shares(request):
    links = ShareLink.objects.managed_by(request.user).select_related("job", "board", "created_by")[:500]
    return render(request, "handover/shares.html", {"links": links, "lifetimes": LIFETIMES})


@login_required
@require_POST
def revoke(request, pk):
    link = get_object_or_404(ShareLink.objects.managed_by(request.user).select_related("board"), pk=pk)
    if link.revoke():
        messages.success(request, f"The share link to {link.target_label} no longer works.")
    else:
        messages.info(request, "That link was already revoked.")
    return redirect("handover:shares")


# --- The shared video or board, for anyone holding the token -----------------------

TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
# A board's page shows this many videos, and links to the next ones under the same token.
BOARD_PAGE_SIZE = 24


def by_token(view):
    """Open the link a token names, or answer a plain 404 (unknown) or 410 (revoked, expired)."""

    @login_not_required
    @wraps(view)
    def wrapper(request, token, *args, **kwargs):
        link = ShareLink.objects.for_token(token) if TOKEN.fullmatch(token) else None
        if link is None or (link.job_id and not link.job.video):
            response = _not_found(request)
        elif not link.is_live:
            response = _plain(
                request, 410, "This link no longer works", "It was revoked or it expired. Ask for a new one."
            )
        else:
            response = view(request, link, token, *args, **kwargs)
        # The token is in the address: it must not travel on in a Referer or land in a search index.
        response["Referrer-Policy"] = "no-referrer"
        response["X-Robots-Tag"] = "noindex, nofollow"
        return response

    return wrapper


def _plain(request, status, title, text):
    return render(request, "handover/gone.html", {"title": title, "text": text}, status=status)


def _not_found(request):
    return _plain(request, 404, "This link does not exist", "Check that it was copied whole.")


def _served(link, pk):
    """The job a shared file's URL names: the video link's own job, or (with pk) one of its board's."""
    if pk is None:
        return link.job
    return link.board_jobs().filter(pk=pk).first()


@by_token
@require_GET
def shared(request, link, token):
    if link.board_id:
        return _shared_board(request, link, token)
    response = render(request, "handover/shared.html", {"job": link.job, "link": link, "token": token})
    response["Cache-Control"] = "no-store"
    return response


def _shared_board(request, link, token):
    jobs = link.board_jobs().order_by("-created_at", "-id")
    page = Paginator(jobs, BOARD_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"board": link.board, "page": page, "link": link, "token": token}
    response = render(request, "handover/shared_board.html", context)
    response["Cache-Control"] = "no-store"
    return response


@by_token
@require_safe
def shared_video(request, link, token, pk=None):
    job = _served(link, pk)
    if job is None:
        return _not_found(request)
    return files.response(request, job.video, "video/mp4", max_age=300)


@by_token
@require_safe
def shared_poster(request, link, token, pk=None):
    job = _served(link, pk)
    if job is None:
        return _not_found(request)
    return files.response(request, media.sized(job.poster, request.GET.get("w")), "image/jpeg", max_age=300)


@by_token
@require_safe
def shared_download(request, link, token, pk=None):
    job = _served(link, pk)
    if job is None:
        return _not_found(request)
    name = zips.file_name(job)
    return files.response(request, job.video, "video/mp4", filename=name, as_attachment=True, max_age=300)
