"""The studio's pages and actions, as alice (owner), bob (teammate) and staff use them."""

import re
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from jobs import firstrun
from jobs.models import VideoJob
from tests.factories import image_bytes, make_job, tiny_mp4, upload

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]
Status, Kind = VideoJob.Status, VideoJob.FailureKind


def signed_in(client, user):
    client.force_login(user)
    return client


def finished_job(owner, **overrides):
    """A succeeded job with a real MP4, poster and reference image in storage."""
    job = make_job(owner, **({"status": Status.SUCCEEDED, "completed_at": timezone.now()} | overrides))
    job.video.save("job.mp4", ContentFile(tiny_mp4()), save=False)
    job.poster.save("job.jpg", ContentFile(image_bytes(128, 72, "JPEG")), save=False)
    job.reference_image.save("ref.jpg", ContentFile(image_bytes(1280, 720, "JPEG")), save=False)
    job.save()
    return job


def create_data(**overrides):
    return {
        "prompt": "a paper boat on a rainy street",
        "model": "openAiSora2Plus",
        "aspect_ratio": "16:9",
    } | {
        "duration": "8",
        **overrides,
    }


# --- Sign-in and the first run ------------------------------------------------------


@pytest.mark.parametrize(
    "name, args",
    [
        ("jobs:gallery", []),
        ("jobs:create", []),
        ("jobs:cards", []),
        ("jobs:detail", [1]),
        ("jobs:delete", [1]),
        ("jobs:video", [1]),
        ("jobs:download", [1]),
        ("jobs:poster", [1]),
        ("jobs:reference_image", [1]),
    ],
)
def test_anonymous_visitors_are_sent_to_sign_in(client, alice, name, args):
    make_job(alice)
    response = client.get(reverse(name, args=args))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


@pytest.mark.parametrize("name", ["jobs:retry", "jobs:cancel", "jobs:delete"])
def test_anonymous_actions_are_sent_to_sign_in_and_change_nothing(client, alice, name):
    job = make_job(alice)
    response = client.post(reverse(name, args=[job.pk]))
    assert response.url.startswith(reverse("login"))
    assert VideoJob.objects.get().status == Status.PENDING


def test_the_sign_in_page_has_username_and_password_fields(client, alice):
    page = client.get(reverse("login")).content.decode()
    assert 'name="username"' in page and 'name="password"' in page


def test_signing_in_leads_to_the_gallery(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": "alice-password-1"})
    assert response.url == reverse("jobs:gallery")


def test_before_anyone_exists_the_home_page_offers_the_first_account(client):
    assert client.get("/").url == reverse("jobs:setup")


def test_before_anyone_exists_the_sign_in_page_links_to_the_first_account(client):
    page = client.get(reverse("login")).content.decode()
    assert reverse("jobs:setup") in page
    assert 'name="password"' not in page


def test_the_first_account_is_an_admin_and_signed_in(client, django_user_model):
    response = client.post(
        reverse("jobs:setup"),
        {
            "setup_code": firstrun.setup_code(),
            "username": "ada",
            "password1": "a long pass phrase 9",
            "password2": "a long pass phrase 9",
        },
    )
    assert response.url == reverse("jobs:gallery")
    ada = django_user_model.objects.get()
    assert ada.is_superuser and ada.is_staff
    assert client.get("/").status_code == 200


def test_the_first_account_form_reports_mismatched_passwords(client, django_user_model):
    response = client.post(
        reverse("jobs:setup"),
        {
            "setup_code": firstrun.setup_code(),
            "username": "ada",
            "password1": "a long pass phrase 9",
            "password2": "another phrase 9",
        },
    )
    assert response.status_code == 200
    assert "didn’t match" in response.content.decode()
    assert not django_user_model.objects.exists()


def test_once_someone_exists_setup_is_closed(client, alice, django_user_model):
    assert client.get(reverse("jobs:setup")).url == reverse("login")
    client.post(
        reverse("jobs:setup"),
        {
            "setup_code": firstrun.setup_code(),
            "username": "eve",
            "password1": "a long pass phrase 9",
            "password2": "a long pass phrase 9",
        },
    )
    assert list(django_user_model.objects.values_list("username", flat=True)) == ["alice"]


def test_once_someone_exists_the_sign_in_page_no_longer_offers_setup(client, alice):
    assert reverse("jobs:setup") not in client.get(reverse("login")).content.decode()


# --- Creating ------------------------------------------------------------------------


def test_the_create_form_has_every_field(client, alice):
    page = signed_in(client, alice).get(reverse("jobs:create")).content.decode()
    for name in ["prompt", "model", "aspect_ratio", "duration", "reference_image"]:
        assert f'name="{name}"' in page
    assert "Faster and cheaper" in page and "Higher quality" in page
    assert 'enctype="multipart/form-data"' in page


def test_submitting_saves_a_pending_job_and_enqueues_one_submit(
    client, alice, submitted, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in(client, alice).post(reverse("jobs:create"), create_data())
    assert response.url == reverse("jobs:gallery")
    job = VideoJob.objects.get()
    assert (job.status, job.owner, job.prompt) == (Status.PENDING, alice, "a paper boat on a rainy street")
    submitted.assert_called_once_with(job.pk)


def test_after_submitting_the_new_job_is_on_top_of_the_gallery(client, alice, submitted):
    make_job(alice, prompt="an older one", created_at=timezone.now() - timedelta(hours=1))
    response = signed_in(client, alice).post(
        reverse("jobs:create"), create_data(prompt="the newest idea"), follow=True
    )
    page = response.content.decode()
    assert "Your video is on its way" in page
    assert page.index("the newest idea") < page.index("an older one")


def test_an_image_is_stored_fitted_with_its_note(client, alice, submitted):
    data = create_data(reference_image=upload(image_bytes(1000, 1000)))
    signed_in(client, alice).post(reverse("jobs:create"), data)
    job = VideoJob.objects.get()
    assert job.reference_note == "Cropped and resized from 1000x1000 to 1280x720 to match landscape."
    assert job.reference_image.size > 0


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"prompt": "   "}, "prompt"),
        ({"model": "openAiSora9"}, "model"),
        ({"aspect_ratio": "1:1"}, "aspect_ratio"),
        ({"duration": "30"}, "duration"),
        ({"reference_image": upload(b"MZ\x90\x00 an exe", "evil.png")}, "reference_image"),
        ({"reference_image": upload(b"\0" * (5 * 1024 * 1024 + 10), "big.png")}, "reference_image"),
        ({"reference_image": upload(image_bytes(900, 900, "JPEG")[:700], "cut.jpg")}, "reference_image"),
    ],
)
def test_a_form_error_creates_nothing_and_keeps_what_was_typed(client, alice, submitted, overrides, field):
    data = create_data(prompt="a heron <b>lifting</b> off a misty lake", duration="12") | overrides
    response = signed_in(client, alice).post(reverse("jobs:create"), data)
    assert response.status_code == 200
    assert list(response.context["form"].errors) == [field]
    page = response.content.decode()
    if field != "prompt":
        assert "a heron &lt;b&gt;lifting&lt;/b&gt; off a misty lake</textarea>" in page
    if field != "duration":
        assert re.search(r'<input[^>]*value="12"[^>]*checked', page)
    assert not VideoJob.objects.exists()
    submitted.assert_not_called()


def test_after_another_error_the_page_asks_to_choose_the_image_again(client, alice, submitted):
    data = create_data(prompt="", reference_image=upload(image_bytes(1280, 720)))
    page = signed_in(client, alice).post(reverse("jobs:create"), data).content.decode()
    assert "choose it again" in page


def test_a_real_key_without_public_address_refuses_an_image(client, alice, submitted, settings):
    settings.SORA_DEMO_MODE, settings.PUBLIC_BASE_URL = False, ""
    data = create_data(reference_image=upload(image_bytes(1280, 720)))
    response = signed_in(client, alice).post(reverse("jobs:create"), data)
    assert "PUBLIC_BASE_URL is not set" in response.content.decode()
    assert not VideoJob.objects.exists()


def test_use_these_settings_prefills_the_form(client, alice, bob):
    job = make_job(alice, prompt="a glass whale", model="openAiSora2Pro", aspect_ratio="9:16", duration=12)
    response = signed_in(client, bob).get(reverse("jobs:create") + f"?from={job.pk}")
    form = response.context["form"]
    assert form["prompt"].value() == "a glass whale"
    assert (form["model"].value(), form["aspect_ratio"].value(), form["duration"].value()) == (
        "openAiSora2Pro",
        "9:16",
        12,
    )


def test_use_these_settings_ignores_an_unknown_job(client, alice):
    response = signed_in(client, alice).get(reverse("jobs:create") + "?from=999")
    assert response.status_code == 200
    assert response.context["form"]["prompt"].value() is None


# --- The gallery ---------------------------------------------------------------------


def test_the_gallery_shows_cards_with_stable_ids_and_plain_labels(client, alice, bob):
    queued = make_job(alice, status=Status.PROCESSING, prompt="a comet over a harbour")
    done = make_job(bob, status=Status.SUCCEEDED, model="openAiSora2Pro")
    page = signed_in(client, alice).get("/").content.decode()
    assert f'id="job-{queued.pk}"' in page and f'id="job-{done.pk}"' in page
    assert 'data-status="processing"' in page and 'data-status="succeeded"' in page
    assert "Generating" in page and "Ready" in page and "Sora 2 Pro" in page
    assert "a comet over a harbour" in page and "bob" in page


def test_the_gallery_counts_each_tab(client, alice, bob):
    for status in [Status.PENDING, Status.QUEUED, Status.DOWNLOADING, Status.SUCCEEDED]:
        make_job(alice, status=status)
    for status in [Status.FAILED, Status.UNKNOWN, Status.CANCELLED]:
        make_job(bob, status=status)
    tabs = {tab["key"]: tab["count"] for tab in signed_in(client, alice).get("/").context["tabs"]}
    assert tabs == {"all": 7, "active": 3, "succeeded": 1, "failed": 3}


@pytest.mark.parametrize(
    "tab, expected",
    [("active", {"queued"}), ("succeeded", {"succeeded"}), ("failed", {"failed", "unknown", "cancelled"})],
)
def test_each_tab_shows_only_its_jobs(client, alice, tab, expected):
    for status in [Status.QUEUED, Status.SUCCEEDED, Status.FAILED, Status.UNKNOWN, Status.CANCELLED]:
        make_job(alice, status=status)
    jobs = signed_in(client, alice).get(f"/?status={tab}").context["jobs"]
    assert {job.status for job in jobs} == expected


def test_mine_only_shows_my_jobs_and_counts_them(client, alice, bob):
    mine = make_job(alice)
    make_job(bob)
    response = signed_in(client, alice).get("/?mine=1")
    assert [job.pk for job in response.context["jobs"]] == [mine.pk]
    assert response.context["tabs"][0]["count"] == 1


def test_the_gallery_pages_by_cursor_without_skipping_or_repeating(client, alice):
    now = timezone.now()
    # Ties on created_at on purpose: the id breaks them.
    made = [make_job(alice, created_at=now - timedelta(seconds=i // 3)) for i in range(60)]
    expected = [job.pk for job in sorted(made, key=lambda job: (job.created_at, job.pk), reverse=True)]
    signed_in(client, alice)
    seen, url, pages = [], "/", 0
    while url:
        context = client.get(url).context
        seen += [job.pk for job in context["jobs"]]
        url, pages = context["older_url"], pages + 1
    assert seen == expected
    assert pages == 3


def test_newer_links_walk_back_to_the_same_pages(client, alice):
    now = timezone.now()
    for i in range(50):
        make_job(alice, created_at=now - timedelta(seconds=i))
    signed_in(client, alice)
    first = client.get("/").context
    second = client.get(first["older_url"]).context
    back = client.get(second["newer_url"]).context
    assert [job.pk for job in back["jobs"]] == [job.pk for job in first["jobs"]]
    assert back["newer_url"] is None


def test_paging_keeps_the_filter(client, alice):
    for _ in range(30):
        make_job(alice, status=Status.SUCCEEDED)
    older = signed_in(client, alice).get("/?status=succeeded&mine=1").context["older_url"]
    assert "status=succeeded" in older and "mine=1" in older


def test_a_malformed_cursor_shows_the_first_page(client, alice):
    make_job(alice)
    assert len(signed_in(client, alice).get("/?before=yesterday").context["jobs"]) == 1


def test_the_first_page_costs_the_same_few_queries_however_many_jobs(
    client, alice, bob, django_assert_max_num_queries
):
    now = timezone.now()
    VideoJob.objects.bulk_create(
        [
            VideoJob(owner=alice if i % 2 else bob, prompt=f"job {i}", created_at=now - timedelta(seconds=i))
            for i in range(300)
        ]
    )
    signed_in(client, alice)
    with django_assert_max_num_queries(6):
        client.get("/")
    with django_assert_max_num_queries(6):
        client.get("/?status=active&mine=1")


def test_the_gallery_polls_only_the_cards_in_progress(client, alice):
    live = make_job(alice, status=Status.QUEUED)
    make_job(alice, status=Status.SUCCEEDED)
    page = signed_in(client, alice).get("/").content.decode()
    assert f'hx-get="{reverse("jobs:cards")}?ids={live.pk}&amp;v=' in page
    assert 'hx-trigger="every 3s' in page


def test_with_nothing_in_progress_the_gallery_does_not_poll(client, alice):
    make_job(alice, status=Status.SUCCEEDED)
    make_job(alice, status=Status.FAILED)
    page = signed_in(client, alice).get("/").content.decode()
    poller = re.search(r'<div id="live-cards"[^>]*>', page)[0]
    assert "hx-trigger" not in poller and "hx-get" not in poller


def test_the_cards_partial_returns_the_asked_cards_to_swap_in(client, alice, bob):
    live = make_job(alice, status=Status.PROCESSING)
    done = make_job(bob, status=Status.SUCCEEDED)
    response = signed_in(client, alice).get(reverse("jobs:cards") + f"?ids={live.pk},{done.pk}")
    page = response.content.decode()
    assert f'id="job-{live.pk}"' in page and f'id="job-{done.pk}"' in page
    assert page.count('hx-swap-oob="true"') == 3 + 4  # two cards, the poller and the four tab counts
    assert f"?ids={live.pk}&amp;v=" in page  # only the job still in progress is asked for again
    assert "<html" not in page


def test_a_poll_when_nothing_moved_gets_an_empty_answer(client, alice):
    job = make_job(alice, status=Status.PROCESSING)
    client = signed_in(client, alice)
    poller = re.search(r'id="live-cards"[^>]*hx-get="([^"]+)"', client.get("/").content.decode())[1].replace(
        "&amp;", "&"
    )
    assert client.get(poller).status_code == 204  # htmx swaps nothing
    VideoJob.objects.filter(pk=job.pk).update(status=Status.DOWNLOADING)
    moved = client.get(poller)
    assert moved.status_code == 200 and f'id="job-{job.pk}"' in moved.content.decode()


def test_a_card_that_moves_to_ready_moves_the_tab_counts_with_it(client, alice):
    job = make_job(alice, status=Status.PROCESSING)
    make_job(alice, status=Status.SUCCEEDED)
    client = signed_in(client, alice)
    poller = re.search(r'id="live-cards"[^>]*hx-get="([^"]+)"', client.get("/").content.decode())[1].replace(
        "&amp;", "&"
    )
    VideoJob.objects.filter(pk=job.pk).update(status=Status.SUCCEEDED)

    page = client.get(poller).content.decode()

    assert '<span class="tab__count" id="tab-count-active" hx-swap-oob="true">0</span>' in page
    assert '<span class="tab__count" id="tab-count-succeeded" hx-swap-oob="true">2</span>' in page


def test_the_live_tab_counts_keep_to_mine_only(client, alice, bob):
    make_job(bob, status=Status.SUCCEEDED)
    job = make_job(alice, status=Status.PROCESSING)
    client = signed_in(client, alice)
    poller = re.search(r'id="live-cards"[^>]*hx-get="([^"]+)"', client.get("/?mine=1").content.decode())[
        1
    ].replace("&amp;", "&")
    VideoJob.objects.filter(pk=job.pk).update(status=Status.SUCCEEDED)

    page = client.get(poller).content.decode()

    assert '<span class="tab__count" id="tab-count-all" hx-swap-oob="true">1</span>' in page


def test_the_gallery_counts_tabs_up_to_a_limit(client, alice, monkeypatch):
    monkeypatch.setattr("jobs.views.TAB_COUNT_LIMIT", 2)
    for _ in range(3):
        make_job(alice, status=Status.SUCCEEDED)
    make_job(alice, status=Status.QUEUED)
    page = signed_in(client, alice).get("/").content.decode()
    assert re.search(r'All <span class="tab__count"[^>]*>2\+</span>', page)
    assert re.search(r'In progress <span class="tab__count"[^>]*>1</span>', page)


def test_the_cards_partial_stops_polling_when_every_card_is_final(client, alice):
    job = make_job(alice, status=Status.SUCCEEDED)
    page = signed_in(client, alice).get(reverse("jobs:cards") + f"?ids={job.pk}").content.decode()
    assert 'data-status="succeeded"' in page
    assert "hx-trigger" not in page


def test_the_cards_partial_removes_cards_of_deleted_jobs_and_ignores_junk(client, alice):
    job = make_job(alice, status=Status.QUEUED)
    page = signed_in(client, alice).get(reverse("jobs:cards") + f"?ids={job.pk},999,abc,").content.decode()
    assert 'id="job-999" hx-swap-oob="delete"' in page
    assert 'data-status="queued"' in page


def test_a_card_shows_the_stage_and_elapsed_time(client, alice):
    job = make_job(alice, status=Status.PROCESSING, created_at=timezone.now() - timedelta(seconds=130))
    page = signed_in(client, alice).get(reverse("jobs:cards") + f"?ids={job.pk}").content.decode()
    assert "Generating" in page
    assert re.search(r"2 min 1\d s", page)


# --- The video page ----------------------------------------------------------------


def test_the_video_page_plays_and_downloads_a_finished_video(client, alice):
    job = finished_job(alice, cost="0.4000", upstream_id="sora_abc123", actual_duration=8.0)
    page = signed_in(client, alice).get(reverse("jobs:detail", args=[job.pk])).content.decode()
    assert '<video class="player player--landscape" controls preload="metadata"' in page
    assert reverse("jobs:video", args=[job.pk]) in page
    assert f'poster="{reverse("jobs:poster", args=[job.pk])}"' in page
    assert reverse("jobs:download", args=[job.pk]) in page
    for text in ["Sora 2 Plus", "Landscape 16:9", "1280x720", "8 s", "sora_abc123", "0.4", "Created"]:
        assert text in page
    assert reverse("jobs:reference_image", args=[job.pk]) in page


def test_the_video_page_shows_the_reference_note(client, alice):
    job = make_job(alice, reference_note="Cropped and resized from 1000x1000 to 1280x720 to match landscape.")
    job.reference_image.save("r.jpg", ContentFile(image_bytes(1280, 720, "JPEG")))
    page = signed_in(client, alice).get(reverse("jobs:detail", args=[job.pk])).content.decode()
    assert "Cropped and resized from 1000x1000" in page


@pytest.mark.parametrize(
    "status, kind, text",
    [
        (Status.FAILED, Kind.MODERATION, "safety system refused the prompt or image"),
        (Status.FAILED, Kind.REJECTED, "would not accept these settings"),
        (Status.FAILED, Kind.ACCOUNT, "tell an admin"),
        (Status.FAILED, Kind.PROVIDER, "Try again"),
        (Status.FAILED, Kind.TIMED_OUT, "was not ready before soraweb’s deadline"),
        (Status.FAILED, Kind.DOWNLOAD, "could not copy it"),
        (
            Status.UNKNOWN,
            "",
            "check your provider dashboard before retrying, because a retry is billed again",
        ),
        (Status.CANCELLED, "", "stopped tracking this job"),
    ],
)
def test_each_failure_is_explained_in_plain_words(client, alice, status, kind, text):
    job = make_job(
        alice, status=status, failure_kind=kind, error="HTTP 451 content policy", completed_at=None
    )
    page = signed_in(client, alice).get(reverse("jobs:detail", args=[job.pk])).content.decode()
    assert text in page
    assert "<video" not in page


@pytest.mark.parametrize(
    "status, text",
    [
        (Status.PENDING, "Waiting"),
        (Status.SUBMITTING, "Sending it to the video service"),
        (Status.QUEUED, "in its queue"),
        (Status.PROCESSING, "is generating it"),
        (Status.DOWNLOADING, "copying it into this studio"),
    ],
)
def test_a_job_in_progress_shows_its_stage_and_keeps_polling(client, alice, status, text):
    job = make_job(alice, status=status)
    page = signed_in(client, alice).get(reverse("jobs:detail", args=[job.pk])).content.decode()
    assert text in page
    assert f'hx-get="{reverse("jobs:detail", args=[job.pk])}"' in page
    assert 'id="job-detail"' in page


def test_the_video_page_answers_htmx_with_just_its_live_part(client, alice):
    job = make_job(alice, status=Status.PROCESSING)
    response = signed_in(client, alice).get(
        reverse("jobs:detail", args=[job.pk]), headers={"HX-Request": "true"}
    )
    page = response.content.decode()
    assert page.lstrip().startswith("<section") or '<section id="job-detail"' in page
    assert "<html" not in page
    assert "HX-Request" in response["Vary"]


def test_the_live_part_of_a_final_job_stops_polling(client, alice):
    job = make_job(alice, status=Status.FAILED, failure_kind=Kind.PROVIDER)
    response = signed_in(client, alice).get(
        reverse("jobs:detail", args=[job.pk]), headers={"HX-Request": "true"}
    )
    assert "hx-trigger" not in response.content.decode()


def test_a_missing_job_is_a_plain_404(client, alice):
    response = signed_in(client, alice).get(reverse("jobs:detail", args=[404]))
    assert response.status_code == 404
    assert "Not found" in response.content.decode()


def test_the_owner_sees_cancel_and_a_teammate_does_not(client, alice, bob):
    job = make_job(alice, status=Status.QUEUED)
    url = reverse("jobs:detail", args=[job.pk])
    assert reverse("jobs:cancel", args=[job.pk]) in signed_in(client, alice).get(url).content.decode()
    assert reverse("jobs:cancel", args=[job.pk]) not in signed_in(client, bob).get(url).content.decode()


def test_a_teammate_does_not_see_delete(client, alice, bob):
    job = make_job(alice, status=Status.FAILED)
    page = signed_in(client, bob).get(reverse("jobs:detail", args=[job.pk])).content.decode()
    assert reverse("jobs:delete", args=[job.pk]) not in page
    assert reverse("jobs:retry", args=[job.pk]) in page


# --- Actions ------------------------------------------------------------------------


def test_the_owner_can_cancel(client, alice):
    job = make_job(alice, status=Status.QUEUED)
    response = signed_in(client, alice).post(reverse("jobs:cancel", args=[job.pk]))
    assert response.url == reverse("jobs:detail", args=[job.pk])
    job.refresh_from_db()
    assert job.status == Status.CANCELLED


def test_staff_can_cancel_anyones_job(client, alice, staff):
    job = make_job(alice, status=Status.PROCESSING)
    signed_in(client, staff).post(reverse("jobs:cancel", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == Status.CANCELLED


def test_a_teammate_cannot_cancel(client, alice, bob):
    job = make_job(alice, status=Status.QUEUED)
    response = signed_in(client, bob).post(reverse("jobs:cancel", args=[job.pk]))
    assert response.status_code == 403
    assert "owner or an admin" in response.content.decode()
    job.refresh_from_db()
    assert job.status == Status.QUEUED


def test_cancelling_a_finished_job_changes_nothing(client, alice):
    job = make_job(alice, status=Status.SUCCEEDED)
    signed_in(client, alice).post(reverse("jobs:cancel", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED


def test_cancel_is_a_post_only_action(client, alice):
    job = make_job(alice, status=Status.QUEUED)
    assert signed_in(client, alice).get(reverse("jobs:cancel", args=[job.pk])).status_code == 405


def test_delete_asks_first(client, alice):
    job = finished_job(alice)
    response = signed_in(client, alice).get(reverse("jobs:delete", args=[job.pk]))
    assert "Delete this video?" in response.content.decode()
    assert VideoJob.objects.filter(pk=job.pk).exists()


def test_the_owner_deletes_the_job_and_its_files(client, alice, media):
    job = finished_job(alice)
    paths = [media / job.video.name, media / job.poster.name, media / job.reference_image.name]
    assert all(path.exists() for path in paths)
    response = signed_in(client, alice).post(reverse("jobs:delete", args=[job.pk]))
    assert response.url == reverse("jobs:gallery")
    assert not VideoJob.objects.exists()
    assert not any(path.exists() for path in paths)


def test_staff_can_delete_anyones_job(client, alice, staff):
    job = finished_job(alice)
    signed_in(client, staff).post(reverse("jobs:delete", args=[job.pk]))
    assert not VideoJob.objects.exists()


def test_a_teammate_cannot_delete(client, alice, bob, media):
    job = finished_job(alice)
    signed_in(client, bob)
    assert client.get(reverse("jobs:delete", args=[job.pk])).status_code == 403
    assert client.post(reverse("jobs:delete", args=[job.pk])).status_code == 403
    assert VideoJob.objects.exists() and (media / job.video.name).exists()


def test_a_job_in_progress_must_be_cancelled_before_deleting(client, alice):
    job = make_job(alice, status=Status.PROCESSING)
    response = signed_in(client, alice).post(reverse("jobs:delete", args=[job.pk]), follow=True)
    assert "cancel it first" in response.content.decode()
    assert VideoJob.objects.filter(pk=job.pk).exists()


def test_a_teammate_retries_as_a_new_job_of_their_own(
    client, alice, bob, submitted, django_capture_on_commit_callbacks
):
    job = finished_job(
        alice, status=Status.FAILED, failure_kind=Kind.PROVIDER, model="openAiSora2Pro", duration=12
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in(client, bob).post(reverse("jobs:retry", args=[job.pk]))
    assert response.url == reverse("jobs:gallery")
    new = VideoJob.objects.exclude(pk=job.pk).get()
    assert (new.owner, new.retry_of, new.status) == (bob, job, Status.PENDING)
    assert (new.prompt, new.model, new.duration, new.aspect_ratio) == (job.prompt, job.model, 12, "16:9")
    assert new.reference_image.name == job.reference_image.name  # one stored file, no copy
    submitted.assert_called_once_with(new.pk)


def test_deleting_the_first_job_keeps_the_image_its_retry_shares(client, alice, submitted, media):
    job = finished_job(alice, status=Status.FAILED, failure_kind=Kind.PROVIDER)
    client = signed_in(client, alice)
    client.post(reverse("jobs:retry", args=[job.pk]))

    client.post(reverse("jobs:delete", args=[job.pk]))

    new = VideoJob.objects.get()
    assert new.retry_of is None and (media / new.reference_image.name).exists()


def test_a_retry_whose_image_is_gone_from_storage_makes_nothing_and_says_why(client, alice, submitted):
    job = finished_job(alice, status=Status.FAILED, failure_kind=Kind.PROVIDER)
    job.reference_image.storage.delete(job.reference_image.name)

    response = signed_in(client, alice).post(reverse("jobs:retry", args=[job.pk]), follow=True)

    assert VideoJob.objects.count() == 1
    assert "missing from storage" in response.content.decode()
    submitted.assert_not_called()


def test_a_job_in_progress_is_not_retried(client, alice, submitted):
    job = make_job(alice, status=Status.QUEUED)
    signed_in(client, alice).post(reverse("jobs:retry", args=[job.pk]))
    assert VideoJob.objects.count() == 1
    submitted.assert_not_called()


# --- Files ------------------------------------------------------------------------------


def test_the_video_is_served_whole_with_range_support(client, alice):
    job = finished_job(alice)
    response = signed_in(client, alice).get(reverse("jobs:video", args=[job.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "video/mp4"
    assert response["Accept-Ranges"] == "bytes"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert int(response["Content-Length"]) == len(tiny_mp4())
    assert b"".join(response.streaming_content) == tiny_mp4()


@pytest.mark.parametrize(
    "header, start, end",
    [
        ("bytes=0-9", 0, 9),
        ("bytes=100-", 100, None),
        ("bytes=-50", -50, None),
        ("bytes=10-99999999", 10, None),
    ],
)
def test_a_range_request_answers_206_with_those_bytes(client, alice, header, start, end):
    job = finished_job(alice)
    data = tiny_mp4()
    expected = data[start : None if end is None else end + 1]
    first = start if start >= 0 else len(data) + start
    response = signed_in(client, alice).get(reverse("jobs:video", args=[job.pk]), headers={"Range": header})
    assert response.status_code == 206
    assert b"".join(response.streaming_content) == expected
    assert response["Content-Range"] == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"
    assert int(response["Content-Length"]) == len(expected)


@pytest.mark.parametrize("header", ["bytes=999999999-", "bytes=abc", "bytes=9-3", "bytes=-0", "bytes=-"])
def test_an_unsatisfiable_range_answers_416(client, alice, header):
    job = finished_job(alice)
    response = signed_in(client, alice).get(reverse("jobs:video", args=[job.pk]), headers={"Range": header})
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(tiny_mp4())}"


def test_several_ranges_get_the_whole_file(client, alice):
    job = finished_job(alice)
    response = signed_in(client, alice).get(
        reverse("jobs:video", args=[job.pk]), headers={"Range": "bytes=0-1,5-6"}
    )
    assert response.status_code == 200


def test_the_download_is_an_attachment_named_after_the_prompt(client, alice):
    job = finished_job(alice, prompt="A cat, dancing in the rain!")
    response = signed_in(client, alice).get(reverse("jobs:download", args=[job.pk]))
    assert response["Content-Disposition"] == 'attachment; filename="a-cat-dancing-in-the-rain.mp4"'
    assert b"".join(response.streaming_content) == tiny_mp4()


def test_the_poster_and_reference_image_are_jpegs(client, alice):
    job = finished_job(alice)
    signed_in(client, alice)
    for name in ["jobs:poster", "jobs:reference_image"]:
        response = client.get(reverse(name, args=[job.pk]))
        assert (response.status_code, response["Content-Type"]) == (200, "image/jpeg")
        assert response["X-Content-Type-Options"] == "nosniff"


def test_a_job_without_a_video_has_no_video_file(client, alice):
    job = make_job(alice, status=Status.PROCESSING)
    assert signed_in(client, alice).get(reverse("jobs:video", args=[job.pk])).status_code == 404


def test_a_file_missing_from_storage_is_a_404(client, alice, media):
    job = finished_job(alice)
    (media / job.video.name).unlink()
    assert signed_in(client, alice).get(reverse("jobs:video", args=[job.pk])).status_code == 404


def test_behind_nginx_the_file_is_handed_over_with_x_accel_redirect(client, alice, settings):
    settings.MEDIA_ACCEL_PREFIX = "/protected-media/"
    job = finished_job(alice, prompt="sunrise")
    response = signed_in(client, alice).get(reverse("jobs:download", args=[job.pk]))
    assert response["X-Accel-Redirect"] == f"/protected-media/{job.video.name}"
    assert response["Content-Disposition"] == 'attachment; filename="sunrise.mp4"'
    assert response.content == b""


def test_the_signed_reference_link_serves_the_image_without_sign_in(client, alice):
    from jobs import media

    job = finished_job(alice)
    response = client.get(reverse("jobs:reference", args=[media.reference_token(job)]))
    assert (response.status_code, response["Content-Type"]) == (200, "image/jpeg")


def test_a_forged_reference_link_is_a_404(client, alice):
    finished_job(alice)
    assert client.get(reverse("jobs:reference", args=["not-a-token"])).status_code == 404


# --- What is never shown ----------------------------------------------------------------


def test_the_api_key_never_appears_on_any_page(client, alice, staff, settings):
    settings.SORA_API_KEY = "sk-secret-test"
    settings.SORA_DEMO_MODE = False
    job = finished_job(alice)
    failed = make_job(alice, status=Status.FAILED, failure_kind=Kind.ACCOUNT, error="key refused")
    signed_in(client, staff)
    urls = [
        "/",
        "/?status=failed",
        reverse("jobs:create"),
        reverse("jobs:cards") + f"?ids={job.pk},{failed.pk}",
        reverse("jobs:detail", args=[job.pk]),
        reverse("jobs:detail", args=[failed.pk]),
        reverse("jobs:delete", args=[job.pk]),
        reverse("jobs:detail", args=[12345]),
        reverse("admin:jobs_videojob_changelist"),
        reverse("admin:jobs_videojob_change", args=[job.pk]),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code in (200, 404), url
        assert "sk-secret-test" not in response.content.decode(), url


def test_demo_mode_is_announced_on_every_page(client, alice, settings):
    settings.SORA_DEMO_MODE = True
    assert "Demo mode" in client.get(reverse("login")).content.decode()
    assert "Demo mode" in signed_in(client, alice).get(reverse("jobs:create")).content.decode()


def test_with_a_real_key_there_is_no_demo_banner(client, alice, settings):
    settings.SORA_DEMO_MODE = False
    assert "Demo mode" not in signed_in(client, alice).get("/").content.decode()


def test_pages_carry_no_inline_script_or_style(client, alice):
    job = finished_job(alice)
    signed_in(client, alice)
    for url in ["/", reverse("jobs:create"), reverse("jobs:detail", args=[job.pk])]:
        page = client.get(url).content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)", page), url
        assert " style=" not in page and "<style" not in page, url
        assert not re.search(r"\son[a-z]+=", page), url


def test_the_error_pages_render_without_a_trace(client, alice, settings):
    from django.template.loader import render_to_string

    page = render_to_string("500.html")
    assert "Something went wrong" in page and "Traceback" not in page
