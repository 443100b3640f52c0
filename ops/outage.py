"""While the database is away (restarted, unreachable, locked, read-only), pages say so plainly.

Django's handler500 sees every uncaught exception, from a view or a middleware (the
session and the signed-in user are read before any view runs), so one handler covers
them all. It renders without the database and without a request context: the page
must not need what is missing.
"""

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.views import defaults

# Long enough for a restart, short enough that a person's reload soon works.
RETRY_AFTER_SECONDS = 30


def database_unavailable(exc: BaseException | None) -> bool:
    return isinstance(exc, OperationalError | InterfaceError)


def server_error(request):
    if database_unavailable(sys.exc_info()[1]):
        response = HttpResponse(render_to_string("503.html"), status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        response["Cache-Control"] = "no-store"
        return response
    return defaults.server_error(request)
