from django import template
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Value

from library.models import Board

register = template.Library()


@register.simple_tag
def filter_options(user):
    """{"boards": [(id, name)], "people": [username]} within user's scope, read in one query.

    The gallery offers both in its filters; one query for the two keeps the page's count flat.
    """
    boards = Board.objects.visible_to(user).order_by().annotate(kind=Value("board"))
    boards = boards.values_list("kind", "id", "name")
    people = get_user_model().objects.filter(is_active=True)
    if settings.SORAWEB_GALLERY_SCOPE == "own" and not user.is_staff:
        people = people.filter(pk=user.pk)
    people = people.order_by().annotate(kind=Value("person")).values_list("kind", "id", "username")
    rows = sorted(boards.union(people, all=True), key=lambda row: row[2].lower())
    return {
        "boards": [(pk, name) for kind, pk, name in rows if kind == "board"],
        "people": [name for kind, _, name in rows if kind == "person"],
    }


@register.simple_tag
def board_named(boards, board_id):
    return next((name for pk, name in boards if pk == board_id), None)


@register.simple_tag
def visible_boards(user):
    """The boards user may see, by name."""
    return list(Board.objects.visible_to(user).only("id", "name"))


@register.simple_tag
def boards_holding(job, user):
    """The boards user may see that hold job."""
    return list(Board.objects.visible_to(user).filter(items__job=job).only("id", "name"))
