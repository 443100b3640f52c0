from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from jobs.models import VideoJob
from library.forms import BoardForm
from library.models import Board, Favourite

MAX_IDS = 500


def _board(request, pk):
    return get_object_or_404(Board.objects.visible_to(request.user), pk=pk)


def _manageable_board(request, pk):
    board = _board(request, pk)
    if not board.may_be_managed_by(request.user):
        raise PermissionDenied("Only the board's maker or an admin can do that.")
    return board


def _ids(request):
    ids = request.POST.getlist("ids")[:MAX_IDS]
    return [int(value) for value in ids if value.isdigit() and len(value) < 19]


def _back(request, default):
    """The same-site page named by `next`, or default."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}) and target.startswith("/"):
        return target
    return default


@login_required
@require_POST
def star(request, pk):
    """Stars or unstars a video for the signed-in person; htmx gets the new button, others a redirect."""
    job = get_object_or_404(VideoJob.objects.visible_to(request.user), pk=pk)
    starred = Favourite.toggle(request.user, job)
    if request.htmx:
        return render(request, "library/_star.html", {"job": job, "starred": starred})
    return redirect(_back(request, reverse("jobs:detail", args=[job.pk])))


@login_required
@require_http_methods(["GET", "POST"])
def boards(request):
    """The team's boards, each with its cover, and a form to make a new one."""
    form = BoardForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        board = form.save(commit=False)
        board.created_by = request.user
        board.save()
        if ids := _ids(request):
            added = board.add(request.user, ids)
            messages.success(request, f"Board “{board.name}” made with {added} video(s).")
            return redirect(_back(request, _board_url(board)))
        messages.success(request, f"Board “{board.name}” made.")
        return redirect("library:boards")
    listed = Board.objects.visible_to(request.user).with_cover(request.user).select_related("created_by")
    status = 400 if form.errors else 200
    return render(request, "library/boards.html", {"boards": listed, "form": form}, status=status)


def _board_url(board):
    return f"{reverse('jobs:gallery')}?board={board.pk}"


@login_required
@require_POST
def rename(request, pk):
    board = _manageable_board(request, pk)
    form = BoardForm(request.POST, instance=board)
    if form.is_valid():
        form.save()
        messages.success(request, f"Renamed to “{board.name}”.")
    else:
        messages.error(request, " ".join(form.errors.get("name", ["That name cannot be used."])))
    return redirect("library:boards")


@login_required
@require_http_methods(["GET", "POST"])
def delete(request, pk):
    """Asks first (GET), then deletes the board; its videos stay in the gallery."""
    board = _manageable_board(request, pk)
    if request.method == "POST":
        name = board.name
        board.delete()
        messages.success(request, f"Board “{name}” deleted; its videos are still in the gallery.")
        return redirect("library:boards")
    return render(request, "library/delete.html", {"board": board})


@login_required
@require_POST
def add(request, pk):
    return _add(request, _board(request, pk))


@login_required
@require_POST
def add_to_chosen(request):
    """The bulk bar and the video page name the board in a field rather than in the URL."""
    board_id = request.POST.get("board", "")
    if board_id.isdigit() and len(board_id) < 10:
        return _add(request, _board(request, int(board_id)))
    messages.error(request, "Choose a board first.")
    return redirect(_back(request, reverse("library:boards")))


def _add(request, board):
    added = board.add(request.user, _ids(request))
    messages.success(request, f"Added {added} video(s) to “{board.name}”.")
    return redirect(_back(request, _board_url(board)))


@login_required
@require_POST
def remove(request, pk):
    # Boards are the team's: anyone who sees the board may take a video off it (the video stays).
    board = _board(request, pk)
    removed = board.remove(request.user, _ids(request))
    messages.success(request, f"Took {removed} video(s) off “{board.name}”.")
    return redirect(_back(request, _board_url(board)))
