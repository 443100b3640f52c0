from django.apps import AppConfig
from django.db.models import Q


class LibraryConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "library"

    def ready(self):
        from jobs import retention

        # A starred video, or one on a board, is one somebody meant to keep.
        retention.exempt_when(lambda: Q(favourites__isnull=False) | Q(board_items__isnull=False))
