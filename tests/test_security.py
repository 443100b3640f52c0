"""An attacker's checklist: who reaches what, forged requests, hostile prompts and
uploads, password guessing, the headers every page carries, the API key, and
Django's deployment check.

The actors: alice owns the job, bob is on her team, mallory is an outsider (the
gallery scope is `own`, so she is not on anyone's team), staff runs the studio.
"""

import os
import re
import subprocess
import sys
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from api.models import ApiToken, Webhook, WebhookDelivery
from audit.models import AuditEvent
from jobs import media
from jobs.models import VideoJob
from spend.models import TeamBudget
from tests.factories import image_bytes, make_job, tiny_mp4
from tests.helpers import ROOT

Status = VideoJob.Status
# Nothing in it that HTML escaping would change, so finding it in a page is meaningful.
SECRET_PROMPT = "alice secret idea 7731 a lantern under the sea"

pytestmark = pytest.mark.usefixtures("media")


@pytest.fixture
def mallory(django_user_model):
    return django_user_model.objects.create_user("mallory", password="mallory-password-1")


# --- The authorization crawl ---------------------------------------------------------


def every_url_pattern(patterns=None, prefix="", namespace=None):
    """(route, name, pattern) for every URL the project answers, however deeply included."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            inner = ":".join(filter(None, [namespace, entry.namespace])) or None
            yield from every_url_pattern(entry.url_patterns, prefix + str(entry.pattern), inner)
        else:
            assert isinstance(entry, URLPattern)
            name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name
            yield prefix + str(entry.pattern), name or f"(unnamed) {prefix}{entry.pattern}"


class World:
    """One of everything, made afresh for every request so each request sees the same."""

    def __init__(self, alice):
        self.job = make_job(
            alice,
            prompt=SECRET_PROMPT,
            status=Status.SUCCEEDED,
            completed_at=timezone.now(),
            group=uuid.uuid4(),
        )
        self.job.video.save("job.mp4", ContentFile(tiny_mp4()), save=False)
        self.job.poster.save("job.jpg", ContentFile(image_bytes(128, 72, "JPEG")), save=False)
        self.job.reference_image.save("ref.jpg", ContentFile(image_bytes(1280, 720, "JPEG")), save=False)
        self.job.save()
        self.live = make_job(alice, prompt=SECRET_PROMPT + " (in progress)", status=Status.QUEUED)
        self.alice = alice
        self.group = Group.objects.create(name="editors")
        from axes.models import AccessAttempt, AccessFailureLog, AccessLog

        common = {"user_agent": "test", "ip_address": "10.0.0.9", "username": "alice", "http_accept": "*/*"}
        common |= {"path_info": "/accounts/login/"}
        self.attempt = AccessAttempt.objects.create(
            get_data="", post_data="", failures_since_start=1, **common
        )
        self.access_log = AccessLog.objects.create(**common)
        self.failure_log = AccessFailureLog.objects.create(**common, locked_out=False)
        from handover.models import ShareLink

        self.share, self.share_token = ShareLink.make(self.job, alice)
        from library.models import Board, Favourite

        self.board = Board.objects.create(name="Picks", created_by=alice)
        self.board.add(alice, [self.job.pk])
        self.board_share, self.board_token = ShareLink.make(self.board, alice)
        self.favourite = Favourite.objects.create(user=alice, job=self.job)
        self.token, _ = ApiToken.issue(alice, "alice's script")
        self.hook = Webhook.objects.create(owner=alice, url="https://hooks.example/soraweb")
        self.delivery = WebhookDelivery.objects.create(
            webhook=self.hook, job=self.job, event="test", payload={}
        )
        self.budget, _ = TeamBudget.objects.get_or_create(pk=1)
        self.event = AuditEvent.objects.create(actor_name="alice", action="submitted", job_id=self.job.pk)

    def url(self, route, name):
        """route with its parameters filled in from this world."""
        objects = {
            "admin/auth/group/": self.group.pk,
            "admin/auth/user/": self.alice.pk,
            "admin/jobs/videojob/": self.job.pk,
            "admin/axes/accessattempt/": self.attempt.pk,
            "admin/axes/accesslog/": self.access_log.pk,
            "admin/axes/accessfailurelog/": self.failure_log.pk,
            "admin/spend/teambudget/": self.budget.pk,
            "admin/audit/auditevent/": self.event.pk,
            "admin/r/": self.job.pk,
            "admin/handover/sharelink/": self.share.pk,
            "admin/library/board/": self.board.pk,
            "admin/library/favourite/": self.favourite.pk,
            "admin/api/apitoken/": self.token.pk,
            "admin/api/webhook/": self.hook.pk,
            "admin/api/webhookdelivery/": self.delivery.pk,
        }
        # The API pages act on alice's token and webhook.
        own_rows = {"api:revoke_token": self.token.pk, "api:webhook_test": self.hook.pk}
        own_rows["api:webhook_delete"] = self.hook.pk
        values = {
            "pk": {"jobs:cancel": self.live.pk, "handover:revoke": self.share.pk, **own_rows}.get(
                name,
                self.board.pk
                if (name.startswith("library:") and name != "library:star") or name == "handover:share_board"
                else self.job.pk,
            ),
            "job_id": self.live.pk if name == "api-v1:job_cancel" else self.job.pk,
            "token": self.board_token
            if name.startswith("handover:shared_board")
            else self.share_token
            if name.startswith("handover:")
            else media.reference_token(self.job),
            "group": self.job.group,
            "id": self.alice.pk,
            "content_type_id": ContentType.objects.get_for_model(VideoJob).pk,
            "object_id": next((pk for prefix, pk in objects.items() if route.startswith(prefix)), None),
        }
        if route.startswith("admin/^(?P<app_label>"):
            return "/admin/jobs/"
        if route == "admin/(?P<url>.*)$":
            return "/admin/no-such-page/"

        def fill(match):
            value = values[match["name"]]
            assert value is not None, f"nothing to put in {route}"
            return str(value)

        path = re.sub(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>", fill, route)
        assert "<" not in path and "(?" not in path, f"unfilled route {route}"
        return "/" + path

    def state(self):
        return (
            sorted(VideoJob.objects.values_list("pk", "owner__username", "status", "kept")),
            sorted(Group.objects.values_list("name", flat=True)),
        )


ACTORS = {
    # name: (user fixture, gallery scope)
    "anonymous": (None, "team"),
    "outsider": ("mallory", "own"),
    "teammate": ("bob", "team"),
    "owner": ("alice", "own"),
    "staff": ("staff", "own"),
}

SIGN_IN, ADMIN_SIGN_IN, OK, HIDDEN, FORBIDDEN, NOT_ALLOWED, PUBLIC = (
    "sign-in", "admin sign-in", "200", "404", "403", "405", "public",
)  # fmt: skip
REDIRECT = "redirect"
BAD_REQUEST = "400"


def outcome(response):
    status = response.status_code
    if status == 302:
        location = response["Location"]
        if location.startswith(reverse("login") + "?next=") or location == reverse("login"):
            return SIGN_IN
        if location.startswith(reverse("admin:login") + "?next="):
            return ADMIN_SIGN_IN
        return REDIRECT
    return str(status)


def expected(actor, method, name):
    """What each actor gets from each URL; every URL pattern must have an answer here."""
    signed_in = actor != "anonymous"
    if name == "healthz":
        return PUBLIC if method == "GET" else NOT_ALLOWED
    if name == "jobs:reference":
        return OK if method == "GET" else NOT_ALLOWED
    if name == "login":
        return OK if method == "GET" else OK  # A POST without credentials shows the form again.
    if name.startswith("handover:shared"):
        return OK if method == "GET" else NOT_ALLOWED  # The token is the permission, for anyone holding it.
    if name == "admin:login":
        if actor == "staff" and method == "GET":
            return REDIRECT  # Already in: on to the admin index.
        return OK
    if name.startswith("admin:") or name.startswith("(unnamed) admin/"):
        return expected_in_admin(actor, method, name)
    if name.startswith(("api-v1:", "(unnamed) api/v1/")):
        return expected_in_api(actor, method, name)
    if not signed_in:
        return SIGN_IN  # The middleware, before any view runs.
    if name == "logout":
        return NOT_ALLOWED if method == "GET" else SIGN_IN  # Signed out, then on to sign-in.
    if name == "password_change":
        return OK
    if name == "password_change_done":
        return OK if method == "GET" else NOT_ALLOWED
    if name == "jobs:setup":
        return SIGN_IN  # Closed once anyone exists: on to sign-in.
    if name in ("jobs:gallery", "jobs:cards"):
        return OK if method == "GET" else NOT_ALLOWED
    if name == "jobs:create":
        return OK  # A POST without fields shows the form's errors.
    if name in ("jobs:retry", "jobs:cancel"):
        if method == "GET":
            return NOT_ALLOWED
        if actor == "outsider":
            return HIDDEN
        if name == "jobs:cancel" and actor == "teammate":
            return FORBIDDEN
        return REDIRECT
    if name == "jobs:delete":
        return {"outsider": HIDDEN, "teammate": FORBIDDEN}.get(actor, OK if method == "GET" else REDIRECT)
    if name in ("api:tokens", "api:webhooks"):
        return OK  # A POST without fields shows the form's errors.
    if name in ("api:revoke_token", "api:webhook_test", "api:webhook_delete"):
        if method == "GET":
            return NOT_ALLOWED
        return REDIRECT if actor == "owner" else HIDDEN  # Only your own; staff revoke in the admin.
    if name in ("jobs:keep", "jobs:retry_group"):
        if method == "GET":
            return NOT_ALLOWED
        return {"outsider": HIDDEN, "teammate": FORBIDDEN if name == "jobs:keep" else REDIRECT}.get(
            actor, REDIRECT
        )
    if name == "jobs:delete_rest":
        return HIDDEN if actor == "outsider" else REDIRECT  # Nothing kept yet: nothing to delete.
    if name in (
        "jobs:detail",
        "jobs:video",
        "jobs:download",
        "jobs:poster",
        "jobs:reference_image",
        "jobs:group",
    ):
        if method == "POST":
            return NOT_ALLOWED  # Refused before the job is even looked up.
        return HIDDEN if actor == "outsider" else OK
    if name == "jobs:finished":
        return OK if method == "GET" else NOT_ALLOWED  # Only the person's own jobs, whatever the scope.
    if name.startswith("jobs:desk"):
        if actor != "staff":
            return FORBIDDEN
        if name == "jobs:desk":
            return OK if method == "GET" else NOT_ALLOWED
        return NOT_ALLOWED if method == "GET" else REDIRECT  # A finished job: refused with a message.
    if name == "handover:bulk":
        return NOT_ALLOWED if method == "GET" else REDIRECT  # No action chosen: back with a message.
    if name == "handover:shares":
        return OK if method == "GET" else NOT_ALLOWED  # Each person's own links (staff: all).
    if name in ("handover:share", "handover:share_board"):
        if method == "GET":
            return NOT_ALLOWED
        # alice's job or board: the outsider cannot see it, a teammate may not share it; OK: the link, once.
        return {"outsider": HIDDEN, "teammate": FORBIDDEN}.get(actor, OK)
    if name == "handover:revoke":
        if method == "GET":
            return NOT_ALLOWED
        return HIDDEN if actor in ("outsider", "teammate") else REDIRECT  # Only alice's and staff's.
    if name == "library:boards":
        return OK  # The list, and a POST without a name shows the form's error.
    if name == "library:add_to_chosen":
        return NOT_ALLOWED if method == "GET" else REDIRECT  # No board chosen: back with a message.
    if name in ("library:star", "library:add", "library:remove"):
        if method == "GET":
            return NOT_ALLOWED
        return HIDDEN if actor == "outsider" else REDIRECT  # Team boards take anyone's visible videos.
    if name in ("library:rename", "library:delete"):
        if method == "GET" and name == "library:rename":
            return NOT_ALLOWED
        # alice's board: with scope own the outsider cannot see it; a teammate may not change it.
        return {"outsider": HIDDEN, "teammate": FORBIDDEN}.get(actor, OK if method == "GET" else REDIRECT)
    if name in ("spend:page", "spend:export"):
        return OK if method == "GET" else NOT_ALLOWED
    if name == "audit:events":
        return NOT_ALLOWED if method == "POST" else OK if actor == "staff" else FORBIDDEN
    if name == "ops:storage":
        return (OK if method == "GET" else NOT_ALLOWED) if actor == "staff" else FORBIDDEN
    raise AssertionError(f"no expectation for {name}: add one")


# The API's paths by route name (ninja names each method's route; they share the path).
API_PATHS = {
    "api-v1:jobs": "jobs", "api-v1:jobs_list": "jobs", "api-v1:job": "job", "api-v1:job_delete": "job",
    "api-v1:job_video": "file", "api-v1:job_poster": "file", "api-v1:job_cancel": "cancel",
    "api-v1:job_retry": "retry",
}  # fmt: skip
API_METHODS = {
    "jobs": ("GET", "POST"),
    "job": ("GET",),
    "file": ("GET",),
    "cancel": ("POST",),
    "retry": ("POST",),
}


def expected_in_api(actor, method, name):
    """The JSON API with a session (the test client skips CSRF); ninja refuses a method before asking who."""
    if name in ("api-v1:openapi-json", "api-v1:openapi-view"):
        return PUBLIC if method == "GET" else NOT_ALLOWED
    if name.startswith("(unnamed)") or name == "api-v1:api-root":
        return HIDDEN  # No such API path: a JSON 404.
    path = API_PATHS[name]
    if method not in API_METHODS[path]:
        return NOT_ALLOWED
    if actor == "anonymous":
        return "401"
    if path == "jobs":
        return OK if method == "GET" else "422"  # A create with no fields is invalid.
    if actor == "outsider":
        return HIDDEN
    if path == "cancel":
        return FORBIDDEN if actor == "teammate" else OK
    return "201" if path == "retry" else OK


# What staff get from the admin's pages (GET, then POST with no fields: a form
# shown again, a confirmation asked again). A non-staff person signed in is sent
# to the admin's own sign-in page, whatever the page.
ADMIN_FOR_STAFF = {
    "admin:index": (OK, OK),
    "admin:logout": (NOT_ALLOWED, SIGN_IN),
    "admin:password_change": (OK, OK),
    "admin:password_change_done": (OK, NOT_ALLOWED),
    "admin:autocomplete": (FORBIDDEN, NOT_ALLOWED),
    "admin:jsi18n": (OK, NOT_ALLOWED),
    "admin:view_on_site": (HIDDEN, HIDDEN),
    "admin:app_list": (OK, OK),
    "(unnamed) admin/(?P<url>.*)$": (HIDDEN, HIDDEN),
    # Jobs are made by the studio's form, never in admin.
    "admin:jobs_videojob_add": (FORBIDDEN, FORBIDDEN),
    # Share links are made on the video page (the token is shown once), never in admin.
    "admin:handover_sharelink_add": (FORBIDDEN, FORBIDDEN),
    # A token is shown once when made, so only its owner's page makes them; the sweep makes deliveries.
    "admin:api_apitoken_add": (FORBIDDEN, FORBIDDEN),
    "admin:api_webhookdelivery_add": (FORBIDDEN, FORBIDDEN),
    # One budget row: the list opens it; nobody adds or deletes one. The audit record is read-only.
    "admin:spend_teambudget_changelist": (REDIRECT, REDIRECT),
    "admin:spend_teambudget_change": (OK, REDIRECT),  # An empty amount is valid: the server default.
    "admin:spend_teambudget_add": (FORBIDDEN, FORBIDDEN),
    "admin:spend_teambudget_delete": (FORBIDDEN, FORBIDDEN),
    "admin:audit_auditevent_add": (FORBIDDEN, FORBIDDEN),
    "admin:audit_auditevent_change": (OK, FORBIDDEN),
    "admin:audit_auditevent_delete": (FORBIDDEN, FORBIDDEN),
}
# Every field read-only: saving the change form saves nothing and goes back to the list.
READ_ONLY_IN_ADMIN = ("jobs_videojob", "axes_", "handover_sharelink", "api_apitoken", "api_webhookdelivery")


def expected_in_admin(actor, method, name):
    if actor == "anonymous":
        return SIGN_IN  # The middleware's or the admin's own (the site's views check for staff themselves).
    if actor != "staff":
        if name == "admin:logout":
            return REDIRECT  # Not an admin: to the admin index, which asks for an admin sign-in.
        return ADMIN_SIGN_IN
    get, post = ADMIN_FOR_STAFF.get(name, (None, None))
    if get is None:
        if name.startswith("(unnamed)"):
            get, post = REDIRECT, REDIRECT  # <id>/ -> <id>/change/
        elif name.endswith("_changelist"):
            get, post = OK, OK
        elif name.endswith("_add"):
            get, post = (FORBIDDEN, FORBIDDEN) if "_access" in name else (OK, OK)
        elif name.endswith("_delete") or name.endswith("_history"):
            get, post = OK, OK
        elif name.endswith("_change") or name.endswith("_password_change"):
            get, post = OK, REDIRECT if any(model in name for model in READ_ONLY_IN_ADMIN) else OK
    assert get is not None, f"no admin expectation for {name}"
    return get if method == "GET" else post


@pytest.mark.crawl
@pytest.mark.parametrize("actor", list(ACTORS))
def test_every_url_answers_each_actor_as_it_should_and_changes_nothing_it_may_not(
    actor, settings, client, alice, bob, mallory, staff, submitted, request, monkeypatch
):
    username, scope = ACTORS[actor]
    settings.SORAWEB_GALLERY_SCOPE = scope
    # /healthz is public whatever it finds; no need to wait for workers that are not there.
    monkeypatch.setattr("jobs.health.run_checks", lambda: {"database": {"ok": True, "detail": "reachable"}})
    user = request.getfixturevalue(username) if username else None
    patterns = list(every_url_pattern())
    assert len(patterns) > 50, "the crawl should see the admin's pages too"
    wrong = []
    for route, name in patterns:
        for method in ("GET", "POST"):
            with transaction.atomic():
                world = World(alice)
                if user:  # Again each time: one of the pages is sign-out.
                    client.force_login(user)
                url = world.url(route, name)
                before = world.state()
                response = client.get(url) if method == "GET" else client.post(url)
                got, want = outcome(response), expected(actor, method, name)
                if actor == "anonymous" and got == ADMIN_SIGN_IN:
                    got = SIGN_IN
                if want == PUBLIC:
                    got = PUBLIC if response.status_code in (200, 503) else got
                if got != want:
                    wrong.append(f"{method} {url} ({name}): got {got}, expected {want}")
                body = b"" if response.streaming else response.content
                # A share link's token is the permission to see that one video, prompt included.
                shared = name.startswith("handover:shared")
                if actor in ("anonymous", "outsider") and SECRET_PROMPT.encode() in body and not shared:
                    wrong.append(f"{method} {url} ({name}): shows alice's prompt to {actor}")
                if name == "jobs:gallery" and method == "GET" and got == OK:
                    sees = actor in ("teammate", "owner", "staff")
                    if (SECRET_PROMPT.encode() in body) != sees:
                        wrong.append(f"GET {url}: {actor} {'does not see' if sees else 'sees'} alice's job")
                if (
                    got in (SIGN_IN, ADMIN_SIGN_IN, HIDDEN, FORBIDDEN, NOT_ALLOWED)
                    and world.state() != before
                ):
                    wrong.append(f"{method} {url} ({name}): refused, yet something changed")
                transaction.set_rollback(True)
    assert not wrong, "\n".join(wrong)


# --- The gallery scope ----------------------------------------------------------------


@pytest.fixture
def own_scope(settings):
    settings.SORAWEB_GALLERY_SCOPE = "own"


def test_with_scope_own_the_gallery_and_live_cards_show_only_my_jobs(client, alice, bob, own_scope):
    mine, theirs = make_job(bob, prompt="bob own idea"), make_job(alice, prompt=SECRET_PROMPT)
    client.force_login(bob)
    page = client.get("/").content.decode()
    assert "bob own idea" in page and SECRET_PROMPT not in page
    assert client.get("/").context["tabs"][0]["count"] == 1
    cards = client.get(reverse("jobs:cards") + f"?ids={mine.pk},{theirs.pk}").content.decode()
    assert f'id="job-{mine.pk}" ' in cards and SECRET_PROMPT not in cards
    assert f'id="job-{theirs.pk}" hx-swap-oob="delete"' in cards  # As if it did not exist.


def test_with_scope_own_use_these_settings_does_not_copy_someone_elses_prompt(client, alice, bob, own_scope):
    job = make_job(alice, prompt=SECRET_PROMPT)
    client.force_login(bob)
    response = client.get(reverse("jobs:create") + f"?from={job.pk}")
    assert response.context["form"]["prompt"].value() is None
    assert SECRET_PROMPT not in response.content.decode()


def test_with_scope_own_someone_elses_job_cannot_be_retried(client, alice, bob, own_scope, submitted):
    job = make_job(alice, prompt=SECRET_PROMPT, status=Status.FAILED)
    client.force_login(bob)
    assert client.post(reverse("jobs:retry", args=[job.pk])).status_code == 404
    assert VideoJob.objects.count() == 1
    submitted.assert_not_called()


def test_with_scope_own_staff_still_see_and_manage_everything(client, alice, staff, own_scope):
    job = make_job(alice, prompt=SECRET_PROMPT, status=Status.QUEUED)
    client.force_login(staff)
    assert SECRET_PROMPT in client.get("/").content.decode()
    assert client.post(reverse("jobs:cancel", args=[job.pk])).status_code == 302
    job.refresh_from_db()
    assert job.status == Status.CANCELLED


def test_an_unknown_scope_refuses_to_start():
    result = run_manage(["check"], SORAWEB_GALLERY_SCOPE="everyone")
    assert result.returncode != 0
    assert "SORAWEB_GALLERY_SCOPE must be team or own" in result.stderr


# --- Forged requests (CSRF) ----------------------------------------------------------


@pytest.mark.crawl
@pytest.mark.parametrize("who", ["anonymous", "staff"])
def test_every_post_without_a_csrf_token_is_refused_and_changes_nothing(who, alice, staff, submitted):
    client = Client(enforce_csrf_checks=True)
    wrong = []
    for route, name in every_url_pattern():
        with transaction.atomic():
            world = World(alice)
            if who == "staff":
                client.force_login(staff)
            url = world.url(route, name)
            before = world.state()
            response = client.post(url, {"prompt": "forged", "model": "openAiSora2Plus"})
            refused = response.status_code == 403 and b"CSRF verification failed" in response.content
            # The API: no session to forge (401), or no POST at that path (405).
            if name in API_PATHS and response.status_code in ((401, 405) if who == "anonymous" else (405,)):
                refused = True
            if not refused:
                wrong.append(f"POST {url} ({name}): {response.status_code}")
            if b"<style" in response.content or b"<script>" in response.content:
                wrong.append(f"POST {url} ({name}): the refusal page has inline code the CSP blocks")
            if world.state() != before:
                wrong.append(f"POST {url} ({name}): changed something")
            transaction.set_rollback(True)
    assert not wrong, "\n".join(wrong)
    submitted.assert_not_called()


def test_a_post_from_another_site_is_refused_even_with_a_token(alice, submitted):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.get(reverse("jobs:create"))
    token = client.cookies["csrftoken"].value
    data = {"prompt": "forged", "model": "openAiSora2Plus", "aspect_ratio": "16:9", "duration": "4"}
    forged = client.post(
        reverse("jobs:create"),
        data | {"csrfmiddlewaretoken": token},
        headers={"Origin": "https://evil.example"},
    )
    assert forged.status_code == 403
    assert not VideoJob.objects.exists()
    # The same form from the studio's own page goes through: the check above is not refusing everything.
    genuine = client.post(reverse("jobs:create"), data | {"csrfmiddlewaretoken": token})
    assert genuine.status_code == 302
    assert VideoJob.objects.count() == 1


# --- Headers every response carries -----------------------------------------------------


def csp_directives(response):
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def test_pages_and_files_carry_the_csp_nosniff_and_frame_headers(client, alice, staff):
    world = World(alice)
    client.force_login(staff)
    urls = [
        "/", reverse("jobs:create"), reverse("jobs:detail", args=[world.job.pk]),
        reverse("jobs:video", args=[world.job.pk]), reverse("jobs:poster", args=[world.job.pk]),
        reverse("jobs:reference_image", args=[world.job.pk]), reverse("admin:index"),
        reverse("admin:jobs_videojob_change", args=[world.job.pk]), "/no-such-page/",
    ]  # fmt: skip
    for url in urls:
        response = client.get(url)
        directives = csp_directives(response)
        assert directives["default-src"] == ["'self'"], url
        assert directives["script-src"] == ["'self'"] and directives["style-src"] == ["'self'"], url
        assert directives["object-src"] == ["'none'"] and directives["frame-ancestors"] == ["'none'"], url
        assert directives["form-action"] == ["'self'"] and directives["base-uri"] == ["'self'"], url
        assert set(directives["img-src"]) == {"'self'", "blob:", "data:"}, url
        assert "'unsafe-inline'" not in response["Content-Security-Policy"], url
        assert response["X-Content-Type-Options"] == "nosniff", url
        assert response["X-Frame-Options"] == "DENY", url
    signed_out = Client().get(reverse("login"))
    assert "Content-Security-Policy" in signed_out and signed_out["X-Frame-Options"] == "DENY"


def test_with_media_on_s3_the_bucket_may_serve_images_and_video():
    result = run_manage(
        ["shell", "-c", "from django.conf import settings; print(settings.CONTENT_SECURITY_POLICY)"],
        S3_BUCKET="studio-media",
        S3_REGION="eu-west-1",
    )
    assert result.returncode == 0, result.stderr
    assert "https://studio-media.s3.eu-west-1.amazonaws.com" in result.stdout


# --- Hostile uploads ---------------------------------------------------------------------


def png_header_only(width, height):
    """A tiny PNG that claims width x height: a decompression bomb's header."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def html_polyglot():
    """A real PNG that is also an HTML page: script in a text chunk and after the end."""
    from io import BytesIO

    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "<html><script>alert('from the text chunk')</script>")
    out = BytesIO()
    Image.new("RGB", (1280, 720), "navy").save(out, "PNG", pnginfo=info)
    return out.getvalue() + b"<html><body><script>alert('after IEND')</script></body></html>"


class CountingHandler:
    """Sits behind the cap in the handler chain and counts what still reaches storage."""

    seen = 0

    def __init__(self, request=None):
        self.request = request

    def handle_raw_input(self, *args, **kwargs):
        return None

    def new_file(self, *args, **kwargs):
        return None

    def receive_data_chunk(self, raw_data, start):
        CountingHandler.seen = max(CountingHandler.seen, start + len(raw_data))
        return raw_data

    def file_complete(self, file_size):
        return None

    def upload_complete(self):
        return None

    def upload_interrupted(self):
        return None

    chunk_size = 64 * 1024


@pytest.fixture
def counted_uploads(settings):
    CountingHandler.seen = 0
    cap, *storing = settings.FILE_UPLOAD_HANDLERS
    settings.FILE_UPLOAD_HANDLERS = [cap, "tests.test_security.CountingHandler", *storing]
    return CountingHandler


def post_image(client, content, name, content_type="image/png", prompt="a harbour at dawn, slow pan"):
    from tests.factories import upload

    data = {"prompt": prompt, "model": "openAiSora2Plus", "aspect_ratio": "16:9", "duration": "4"}
    return client.post(
        reverse("jobs:create"), data | {"reference_image": upload(content, name, content_type)}
    )


@pytest.mark.parametrize(
    "size, why",
    [
        (6 * 1024 * 1024, "the request says it is too big: refused before a byte is kept"),
        (5 * 1024 * 1024 + 100 * 1024, "within the request slack: stopped at the cap as it streams in"),
    ],
)
def test_an_oversized_image_is_stopped_at_the_cap_and_the_prompt_is_kept(
    client, alice, submitted, counted_uploads, size, why
):
    from jobs.images import MAX_UPLOAD_BYTES

    client.force_login(alice)
    response = post_image(client, image_bytes(64, 64) + b"\0" * size, "huge.png")
    assert response.status_code == 200
    assert "larger than the 5 MB limit" in str(response.context["form"].errors["reference_image"])
    assert "a harbour at dawn, slow pan</textarea>" in response.content.decode()
    assert counted_uploads.seen <= MAX_UPLOAD_BYTES, why
    assert not VideoJob.objects.exists()
    submitted.assert_not_called()


def test_an_image_just_under_the_cap_goes_through_the_handler(client, alice, submitted, counted_uploads):
    from io import BytesIO

    from PIL import Image

    noisy = BytesIO()
    Image.effect_noise((1600, 900), 120).convert("RGB").save(noisy, "PNG")
    content = noisy.getvalue()
    assert 1_000_000 < len(content) < 5 * 1024 * 1024
    client.force_login(alice)
    assert post_image(client, content, "noise.png").status_code == 302
    assert counted_uploads.seen == len(content)
    assert VideoJob.objects.get().reference_image


@pytest.mark.parametrize(
    "content, name, content_type, message",
    [
        (png_header_only(100_000, 100_000), "bomb.png", "image/png", "too many pixels"),
        (b"<script>alert(document.cookie)</script>", "holiday.jpg", "image/jpeg", "not a JPEG, PNG or WebP"),
        (
            b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'><script>alert(2)</script></svg>",
            "logo.svg",
            "image/svg+xml",
            "not a JPEG, PNG or WebP",
        ),
        (image_bytes(64, 64, "GIF"), "party.gif", "image/gif", "not a JPEG, PNG or WebP"),
        (b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script></html>", "fake.png", "image/png", "not a JPEG"),
    ],
    ids=["bomb", "script-as-jpg", "svg", "gif", "png-magic-then-html"],
)
def test_a_hostile_upload_is_refused_with_a_clear_error(
    client, alice, submitted, content, name, content_type, message
):
    client.force_login(alice)
    response = post_image(client, content, name, content_type)
    assert response.status_code == 200
    assert message in str(response.context["form"].errors["reference_image"])
    assert "a harbour at dawn, slow pan</textarea>" in response.content.decode()
    assert not VideoJob.objects.exists()
    submitted.assert_not_called()


def test_a_png_html_polyglot_is_stored_as_a_plain_jpeg_and_served_as_one(client, alice, submitted, settings):
    client.force_login(alice)
    assert post_image(client, html_polyglot(), "innocent.png").status_code == 302
    job = VideoJob.objects.get()
    stored = (settings.MEDIA_ROOT / job.reference_image.name).read_bytes()
    assert job.reference_image.name.endswith(".jpg") and stored[:3] == b"\xff\xd8\xff"
    assert b"<script" not in stored and b"<html" not in stored and b"alert" not in stored
    response = client.get(reverse("jobs:reference_image", args=[job.pk]))
    assert response["Content-Type"] == "image/jpeg"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Content-Disposition" not in response or "inline" in response["Content-Disposition"]
    public = Client().get(reverse("jobs:reference", args=[media.reference_token(job)]))
    assert (public["Content-Type"], public["X-Content-Type-Options"]) == ("image/jpeg", "nosniff")


def test_too_many_files_in_one_request_are_refused(client, alice, submitted):
    from tests.factories import upload

    client.force_login(alice)
    files = [upload(image_bytes(8, 8), f"{n}.png") for n in range(5)]
    data = {"prompt": "x", "model": "openAiSora2Plus", "aspect_ratio": "16:9", "duration": "4"}
    response = client.post(reverse("jobs:create"), data | {"reference_image": files})
    assert response.status_code == 400
    assert not VideoJob.objects.exists()


# --- Password guessing (django-axes) -------------------------------------------------------


def sign_in_attempt(client, username, password, address="203.0.113.7", path=None, **headers):
    return client.post(
        path or reverse("login"),
        {"username": username, "password": password},
        REMOTE_ADDR=address,
        **headers,
    )


def test_five_wrong_passwords_lock_that_name_from_that_address_with_a_clear_page(client, alice):
    for _ in range(4):
        assert sign_in_attempt(client, "alice", "guess").status_code == 200
    locked = sign_in_attempt(client, "alice", "guess")
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Too many failed sign-in attempts" in page and "15 minutes" in page
    # Even the right password waits out the cool-off now.
    right = sign_in_attempt(client, "alice", "alice-password-1")
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session


def test_the_lockout_page_shows_a_hostile_username_as_text(client, db):
    for _ in range(5):
        response = sign_in_attempt(client, "<script>alert(1)</script>", "guess")
    assert response.status_code == 429
    page = response.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page


def test_a_lockout_holds_only_that_name_and_that_address(client, alice, bob):
    for _ in range(5):
        sign_in_attempt(client, "alice", "guess")
    assert sign_in_attempt(Client(), "bob", "bob-password-1").status_code == 302
    assert sign_in_attempt(Client(), "alice", "alice-password-1", address="198.51.100.20").status_code == 302


def test_a_forged_forwarded_for_header_does_not_escape_the_lockout(client, alice):
    for n in range(5):
        sign_in_attempt(client, "alice", "guess", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}")
    assert (
        sign_in_attempt(client, "alice", "alice-password-1", HTTP_X_FORWARDED_FOR="10.9.9.9").status_code
        == 429
    )


def test_behind_the_trusted_proxy_the_forwarded_address_is_the_one_locked(settings, alice):
    settings.SORAWEB_TRUSTED_PROXY_COUNT = 1  # compose's nginx appends the client's address
    proxy = "172.18.0.5"
    for _ in range(5):
        sign_in_attempt(
            Client(), "alice", "guess", address=proxy, HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7"
        )
    locked = sign_in_attempt(
        Client(), "alice", "alice-password-1", address=proxy, HTTP_X_FORWARDED_FOR="203.0.113.7"
    )
    assert locked.status_code == 429
    elsewhere = sign_in_attempt(
        Client(),
        "alice",
        "alice-password-1",
        address=proxy,
        HTTP_X_FORWARDED_FOR="203.0.113.7, 198.51.100.20",
    )
    assert elsewhere.status_code == 302


def test_the_lockout_ends_after_the_cool_off(client, alice):
    from axes.models import AccessAttempt

    for _ in range(5):
        sign_in_attempt(client, "alice", "guess")
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert sign_in_attempt(client, "alice", "alice-password-1").status_code == 302


def test_a_successful_sign_in_clears_earlier_mistakes(client, alice):
    for _ in range(4):
        sign_in_attempt(client, "alice", "guess")
    assert sign_in_attempt(client, "alice", "alice-password-1").status_code == 302
    client.logout()
    for _ in range(4):
        sign_in_attempt(client, "alice", "guess")
    assert sign_in_attempt(client, "alice", "alice-password-1").status_code == 302


def test_the_admin_sign_in_is_throttled_too(client, staff):
    path = reverse("admin:login")
    for _ in range(5):
        sign_in_attempt(client, "staff", "guess", path=path)
    assert sign_in_attempt(client, "staff", "staff-password-1", path=path).status_code == 429


def test_sign_in_and_out_still_work(client, alice):
    response = sign_in_attempt(client, "alice", "alice-password-1")
    assert response.url == reverse("jobs:gallery")
    assert client.get("/").status_code == 200
    assert client.post(reverse("logout")).url == reverse("login")
    assert client.get("/").url.startswith(reverse("login"))


def test_staff_sign_in_to_the_admin_through_its_own_page(client, staff):
    response = sign_in_attempt(client, "staff", "staff-password-1", path=reverse("admin:login"))
    assert response.status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200


# --- The deployment check -------------------------------------------------------------------


def production_environment(tmp_path, **overrides):
    """What .env.example documents for a team server, with the blanks a real one fills in."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    key_file = tmp_path / "sora_api_key"
    key_file.write_text("sk-deploy-check-canary-7f3a\n")
    env.update(
        SECRET_KEY="a-long-random-production-secret-" + "x7Kq2" * 8,
        SORA_API_KEY="",
        SORA_API_KEY_FILE=str(key_file),
        DATA_DIR=str(tmp_path / "data"),
    )
    env.update(overrides)
    return env


def run_manage(args, tmp_path=None, env=None, **overrides):
    import tempfile

    folder = tmp_path or __import__("pathlib").Path(tempfile.mkdtemp(prefix="soraweb-check-"))
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env or production_environment(folder, **overrides),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_deployment_check_passes_with_the_documented_production_settings(tmp_path):
    env = production_environment(tmp_path)
    assert env["DEBUG"] == "false" and env["SECURE_SSL"] == "true"

    result = run_manage(["check", "--deploy", "--fail-level", "WARNING"], env=env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
    assert "sk-deploy-check-canary" not in result.stdout + result.stderr


def test_the_deployment_check_would_catch_plain_http_settings(tmp_path):
    result = run_manage(
        ["check", "--deploy", "--fail-level", "WARNING"],
        env=production_environment(tmp_path, SECURE_SSL="false"),
    )
    assert result.returncode != 0
    assert "SECURE_HSTS_SECONDS" in result.stderr + result.stdout


def test_the_key_file_is_read_and_never_printed_by_settings(tmp_path):
    env = production_environment(tmp_path)
    result = run_manage(
        [
            "shell",
            "-c",
            "from django.conf import settings; print(settings.SORA_DEMO_MODE, len(settings.SORA_API_KEY))",
        ],
        env=env,
    )
    assert result.stdout.splitlines()[-1].split() == ["False", str(len("sk-deploy-check-canary-7f3a"))], (
        result.stderr
    )


# --- In the real browser: hostile prompts stay text, and no page breaks the CSP --------------

XSS_PAYLOADS = [
    "<script>alert('xss-script')</script>",
    '"><img src=x onerror="alert(\'xss-img\')">',
    "<svg onload=alert('xss-svg')></svg>",
    "</textarea><script>alert('xss-textarea')</script>",
    "<iframe srcdoc=\"<script>parent.alert('xss-iframe')</script>\"></iframe>",
    '<div hx-get="/new/" hx-trigger="load" hx-target="body" hx-swap="innerHTML">xss-htmx</div>',
    "javascript:alert('xss-link')",
    "{{ request.user }} {% csrf_token %}",
]


def watch(page):
    """Record every dialog (dismissed) and every CSP violation the page reports."""
    page.dialogs, page.violations = [], []

    def on_dialog(dialog):
        page.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.expose_function("reportCspViolation", lambda text: page.violations.append(text))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => "
        "window.reportCspViolation(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') "
        "+ ' at ' + e.sourceFile + ':' + e.lineNumber))"
    )
    return page


def visit(page, url):
    response = page.goto(url)
    page.wait_for_load_state("networkidle")
    assert response.ok, f"{url}: {response.status}"
    assert "default-src 'self'" in response.headers["content-security-policy"], url
    return response


def csp_errors(page):
    return page.violations + [error for error in page.console_errors if "Content Security Policy" in error]


@pytest.mark.integration
@pytest.mark.browser
def test_hostile_prompts_stay_text_in_the_gallery_video_page_form_and_admin(live_server, page, alice, staff):
    from tests.helpers import sign_in

    jobs = []
    for n, payload in enumerate(XSS_PAYLOADS):
        job = make_job(alice, prompt=payload, status=Status.FAILED, failure_kind="provider")
        # The gateway's words are as untrusted as a person's.
        VideoJob.objects.filter(pk=job.pk).update(error=payload, upstream_id=f"{payload} #{n}")
        jobs.append(job)
    watch(page)
    sign_in(page, "staff", "staff-password-1")

    visit(page, "/")
    shown = page.locator("main").inner_text()
    for payload in XSS_PAYLOADS:
        assert payload in shown, payload  # There as text, escaped, not as markup.
    for job in jobs:
        visit(page, f"/jobs/{job.pk}/")
        assert XSS_PAYLOADS[jobs.index(job)] in page.locator("h1.detail__prompt").inner_text()
        visit(page, f"/new/?from={job.pk}")
        assert page.get_by_label("Prompt").input_value() == XSS_PAYLOADS[jobs.index(job)]
        visit(page, f"/admin/jobs/videojob/{job.pk}/change/")
    visit(page, f"/jobs/{jobs[0].pk}/delete/")
    visit(page, "/admin/jobs/videojob/")
    visit(page, "/admin/jobs/videojob/?q=" + "%3Cscript%3Ealert('xss-search')%3C/script%3E")
    assert page.locator("main script:not([src]), main img[src=x], main svg[onload], main iframe").count() == 0
    assert page.locator("[hx-trigger=load]").count() == 0

    assert page.dialogs == []
    assert csp_errors(page) == []
    # The control: this tab does report a dialog when a script really runs.
    page.evaluate("() => alert('control')")
    assert page.dialogs == ["control"]


@pytest.mark.integration
@pytest.mark.browser
def test_every_page_runs_under_the_csp_without_a_violation(live_server, page, alice, staff, media, tmp_path):
    from tests.helpers import screenshot, sign_in

    done = make_job(alice, status=Status.SUCCEEDED, completed_at=timezone.now(), cost=Decimal("0.4"))
    done.video.save("v.mp4", ContentFile(tiny_mp4()), save=False)
    done.poster.save("p.jpg", ContentFile(image_bytes(128, 72, "JPEG")), save=False)
    done.reference_image.save("r.jpg", ContentFile(image_bytes(1280, 720, "JPEG")), save=False)
    done.save()
    live = make_job(alice, status=Status.PROCESSING)
    picture = tmp_path / "square.png"
    picture.write_bytes(image_bytes(900, 900))
    watch(page)

    visit(page, "/accounts/login/")
    sign_in(page, "staff", "staff-password-1")
    visit(page, "/")
    page.wait_for_timeout(3500)  # One live poll of the in-progress card.
    visit(page, "/new/")
    page.get_by_label("Reference image").set_input_files(str(picture))
    page.wait_for_selector(".preview img[src^='blob:']")
    assert "will be center-cropped" in page.locator(".preview figcaption").inner_text()
    visit(page, f"/jobs/{done.pk}/")
    video = page.locator("video")
    video.evaluate("v => { v.muted = true; return v.play(); }")
    visit(page, f"/jobs/{live.pk}/")
    page.wait_for_timeout(3500)  # One live poll of the video page.
    visit(page, f"/jobs/{done.pk}/delete/")
    visit(page, "/accounts/password_change/")
    for url in [
        "/admin/", "/admin/jobs/videojob/", "/admin/jobs/videojob/?status__exact=succeeded",
        f"/admin/jobs/videojob/{done.pk}/change/", "/admin/auth/user/",
        f"/admin/auth/user/{alice.pk}/change/", "/admin/auth/user/add/",
        f"/admin/auth/user/{alice.pk}/password/", "/admin/auth/group/add/",
        "/admin/axes/accessattempt/", "/admin/password_change/",
    ]:  # fmt: skip
        visit(page, url)
    screenshot(page, "admin-under-csp")
    page.goto("/no-such-page/")
    # A lockout page, from a fresh tab that guesses wrong five times.
    page.context.clear_cookies()
    for _ in range(6):
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill("wrong guess")
        page.get_by_role("button", name="Sign in").click()
    assert "Too many failed sign-in attempts" in page.content()
    screenshot(page, "locked-out")

    assert csp_errors(page) == []
    assert page.dialogs == []
    # The control: an inline style really is reported, so the silence above means something.
    page.evaluate(
        "() => document.head.append(Object.assign(document.createElement('style'), {textContent: 'p {}'}))"
    )
    page.wait_for_timeout(300)
    assert any("style-src" in violation for violation in page.violations), page.violations


# --- The API key, through a whole run -----------------------------------------------------------


class BrokerTap:
    """Every command Redis executes while it runs (MONITOR): all that goes through the broker."""

    def __init__(self, url):
        import threading

        import redis

        self.commands = []
        socket = url.removeprefix("redis+socket://")  # The embedded Redis's URL, in Celery's spelling.
        self.client = redis.Redis(unix_socket_path=socket) if socket != url else redis.Redis.from_url(url)
        self.stopping = threading.Event()
        self.monitor = self.client.monitor().__enter__()
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()

    def _listen(self):
        while not self.stopping.is_set():
            try:
                self.commands.append(self.monitor.next_command()["command"])
            except Exception:  # The connection closed: the tap is done.
                return

    def stop(self):
        self.stopping.set()
        self.client.ping()  # One more command, so the listener wakes and sees it should stop.
        self.thread.join(timeout=10)
        self.monitor.__exit__(None, None, None)

    def everything_stored(self):
        """Every key left in the database, with its value whatever its type."""
        dump = []
        read = {
            "string": self.client.get,
            "list": lambda key: self.client.lrange(key, 0, -1),
            "hash": self.client.hgetall,
            "set": self.client.smembers,
            "zset": lambda key: self.client.zrange(key, 0, -1, withscores=True),
        }
        for key in self.client.scan_iter():
            kind = self.client.type(key).decode()
            dump.append(f"{key!r} {kind} {read[kind](key) if kind in read else '?'!r}")
        return dump


class Captured(__import__("logging").Handler):
    def __init__(self):
        super().__init__(level=0)
        self.lines = []

    def emit(self, record):
        self.lines.append(f"{record.name} {record.levelname} {record.getMessage()} {record.exc_text or ''}")


@pytest.mark.integration
def test_the_api_key_is_in_no_page_log_line_or_broker_message_of_a_whole_run(
    processes, live_server, settings, alice, staff, media
):
    import base64
    import logging
    import secrets

    from celery.signals import before_task_publish

    from simulator import Simulator
    from tests.factories import upload
    from tests.helpers import wait_for

    canary = f"sk-canary-{secrets.token_hex(12)}"
    gateway = Simulator(api_key=canary, generation_seconds=1).start()
    settings.SORA_API_KEY, settings.SORA_DEMO_MODE = canary, False
    settings.PUBLIC_BASE_URL = live_server.url
    processes.env.update(
        SORA_API_KEY=canary,
        SORA_API_BASE_URL=gateway.url,
        SORA_TRUSTED_PRIVATE_HOSTS=gateway.url.removeprefix("http://"),
        PUBLIC_BASE_URL=live_server.url,
        MEDIA_ROOT=str(media),
        LOG_LEVEL="DEBUG",
    )
    logs = Captured()
    for name in ("", "jobs"):
        logging.getLogger(name).addHandler(logs)
    published = []

    def record(body=None, headers=None, **kwargs):
        published.append(repr((body, headers, kwargs.get("routing_key"))))

    before_task_publish.connect(record, weak=False)
    tap = BrokerTap(settings.CELERY_BROKER_URL)
    pages = []
    try:
        processes.worker(concurrency=2)
        processes.beat()
        client = Client()
        client.force_login(alice)
        form = {"model": "openAiSora2Plus", "aspect_ratio": "16:9", "duration": "4"}
        image = upload(image_bytes(1000, 1000), "square.png")
        created = client.post(
            reverse("jobs:create"), form | {"prompt": "a lighthouse", "reference_image": image}
        )
        failing = client.post(reverse("jobs:create"), form | {"prompt": "a storm at sea [sim:fail]"})
        assert (created.status_code, failing.status_code) == (302, 302)
        pages += [created, failing]

        def all_final():
            jobs = list(VideoJob.objects.all())
            return jobs if all(job.is_final for job in jobs) else None

        jobs = wait_for(all_final, timeout=120, message="both jobs to finish")
        done = next(job for job in jobs if job.prompt == "a lighthouse")
        assert done.status == Status.SUCCEEDED, (done.error, processes.logs())
        assert gateway.create_calls(), "the gateway was never called"

        staff_client = Client()
        staff_client.force_login(staff)
        for who in (client, staff_client):
            for url in ["/", "/?status=failed", reverse("jobs:create"), reverse("jobs:cards") + "?ids=1,2"]:
                pages.append(who.get(url))
            for job in jobs:
                for name in [
                    "jobs:detail",
                    "jobs:video",
                    "jobs:download",
                    "jobs:poster",
                    "jobs:reference_image",
                ]:
                    pages.append(who.get(reverse(name, args=[job.pk])))
                pages.append(who.get(reverse("jobs:create") + f"?from={job.pk}"))
        for url in [
            reverse("admin:index"), reverse("admin:jobs_videojob_changelist"),
            *[reverse("admin:jobs_videojob_change", args=[job.pk]) for job in jobs],
            reverse("admin:auth_user_change", args=[alice.pk]), reverse("admin:axes_accesslog_changelist"),
        ]:  # fmt: skip
            pages.append(staff_client.get(url))
        pages += [Client().get(reverse("login")), Client().get("/healthz")]
        pages.append(Client().post(reverse("login"), {"username": "alice", "password": canary}))
    finally:
        tap.stop()
        gateway.stop()
        before_task_publish.disconnect(record)
        for name in ("", "jobs"):
            logging.getLogger(name).removeHandler(logs)
        processes.stop_all()

    def leaks(text):
        """The key as it is, or base64-encoded at any alignment (Celery's message bodies are)."""
        cores = [
            base64.b64encode(b"x" * shift + canary.encode() + b"xx")[4:-4].decode() for shift in range(3)
        ]
        return canary in text or any(core in text for core in cores)

    assert leaks(repr(base64.b64encode(b'[["a", "' + canary.encode() + b'"]]')))  # The check itself works.
    bodies = [b"".join(page.streaming_content) if page.streaming else page.content for page in pages]
    # 404s are the failed job's files (it has none); /healthz may say 503 as the workers stop.
    assert all(page.status_code in (200, 302, 404, 503) for page in pages), [p.status_code for p in pages]
    assert sum(page.status_code == 200 for page in pages) > 30
    for body in bodies:
        assert canary.encode() not in body
    service_logs = [proc.log_path.read_text() for proc in processes.started]
    assert any("jobs.tasks.submit_job" in text for text in service_logs)
    assert not [text for text in service_logs if leaks(text)]
    assert logs.lines and not [line for line in logs.lines if leaks(line)]
    assert any("jobs.tasks.submit_job" in message for message in published)
    assert not [message for message in published if leaks(message)]
    traffic = [repr(command) for command in tap.commands]
    assert any("jobs.tasks.poll_job" in command for command in traffic), "the tap saw no task messages"
    assert not [command for command in traffic if leaks(command)]
    assert not [entry for entry in tap.everything_stored() if leaks(entry)]
    # The sign-in form was sent the key as a password: axes keeps no copy of it.
    from axes.models import AccessAttempt

    assert canary not in repr(list(AccessAttempt.objects.values()))
