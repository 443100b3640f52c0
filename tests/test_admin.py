"""VideoJob in Django admin: listing, searching, the change page and every action."""

from datetime import timedelta
from unittest import mock

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from jobs.models import VideoJob
from tests.factories import image_bytes, make_job, tiny_mp4

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]
Status = VideoJob.Status
CHANGELIST = reverse("admin:jobs_videojob_changelist")


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def act(client, action, *jobs):
    return client.post(
        CHANGELIST, {"action": action, "_selected_action": [job.pk for job in jobs]}, follow=True
    )


def test_the_list_shows_status_owner_settings_and_cost(admin_client, alice):
    make_job(alice, prompt="a red kite over dunes", status=Status.SUCCEEDED, cost="0.3500")
    page = admin_client.get(CHANGELIST).content.decode()
    for text in ["a red kite over dunes", "Ready", "alice", "Sora 2 Plus", "Landscape 16:9", "0.3500"]:
        assert text in page


@pytest.mark.parametrize("query", ["kite", "sora_zz9"])
def test_search_finds_jobs_by_prompt_and_upstream_id(admin_client, alice, query):
    found = make_job(alice, prompt="a red kite", upstream_id="sora_zz9")
    make_job(alice, prompt="a blue whale", upstream_id="sora_aa1")
    response = admin_client.get(CHANGELIST, {"q": query})
    assert list(response.context["cl"].result_list) == [found]


def test_the_list_filters_by_status(admin_client, alice):
    make_job(alice, status=Status.FAILED)
    make_job(alice, status=Status.QUEUED)
    response = admin_client.get(CHANGELIST, {"status__exact": "failed"})
    assert [job.status for job in response.context["cl"].result_list] == ["failed"]


def test_the_change_page_previews_the_video_and_locks_the_upstream_fields(admin_client, alice):
    job = make_job(alice, status=Status.SUCCEEDED, upstream_id="sora_abc", poll_count=7)
    job.video.save("v.mp4", ContentFile(tiny_mp4()), save=False)
    job.poster.save("p.jpg", ContentFile(image_bytes(128, 72, "JPEG")), save=False)
    job.save()
    response = admin_client.get(reverse("admin:jobs_videojob_change", args=[job.pk]))
    page = response.content.decode()
    assert (
        f'<video controls preload="metadata" width="480" src="{reverse("jobs:video", args=[job.pk])}"' in page
    )
    assert "sora_abc" in page
    assert (
        'name="upstream_id"' not in page and 'name="status"' not in page and 'name="poll_count"' not in page
    )


def test_saving_the_change_page_does_not_overwrite_what_a_worker_wrote(admin_client, alice):
    job = make_job(alice, status=Status.QUEUED)
    url = reverse("admin:jobs_videojob_change", args=[job.pk])
    admin_client.get(url)
    VideoJob.objects.filter(pk=job.pk).update(status=Status.PROCESSING)  # a worker, meanwhile
    admin_client.post(url, {"_save": "Save"})
    job.refresh_from_db()
    assert job.status == Status.PROCESSING


def test_jobs_are_not_added_in_the_admin(admin_client):
    assert admin_client.get(reverse("admin:jobs_videojob_add")).status_code == 403


def test_poll_now_makes_queued_and_generating_jobs_due_at_once(admin_client, alice):
    later = timezone.now() + timedelta(minutes=5)
    queued = make_job(alice, status=Status.QUEUED, next_check_at=later)
    done = make_job(alice, status=Status.SUCCEEDED, next_check_at=later)
    act(admin_client, "poll_now", queued, done)
    queued.refresh_from_db(), done.refresh_from_db()
    assert queued.next_check_at <= timezone.now()
    assert done.next_check_at == later


def test_retry_as_a_new_job_submits_a_copy_owned_by_the_admin(
    admin_client, alice, staff, django_capture_on_commit_callbacks
):
    failed = make_job(alice, status=Status.FAILED, prompt="a moth at a lamp")
    with mock.patch("jobs.tasks.submit_job.delay") as delay, django_capture_on_commit_callbacks(execute=True):
        act(admin_client, "retry_as_new", failed)
    new = VideoJob.objects.exclude(pk=failed.pk).get()
    assert (new.prompt, new.owner, new.retry_of, new.status) == (
        "a moth at a lamp",
        staff,
        failed,
        Status.PENDING,
    )
    delay.assert_called_once_with(new.pk)


def test_retry_skips_jobs_still_in_progress(admin_client, alice):
    queued = make_job(alice, status=Status.QUEUED)
    with mock.patch("jobs.tasks.submit_job.delay") as delay:
        act(admin_client, "retry_as_new", queued)
    assert VideoJob.objects.count() == 1
    delay.assert_not_called()


def test_mark_failed_fails_an_active_job_as_a_provider_error(admin_client, alice):
    job = make_job(alice, status=Status.PROCESSING)
    act(admin_client, "mark_failed", job)
    job.refresh_from_db()
    assert (job.status, job.failure_kind, job.error) == (
        Status.FAILED,
        VideoJob.FailureKind.PROVIDER,
        "Marked failed by an administrator.",
    )


def test_mark_failed_leaves_a_finished_job_alone(admin_client, alice):
    job = make_job(alice, status=Status.SUCCEEDED)
    act(admin_client, "mark_failed", job)
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED


def test_cancel_stops_tracking_an_active_job(admin_client, alice):
    job = make_job(alice, status=Status.QUEUED)
    act(admin_client, "cancel", job)
    job.refresh_from_db()
    assert job.status == Status.CANCELLED


def test_deleting_in_the_admin_removes_the_files_too(admin_client, alice, media):
    job = make_job(alice, status=Status.SUCCEEDED)
    job.video.save("v.mp4", ContentFile(tiny_mp4()))
    path = media / job.video.name
    admin_client.post(reverse("admin:jobs_videojob_delete", args=[job.pk]), {"post": "yes"})
    assert not VideoJob.objects.exists()
    assert not path.exists()


def test_a_job_in_progress_cannot_be_deleted_in_the_admin(admin_client, alice):
    job = make_job(alice, status=Status.PROCESSING)
    response = admin_client.post(reverse("admin:jobs_videojob_delete", args=[job.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert VideoJob.objects.exists()


def test_bulk_delete_removes_finished_jobs_and_their_files(admin_client, alice, media):
    jobs = [make_job(alice, status=Status.FAILED), make_job(alice, status=Status.SUCCEEDED)]
    jobs[1].video.save("v.mp4", ContentFile(tiny_mp4()))
    path = media / jobs[1].video.name
    selected = [job.pk for job in jobs]
    admin_client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": selected, "post": "yes"})
    assert not VideoJob.objects.exists()
    assert not path.exists()


def test_bulk_delete_is_refused_when_a_job_is_in_progress(admin_client, alice):
    jobs = [make_job(alice, status=Status.FAILED), make_job(alice, status=Status.QUEUED)]
    selected = [job.pk for job in jobs]
    response = admin_client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": selected, "post": "yes"}
    )
    assert response.status_code == 403
    assert VideoJob.objects.count() == 2


def test_the_admin_never_shows_the_api_key(admin_client, alice, settings):
    settings.SORA_API_KEY = "sk-secret-test"
    job = make_job(alice, status=Status.FAILED, error="The video service refused the API key (HTTP 401).")
    for url in [CHANGELIST, reverse("admin:jobs_videojob_change", args=[job.pk])]:
        assert "sk-secret-test" not in admin_client.get(url).content.decode()


def test_a_teammate_without_staff_rights_cannot_open_the_admin(client, bob):
    client.force_login(bob)
    assert client.get(CHANGELIST).status_code == 302
