"""Handing videos over: bulk actions on a selection, the ZIP export, and share links.

alice owns the videos, bob is on the team, staff is an admin; anonymous is a signed-out visitor.
"""

import csv
import io
import zipfile
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from handover import zips
from handover.models import ShareLink
from jobs.models import VideoJob
from tests.factories import image_bytes, make_job, tiny_mp4

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]
Status = VideoJob.Status
BULK = "/bulk/"


def ready(owner, prompt="a paper boat on a stream", **fields):
    job = make_job(owner, prompt=prompt, status=Status.SUCCEEDED, completed_at=timezone.now(), **fields)
    job.video.save(f"job-{job.pk}.mp4", ContentFile(tiny_mp4()), save=False)
    job.poster.save(f"job-{job.pk}.jpg", ContentFile(image_bytes(128, 72, "JPEG")), save=False)
    job.save()
    return job


def signed_in(client, user):
    client.force_login(user)
    return client


def post_bulk(client, action, jobs, **extra):
    ids = [str(job.pk) if isinstance(job, VideoJob) else job for job in jobs]
    return client.post(BULK, {"action": action, "ids": ids, **extra})


def said(response):
    return [str(message) for message in response.wsgi_request._messages]


def unzip(response):
    assert response["Content-Type"] == "application/zip"
    body = b"".join(response.streaming_content)
    assert int(response["Content-Length"]) == len(body)
    return zipfile.ZipFile(io.BytesIO(body))


def manifest_rows(archive):
    text = archive.read("manifest.csv").decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


# --- ZIP --------------------------------------------------------------------------


def test_a_zip_holds_each_video_as_stored_and_a_manifest(client, alice):
    jobs = [
        ready(alice, "A paper boat, drifting!", cost=Decimal("0.25"), upstream_id="gw-1"),
        ready(alice, "Fireworks over a harbour"),
        ready(alice, "Fireworks over a harbour"),
    ]
    archive = unzip(post_bulk(signed_in(client, alice), "zip", jobs))

    videos = [info for info in archive.infolist() if info.filename.endswith(".mp4")]
    assert sorted(info.filename for info in videos) == sorted(
        [f"{jobs[0].pk}-a-paper-boat-drifting.mp4"]
        + [f"{job.pk}-fireworks-over-a-harbour.mp4" for job in jobs[1:]]
    )
    for info in videos:
        assert info.compress_type == zipfile.ZIP_STORED
        assert archive.read(info) == tiny_mp4()
    rows = {row["number"]: row for row in manifest_rows(archive)}
    first = rows[str(jobs[0].pk)]
    assert first["prompt"] == "A paper boat, drifting!"
    assert (first["model"], first["orientation"], first["length_seconds"]) == (
        "Sora 2 Plus", "Landscape 16:9", "8",
    )  # fmt: skip
    assert (first["who"], first["cost"], first["gateway_id"]) == ("alice", "0.2500", "gw-1")
    assert first["file_name"] == f"{jobs[0].pk}-a-paper-boat-drifting.mp4"


def test_a_job_without_a_video_is_listed_as_not_included(client, alice):
    failed = make_job(alice, status=Status.FAILED)
    archive = unzip(post_bulk(signed_in(client, alice), "zip", [ready(alice), failed]))

    assert len(archive.namelist()) == 2
    row = next(row for row in manifest_rows(archive) if row["number"] == str(failed.pk))
    assert row["file_name"] == "" and row["note"].startswith("not included")


def test_a_prompt_that_looks_like_a_formula_is_defused_in_the_manifest(client, alice):
    job = ready(alice, '=HYPERLINK("http://evil")')
    archive = unzip(post_bulk(signed_in(client, alice), "zip", [job]))

    assert manifest_rows(archive)[0]["prompt"].startswith("'=")


def test_a_zip_leaves_out_what_the_person_cannot_see(client, settings, alice, bob):
    settings.SORAWEB_GALLERY_SCOPE = "own"
    mine, theirs = ready(bob, "bob's own"), ready(alice, "alice's secret")
    archive = unzip(post_bulk(signed_in(client, bob), "zip", [mine, theirs]))

    assert [row["number"] for row in manifest_rows(archive)] == [str(mine.pk)]
    assert not any("secret" in name for name in archive.namelist())


def test_a_zip_of_only_unseen_jobs_is_refused_like_missing_ones(client, settings, alice, bob):
    settings.SORAWEB_GALLERY_SCOPE = "own"
    response = post_bulk(signed_in(client, bob), "zip", [ready(alice), "999999"])

    assert response.status_code == 302
    assert said(response) == ["None of the selected videos could be found."]


def test_a_zip_over_the_cap_is_refused_with_a_reason(client, alice):
    ids = [str(n) for n in range(1, zips.MAX_JOBS + 2)]
    response = post_bulk(signed_in(client, alice), "zip", ids)

    assert response.status_code == 302
    assert f"at most {zips.MAX_JOBS} videos" in said(response)[0]


def test_file_names_keep_the_number_when_the_prompt_has_no_letters(alice):
    assert zips.file_name(make_job(alice, prompt="!!!")).endswith(".mp4")
    assert len(zips.file_name(make_job(alice, prompt="word " * 100))) <= 20 + 60 + 4


# --- Bulk retry and delete --------------------------------------------------------


def test_bulk_delete_removes_what_is_yours_and_reports_the_rest_by_number(client, alice, bob, media):
    mine = ready(alice)
    theirs = ready(bob)
    running = make_job(alice, status=Status.PROCESSING)
    video_path = media / mine.video.name
    response = post_bulk(signed_in(client, alice), "delete", [mine, theirs, running, "424242"])

    assert response.status_code == 302 and response["Location"] == reverse("jobs:gallery")
    assert not VideoJob.objects.filter(pk=mine.pk).exists() and not video_path.exists()
    assert VideoJob.objects.filter(pk__in=[theirs.pk, running.pk]).count() == 2
    success, refusal = said(response)
    assert success == "1 video deleted with their files."
    assert f"#{theirs.pk} (not yours" in refusal
    assert f"#{running.pk} (still in progress)" in refusal
    assert "#424242 (not found)" in refusal


def test_staff_may_delete_anyones_finished_job(client, staff, alice):
    job = ready(alice)
    post_bulk(signed_in(client, staff), "delete", [job])

    assert not VideoJob.objects.filter(pk=job.pk).exists()


def test_with_scope_own_another_persons_job_is_refused_as_not_found(client, settings, alice, bob):
    settings.SORAWEB_GALLERY_SCOPE = "own"
    theirs = ready(alice)
    response = post_bulk(signed_in(client, bob), "delete", [theirs])

    assert VideoJob.objects.filter(pk=theirs.pk).exists()
    assert said(response) == [f"Not deleted: #{theirs.pk} (not found)."]


def test_bulk_retry_makes_new_jobs_of_the_failed_ones_and_skips_the_rest(client, alice, submitted):
    failed = make_job(alice, status=Status.FAILED, prompt="try me again")
    running = make_job(alice, status=Status.QUEUED)
    ready = make_job(alice, status=Status.SUCCEEDED)
    response = post_bulk(signed_in(client, alice), "retry", [failed, running, ready])

    again = VideoJob.objects.get(retry_of=failed)
    assert again.owner == alice and again.status == Status.PENDING and again.prompt == "try me again"
    assert not VideoJob.objects.filter(retry_of__in=[running, ready]).exists()
    success, *refusals = said(response)
    assert success == "1 video retried as new jobs."
    assert f"#{running.pk} (still in progress)" in " ".join(refusals)
    assert f"#{ready.pk} (ready:" in " ".join(refusals)


def test_bulk_retry_beyond_the_limit_makes_nothing(client, settings, alice, submitted):
    settings.SORAWEB_LIMIT_ACTIVE_JOBS = 1
    jobs = [make_job(alice, status=Status.FAILED) for _ in range(2)]
    response = post_bulk(signed_in(client, alice), "retry", jobs)

    assert not VideoJob.objects.filter(retry_of__isnull=False).exists()
    assert said(response)[0].startswith("Nothing was retried: ")
    submitted.assert_not_called()


def test_bulk_goes_back_to_a_same_site_next_but_never_off_site(client, alice):
    job = ready(alice)
    signed_in(client, alice)
    assert post_bulk(client, "retry", [job], next="/?status=failed")["Location"] == "/?status=failed"
    assert post_bulk(client, "retry", [job], next="https://evil.example/")["Location"] == "/"


def test_bulk_ignores_ids_that_are_not_job_numbers(client, alice):
    response = post_bulk(signed_in(client, alice), "delete", ["abc", "-1", "9" * 30, " "])

    assert said(response) == ["Select at least one video first."]


def test_bulk_refuses_an_unknown_action_and_a_get(client, alice):
    signed_in(client, alice)
    assert said(post_bulk(client, "explode", [ready(alice)])) == [
        "Choose what to do with the selected videos."
    ]
    assert client.get(BULK).status_code == 405


def test_bulk_needs_sign_in(client, alice):
    response = post_bulk(client, "zip", [ready(alice)])

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- Share links ------------------------------------------------------------------


def make_link(client, user, job, days="7"):
    response = signed_in(client, user).post(reverse("handover:share", args=[job.pk]), {"days": days})
    assert response.status_code == 200
    url = response.context["url"]
    client.logout()
    return urlsplit(url).path


def test_the_owner_makes_a_link_that_works_signed_out(client, alice):
    job = ready(alice, "a lighthouse at dusk")
    url = make_link(client, alice, job)

    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "a lighthouse at dusk" in html and f"{url}video.mp4" in html and f"{url}download" in html
    assert "alice" not in html and "/jobs/" not in html and "Sign out" not in html
    assert page["Referrer-Policy"] == "no-referrer"
    assert b"".join(client.get(f"{url}video.mp4").streaming_content) == tiny_mp4()
    assert client.get(f"{url}poster.jpg").status_code == 200
    download = client.get(f"{url}download")
    assert download["Content-Disposition"].startswith("attachment")


def test_the_shared_video_answers_a_range_request(client, alice):
    url = make_link(client, alice, ready(alice))
    response = client.get(f"{url}video.mp4", HTTP_RANGE="bytes=0-9")

    assert response.status_code == 206 and b"".join(response.streaming_content) == tiny_mp4()[:10]


def test_the_link_lives_the_chosen_number_of_days(client, alice):
    make_link(client, alice, ready(alice), days="30")
    make_link(client, alice, ready(alice), days="365")
    lifetimes = [
        round((link.expires_at - link.created_at) / timedelta(days=1)) for link in ShareLink.objects.all()
    ]

    assert sorted(lifetimes) == [7, 30]


def test_the_database_keeps_only_the_tokens_hash(client, alice):
    url = make_link(client, alice, ready(alice))
    token = url.strip("/").rpartition("/")[2]

    assert len(token) >= 43
    assert not ShareLink.objects.filter(token_hash__contains=token).exists()


def test_an_altered_or_unknown_token_is_not_found(client, alice):
    url = make_link(client, alice, ready(alice))
    token = url.strip("/").rpartition("/")[2]
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")

    for path in (f"/s/{altered}/", f"/s/{altered}/video.mp4", f"/s/{token[:20]}/", "/s/x/poster.jpg"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert b"alice" not in response.content


def test_a_revoked_link_is_gone(client, alice):
    url = make_link(client, alice, ready(alice))
    link = ShareLink.objects.get()
    signed_in(client, alice).post(reverse("handover:revoke", args=[link.pk]))
    client.logout()

    for path in (url, f"{url}video.mp4", f"{url}download"):
        assert client.get(path).status_code == 410
    assert b"no longer works" in client.get(url).content


def test_an_expired_link_is_gone(client, alice):
    url = make_link(client, alice, ready(alice), days="1")
    ShareLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    assert client.get(url).status_code == 410


def test_a_link_stops_while_its_maker_is_deactivated(client, alice, staff):
    url = make_link(client, alice, ready(alice))
    client.logout()
    alice.is_active = False
    alice.save()

    assert client.get(url).status_code == 410
    listed = signed_in(client, staff).get(reverse("handover:shares")).content.decode()
    assert "account is deactivated" in listed and "Revoke" in listed


def test_a_link_dies_with_its_job(client, alice):
    job = ready(alice)
    url = make_link(client, alice, job)
    job.delete()

    assert client.get(url).status_code == 404


def test_a_link_opens_nothing_of_the_studio(client, alice):
    other = ready(alice, "another job")
    url = make_link(client, alice, ready(alice))
    client.get(url)

    for path in (
        "/",
        f"/jobs/{other.pk}/",
        f"/jobs/{other.pk}/poster.jpg",
        f"/jobs/{other.pk}/video.mp4",
        "/shares/",
    ):
        response = client.get(path)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], path


def test_only_the_owner_or_staff_may_share(client, alice, bob, staff):
    job = ready(alice)

    assert signed_in(client, bob).post(reverse("handover:share", args=[job.pk])).status_code == 403
    assert signed_in(client, staff).post(reverse("handover:share", args=[job.pk])).status_code == 200


def test_with_scope_own_another_persons_job_cannot_be_shared(client, settings, alice, bob):
    settings.SORAWEB_GALLERY_SCOPE = "own"
    job = ready(alice)

    assert signed_in(client, bob).post(reverse("handover:share", args=[job.pk])).status_code == 404


def test_an_unfinished_video_cannot_be_shared(client, alice):
    job = make_job(alice, status=Status.FAILED)
    response = signed_in(client, alice).post(reverse("handover:share", args=[job.pk]))

    assert response.status_code == 302 and not ShareLink.objects.exists()


def test_people_list_and_revoke_only_their_own_links(client, alice, bob, staff):
    make_link(client, alice, ready(alice, "alice's video"))
    alices = ShareLink.objects.get()

    listing = signed_in(client, bob).get(reverse("handover:shares"))
    assert b"alice&#x27;s video" not in listing.content
    assert client.post(reverse("handover:revoke", args=[alices.pk])).status_code == 404
    alices.refresh_from_db()
    assert alices.revoked_at is None

    assert b"alice&#x27;s video" in signed_in(client, staff).get(reverse("handover:shares")).content
    client.post(reverse("handover:revoke", args=[alices.pk]))
    alices.refresh_from_db()
    assert alices.revoked_at is not None


def test_the_video_page_offers_a_share_form_to_its_owner_only(client, alice, bob):
    job = ready(alice)

    assert (
        reverse("handover:share", args=[job.pk]).encode()
        in signed_in(client, alice).get(reverse("jobs:detail", args=[job.pk])).content
    )
    assert (
        reverse("handover:share", args=[job.pk]).encode()
        not in signed_in(client, bob).get(reverse("jobs:detail", args=[job.pk])).content
    )


def test_staff_revoke_links_from_the_admin(client, alice, staff):
    url = make_link(client, alice, ready(alice))
    link = ShareLink.objects.get()
    signed_in(client, staff)
    assert client.get(reverse("admin:handover_sharelink_changelist")).status_code == 200
    client.post(
        reverse("admin:handover_sharelink_changelist"),
        {"action": "revoke", "_selected_action": [link.pk]},
    )
    client.logout()

    assert client.get(url).status_code == 410
