"""Small request/response rules that hold for every page."""

import re

from django.http import HttpResponseBadRequest
from django.urls import reverse


def private_pages(get_response):
    """Pages for a signed-in person are not stored by the browser or any proxy.

    Only where the view said nothing: media keeps its own `private, max-age` and the
    admin its never_cache. Static files never get here (whitenoise answers first).
    """

    def middleware(request):
        response = get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            response.setdefault("Cache-Control", "private, no-store")
        return response

    return middleware


# The admin's date drill-down (date_hierarchy) turns these into datetime(): Django
# catches ValueError but not OverflowError, and year 9999 overflows its "next year".
_DATE_PART = re.compile(r"__(year|month|day)$")
_DATE_RANGE = {"year": (1, 9998), "month": (1, 12), "day": (1, 31)}


def admin_input_guard(get_response):
    """Answer 400 to admin query values that Django's admin would turn into a 500."""

    def middleware(request):
        if request.path.startswith(reverse("admin:index")) and (problem := _admin_problem(request)):
            return HttpResponseBadRequest(problem)
        return get_response(request)

    return middleware


def _admin_problem(request):
    # An empty _to_field skips the admin's allow-list and then names no field at all.
    for query in (request.GET, request.POST) if request.method == "POST" else (request.GET,):
        if "_to_field" in query and not query["_to_field"]:
            return "Empty _to_field."
    for key, values in request.GET.lists():
        if match := _DATE_PART.search(key):
            low, high = _DATE_RANGE[match[1]]
            for value in values:
                if not (value.isascii() and value.isdigit() and low <= int(value) <= high):
                    return f"{key} must be a number from {low} to {high}."
    return None
