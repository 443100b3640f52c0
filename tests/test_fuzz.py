"""Hostile numbers and keys in every URL and query parameter: a 4xx or a redirect, never a 500."""

import re
from urllib.parse import quote, urlencode

import pytest
from django.core import signing
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from jobs import media
from tests.factories import make_job

TOKEN_SALT = "jobs.reference-image"
HOSTILE = [
    "\u00b9", "\u2460", "\u00b2,1", "\u0663", "\U0001d7d9", "99999999999999999999", "9223372036854775808",
    "9223372036854775807", "-9223372036854775809", "-1", "0", "", " ", "1e3", "0x10", "1.5", "NaN", "null",
    "[]", "{}", "a,b,,", "1_2", "99999999999_1", "1" * 40 + "_" + "1" * 40, "\u202e\u200b\ufeff", "%",
    "../../etc/passwd", "x" * 500, "1\x00",
]  # fmt: skip
# Signed with the real key and salt, but not the shape a reference link carries.
WRONG_SHAPES = [[1, 2], "1", {"pk": 1}, 2**70, -1, None, 1.5, True, [], "\u00b9"]
# Every query parameter a view or the admin reads.
PARAMETERS = [
    "ids", "v", "from", "status", "mine", "before", "after", "next", "q", "o", "p", "e", "all",
    "created_at__year", "created_at__month", "created_at__day", "created_at__gte", "created_at__lt",
    "status__exact", "model__exact", "owner__id__exact", "id__exact", "pk", "_changelist_filters",
    "_to_field", "_popup", "app_label", "model_name", "field_name", "term",
]  # fmt: skip
# The query pass sends every parameter at once, so a shorter list keeps the crawl fast.
QUERY_VALUES = [
    "\u00b9", "\u2460", "\u00b2,1", "99999999999999999999", "9223372036854775808", "-1", "",
    "99999999999_1", "1" * 40 + "_" + "1" * 40, "\u202e\u200b\ufeff", "x" * 500, "1\x00",
]  # fmt: skip
INT_VALUES = ["0", "99999999999999999999", "9223372036854775808", "9223372036854775807"]


def every_route(patterns=None, prefix=""):
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            yield from every_route(entry.url_patterns, prefix + str(entry.pattern))
        else:
            assert isinstance(entry, URLPattern)
            yield prefix + str(entry.pattern)


def tokens():
    return [signing.dumps(value, salt=TOKEN_SALT, compress=True) for value in WRONG_SHAPES]


def paths(route):
    """route with each parameter filled with hostile values, as a path."""
    route = route.replace("^", "").replace("$", "")
    names = re.findall(r"<(?:(\w+):)?(\w+)>|\(\?P<(\w+)>[^)]*\)", route)
    if not names:
        return ["/" + route]
    converter = names[0][0]
    values = INT_VALUES if converter == "int" else [*HOSTILE, *tokens(), "1"]
    result = []
    for value in values:
        if converter != "int" and not value.strip():
            continue  # An empty path part is another URL.
        filled = re.sub(r"<(?:\w+:)?\w+>|\(\?P<\w+>[^)]*\)", quote(value, safe=""), route)
        result.append("/" + filled)
    return result


@pytest.fixture
def actors(alice, staff, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    make_job(alice, prompt="a job to find")
    anonymous = Client(raise_request_exception=False)
    user, admin = Client(raise_request_exception=False), Client(raise_request_exception=False)
    user.force_login(alice)
    admin.force_login(staff)
    return {"anonymous": anonymous, "alice": user, "staff": admin}


@pytest.mark.crawl
@pytest.mark.parametrize("route", sorted(set(every_route())))
def test_no_url_answers_500_to_hostile_path_values_or_query_parameters(actors, route):
    if route.endswith("logout/"):
        pytest.skip("would sign the actor out for the rest of the crawl; it reads no input")
    requests = [("get", path, {}) for path in paths(route)]
    base = "/" + re.sub(r"<(?:\w+:)?\w+>|\(\?P<\w+>[^)]*\)", "1", route.replace("^", "").replace("$", ""))
    for value in QUERY_VALUES:
        requests.append(("get", f"{base}?{urlencode(dict.fromkeys(PARAMETERS, value))}", {}))
        requests.append(("post", base, dict.fromkeys(PARAMETERS, value)))
    failures = []
    for actor, client in actors.items():
        for method, url, data in requests:
            response = getattr(client, method)(url, data)
            # Only a 500 is a crash: /healthz answers 503 on purpose here (no worker runs).
            if response.status_code == 500:
                failures.append(f"{actor} {method.upper()} {url} {data or ''}-> {response.status_code}")
    assert not failures, f"{len(failures)} answered 500:\n" + "\n".join(failures[:20])


@pytest.mark.parametrize(
    "value", ["\u00b9", "\u2460", "\u00b2,1", "99999999999999999999", "9223372036854775808"]
)
def test_the_live_cards_ignore_ids_that_are_not_plain_numbers(actors, value):
    assert actors["alice"].get("/cards/", {"ids": value}).status_code == 200


def test_a_signed_reference_link_of_the_wrong_shape_is_not_found(actors):
    for token in tokens():
        assert actors["anonymous"].get(f"/r/{token}/").status_code == 404
    assert media.job_pk_from_reference_token(tokens()[0]) is None


@pytest.mark.parametrize(
    "url",
    [
        "/admin/jobs/videojob/?created_at__year=99999999999",
        "/admin/jobs/videojob/?created_at__year=9999",
        "/admin/jobs/videojob/?created_at__year=2025&created_at__month=99999999999",
        "/admin/axes/accessattempt/?attempt_time__year=99999999999",
    ],
)
def test_the_admin_refuses_a_date_it_cannot_represent(actors, url):
    assert actors["staff"].get(url).status_code == 400


def test_the_admin_refuses_an_empty_to_field(actors, alice):
    assert actors["staff"].get(f"/admin/auth/user/{alice.pk}/change/?_to_field=").status_code == 400


def test_the_admin_date_drill_down_still_works(actors):
    assert (
        actors["staff"].get("/admin/jobs/videojob/?created_at__year=2025&created_at__month=3").status_code
        == 200
    )
