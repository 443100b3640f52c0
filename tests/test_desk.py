"""The desk: late create answers kept, gateway ids attached by staff, and the staff page."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from jobs import tasks
from jobs.models import AttachRefused, VideoJob
from jobs.upstream import CreateResult
from tests.factories import make_job
from tests.fakes import FakeGateway, answer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]
S, Kind = VideoJob.Status, VideoJob.FailureKind
CHANGELIST = reverse("admin:jobs_videojob_changelist")


def created(upstream_id="sora-2:task_late"):
    return CreateResult(id=upstream_id, status="queued", raw_status="queued")


def unknown_job(owner=None, **fields):
    """A job whose create call outlived its lease: the sweep moved it to UNKNOWN."""
    job = make_job(owner, status=S.SUBMITTING, **fields)
    job.mark_unknown("The worker stopped while submitting this job.")
    return job


@pytest.fixture
def gateway(monkeypatch, settings):
    settings.SORA_API_BASE_URL = "https://gateway.test"
    return FakeGateway(monkeypatch)


# --- A create answer that arrives after the lease ran out ---------------------------


def test_a_late_create_answer_resumes_the_job_with_its_id():
    job = unknown_job()

    assert job.mark_submitted(created()) is True

    job.refresh_from_db()
    assert (job.status, job.upstream_id, job.completed_at, job.error) == (
        S.QUEUED,
        "sora-2:task_late",
        None,
        "",
    )
    assert job.next_check_at > timezone.now()
    assert "late answer" in job.history[-1]["what"]


@pytest.mark.parametrize("status", [S.FAILED, S.CANCELLED, S.SUCCEEDED, S.PENDING])
def test_a_late_answer_never_revives_a_job_in_another_state(status):
    job = make_job(status=status)

    assert job.mark_submitted(created()) is False
    job.refresh_from_db()
    assert (job.status, job.upstream_id) == (status, None)


def test_a_late_answer_does_not_replace_an_id_staff_attached(staff):
    job = unknown_job()
    job.attach_upstream_id("sora-2:task_attached", by=staff)
    VideoJob.objects.filter(pk=job.pk).update(status=S.UNKNOWN)  # Say its check sent it back.

    assert VideoJob.objects.get(pk=job.pk).mark_submitted(created()) is False
    assert VideoJob.objects.get(pk=job.pk).upstream_id == "sora-2:task_attached"


def test_a_late_answer_to_a_job_already_retried_resumes_it_beside_its_retry(alice):
    job = unknown_job(alice)
    retry = job.retry_as_new(alice)

    assert job.mark_submitted(created())

    job.refresh_from_db()
    assert job.status == S.QUEUED
    assert f"#{retry.pk}" in job.history[-1]["what"]
    assert VideoJob.objects.get(pk=retry.pk).status == S.PENDING


# --- Attaching the gateway's id ------------------------------------------------------


def test_attaching_an_id_queues_the_job_for_a_check_at_once_and_records_who(staff):
    job = unknown_job()
    VideoJob.objects.filter(pk=job.pk).update(deadline_at=timezone.now() - timedelta(hours=1))
    job.refresh_from_db()

    job.attach_upstream_id("  sora-2:task_abc  ", by=staff)

    job.refresh_from_db()
    assert (job.status, job.upstream_id, job.completed_at) == (S.QUEUED, "sora-2:task_abc", None)
    assert job.next_check_at <= timezone.now() < job.deadline_at
    assert job.history[-1]["who"] == "staff"
    assert job.history[-1]["what"] == "Attached the gateway's id sora-2:task_abc."
    assert job in VideoJob.objects.filter(status__in=VideoJob.ACTIVE, next_check_at__lte=timezone.now())


@pytest.mark.parametrize("status", [S.QUEUED, S.FAILED, S.SUCCEEDED, S.CANCELLED])
def test_attaching_is_refused_unless_the_job_needs_attention(staff, status):
    job = make_job(status=status)

    with pytest.raises(AttachRefused, match="needs attention"):
        job.attach_upstream_id("sora-2:task_abc", by=staff)
    assert VideoJob.objects.get(pk=job.pk).upstream_id is None


@pytest.mark.parametrize("value", ["", "   ", "x" * 201, "two words", "tab\there", "ünïcode"])
def test_attaching_refuses_an_id_of_the_wrong_shape(staff, value):
    job = unknown_job()

    with pytest.raises(AttachRefused, match="1 to 200 characters"):
        job.attach_upstream_id(value, by=staff)


def test_attaching_an_id_another_job_has_is_refused(staff):
    other = make_job(status=S.SUCCEEDED, upstream_id="sora-2:task_taken")
    job = unknown_job()

    with pytest.raises(AttachRefused, match=f"#{other.pk} already has"):
        job.attach_upstream_id("sora-2:task_taken", by=staff)
    assert VideoJob.objects.get(pk=job.pk).status == S.UNKNOWN


def test_an_attached_id_the_gateway_does_not_know_sends_the_job_back_for_another(gateway, staff):
    gateway.reply(answer(404, json={"error": "task not found"}))
    job = unknown_job()
    job.attach_upstream_id("sora-2:typo", by=staff)
    VideoJob.objects.filter(pk=job.pk).update(lease_token="tok")

    tasks.poll_job(job.pk, "tok")

    job.refresh_from_db()
    assert (job.status, job.upstream_id) == (S.UNKNOWN, None)
    assert "sora-2:typo was not accepted" in job.error and "does not know this job" in job.error
    job.attach_upstream_id("sora-2:right", by=staff)  # Ready for another id.


def test_a_404_for_a_job_the_gateway_confirmed_before_still_fails_it(gateway):
    gateway.reply(answer(404, json={"error": "task not found"}))
    job = make_job(status=S.PROCESSING, upstream_id="t1", lease_token="tok", poll_count=3)

    tasks.poll_job(job.pk, "tok")

    job.refresh_from_db()
    assert (job.status, job.failure_kind) == (S.FAILED, Kind.PROVIDER)


# --- The desk page and its actions ---------------------------------------------------


def test_the_desk_lists_what_needs_a_decision_oldest_first_with_reasons(client, staff, settings):
    settings.SORAWEB_STUCK_AFTER_MINUTES = 30
    now = timezone.now()
    newer_unknown = unknown_job(prompt="the newer uncertain one", created_at=now - timedelta(minutes=5))
    older_unknown = unknown_job(prompt="the older uncertain one", created_at=now - timedelta(hours=2))
    make_job(prompt="a failed download", status=S.FAILED, failure_kind=Kind.DOWNLOAD, error="Broken link.")
    make_job(prompt="a slow one", status=S.PROCESSING, created_at=now - timedelta(minutes=45))
    make_job(prompt="a fresh one", status=S.PROCESSING)
    make_job(prompt="a moderated one", status=S.FAILED, failure_kind=Kind.MODERATION)
    client.force_login(staff)

    page = client.get(reverse("jobs:desk")).content.decode()

    assert "4 to decide" in page
    assert page.index(older_unknown.prompt) < page.index(newer_unknown.prompt)
    assert "a failed download" in page and "Broken link." in page
    assert "a slow one" in page and "expected within 30 min" in page
    assert "a fresh one" not in page and "a moderated one" not in page


def test_the_desk_and_its_actions_are_for_staff_only(client, alice):
    job = unknown_job(alice)
    client.force_login(alice)

    assert client.get(reverse("jobs:desk")).status_code == 403
    response = client.post(reverse("jobs:desk_attach", args=[job.pk]), {"upstream_id": "sora-2:x"})
    assert response.status_code == 403
    assert VideoJob.objects.get(pk=job.pk).status == S.UNKNOWN


def test_staff_attach_from_the_desk_and_see_it_on_the_job_page(client, staff):
    job = unknown_job()
    client.force_login(staff)

    response = client.post(
        reverse("jobs:desk_attach", args=[job.pk]), {"upstream_id": "sora-2:task_1"}, follow=True
    )

    assert response.redirect_chain[-1][0] == reverse("jobs:detail", args=[job.pk])
    page = response.content.decode()
    assert "Attached sora-2:task_1" in page
    assert "Attached the gateway&#x27;s id sora-2:task_1." in page and "by staff" in page


def test_a_refused_attach_says_why_and_changes_nothing(client, staff):
    make_job(status=S.SUCCEEDED, upstream_id="sora-2:task_1")
    job = unknown_job()
    client.force_login(staff)

    response = client.post(
        reverse("jobs:desk_attach", args=[job.pk]), {"upstream_id": "sora-2:task_1"}, follow=True
    )

    assert "Not attached: Job #" in response.content.decode()
    assert VideoJob.objects.get(pk=job.pk).status == S.UNKNOWN


def test_a_failed_download_with_a_live_link_can_be_tried_again_from_the_desk(client, staff):
    alive = make_job(
        status=S.FAILED, failure_kind=Kind.DOWNLOAD, result_url="https://cdn.test/v.mp4",
        result_expires_at=timezone.now() + timedelta(hours=3), download_attempts=5,
    )  # fmt: skip
    expired = make_job(
        status=S.FAILED, failure_kind=Kind.DOWNLOAD, result_url="https://cdn.test/w.mp4",
        result_expires_at=timezone.now() - timedelta(minutes=1),
    )  # fmt: skip
    client.force_login(staff)

    client.post(reverse("jobs:desk_redownload", args=[alive.pk]))
    client.post(reverse("jobs:desk_redownload", args=[expired.pk]))

    alive.refresh_from_db()
    assert (alive.status, alive.download_attempts, alive.failure_kind) == (S.DOWNLOADING, 0, "")
    assert VideoJob.objects.get(pk=expired.pk).status == S.FAILED


def test_a_dismissed_job_leaves_the_desk_but_keeps_its_state(client, staff):
    job = unknown_job(prompt="decided already")
    client.force_login(staff)

    client.post(reverse("jobs:desk_dismiss", args=[job.pk]))

    assert "decided already" not in client.get(reverse("jobs:desk")).content.decode()
    job.refresh_from_db()
    assert job.status == S.UNKNOWN and job.history[-1]["what"] == "Took it off the desk."


# --- The same in the admin ------------------------------------------------------------


def test_the_admin_action_asks_for_the_id_then_attaches_it(client, staff):
    job = unknown_job()
    client.force_login(staff)
    selection = {"action": "attach_upstream_id", "_selected_action": [job.pk]}

    form = client.post(CHANGELIST, selection)
    assert form.status_code == 200 and 'name="upstream_id"' in form.content.decode()

    client.post(CHANGELIST, {**selection, "apply": "1", "upstream_id": "sora-2:task_admin"})
    job.refresh_from_db()
    assert (job.status, job.upstream_id, job.history[-1]["who"]) == (S.QUEUED, "sora-2:task_admin", "staff")


def test_the_admin_action_refuses_a_job_that_does_not_need_attention(client, staff):
    job = make_job(status=S.QUEUED)
    client.force_login(staff)

    response = client.post(
        CHANGELIST, {"action": "attach_upstream_id", "_selected_action": [job.pk]}, follow=True
    )

    assert "Choose exactly one job that needs attention." in response.content.decode()
