from django import template

from library.models import Board

register = template.Library()


@register.simple_tag
def visible_boards(user):
    """The boards user may see, by name, read once per page (the filter, the bulk bar, the heading)."""
    return list(Board.objects.visible_to(user).only("id", "name"))


@register.simple_tag
def board_named(boards, board_id):
    return next((board for board in boards if board.pk == board_id), None)


@register.simple_tag
def boards_holding(job, user):
    """The boards user may see that hold job."""
    return list(Board.objects.visible_to(user).filter(items__job=job).only("id", "name"))
