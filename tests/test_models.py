"""VideoJob's state machine: every transition is a conditional UPDATE."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import VideoJob
from jobs.upstream import CreateResult, TaskResult, Transient
from tests.factories import make_job

pytestmark = pytest.mark.django_db
S = VideoJob.Status


def in_state(status, **fields):
    job = make_job(**fields)
    VideoJob.objects.filter(pk=job.pk).update(status=status)
    job.refresh_from_db()
    return job


def test_a_new_job_is_pending_with_a_deadline_and_a_first_check(settings):
    job = make_job()

    assert job.status == S.PENDING
    assert job.deadline_at - job.created_at == pytest.approx(
        timedelta(seconds=settings.SORA_JOB_DEADLINE), abs=timedelta(seconds=1)
    )
    assert job.next_check_at > timezone.now()


def test_only_one_claim_for_submit_wins():
    job = make_job()
    twin = VideoJob.objects.get(pk=job.pk)

    assert job.claim_for_submit() is True
    assert twin.claim_for_submit() is False
    assert VideoJob.objects.get(pk=job.pk).submit_attempts == 1


@pytest.mark.parametrize("status", [s for s in S.values if s != S.PENDING])
def test_a_claim_is_refused_unless_pending(status):
    assert in_state(status).claim_for_submit() is False


def test_submitted_moves_to_queued_with_the_upstream_id():
    job = in_state(S.SUBMITTING)

    assert job.mark_submitted(CreateResult(id="sora-2:t1", status="queued", raw_status="queued"))

    job.refresh_from_db()
    assert (job.status, job.upstream_id, job.upstream_status) == (S.QUEUED, "sora-2:t1", "queued")
    assert job.submitted_at and job.next_check_at > timezone.now()


def test_submitted_is_refused_unless_submitting():
    job = in_state(S.CANCELLED)

    assert job.mark_submitted(CreateResult(id="t1", status="queued", raw_status="queued")) is False
    assert VideoJob.objects.get(pk=job.pk).upstream_id is None


def test_a_submit_that_never_reached_the_gateway_waits_and_goes_back_to_pending():
    job = make_job()
    job.claim_for_submit()

    job.retry_submit_later(Transient("busy", retry_after=20))

    job.refresh_from_db()
    assert job.status == S.PENDING
    assert job.next_check_at - timezone.now() == pytest.approx(
        timedelta(seconds=20), abs=timedelta(seconds=2)
    )


def test_submit_retries_are_bounded(settings):
    settings.SORA_MAX_SUBMIT_ATTEMPTS = 2
    job = make_job()
    for _ in range(2):
        VideoJob.objects.filter(pk=job.pk).update(status=S.PENDING)
        job.refresh_from_db()
        job.claim_for_submit()
        job.retry_submit_later(Transient("unreachable"))

    assert (job.status, job.failure_kind) == (S.FAILED, "provider")
    assert "after 2 tries" in job.error


def test_unknown_says_the_provider_may_have_billed_it():
    job = in_state(S.SUBMITTING)

    assert job.mark_unknown("The video service took too long to answer.")
    assert job.status == S.UNKNOWN
    assert "may have accepted" in job.error


@pytest.mark.parametrize("status", [S.PENDING, S.QUEUED, S.SUCCEEDED])
def test_unknown_is_only_reached_from_submitting(status):
    assert in_state(status).mark_unknown("x") is False


def test_a_poll_answer_moves_queued_to_processing():
    job = in_state(S.QUEUED)

    job.apply_result(TaskResult(id="t", status="processing", raw_status="in_progress"))

    job.refresh_from_db()
    assert (job.status, job.upstream_status, job.poll_count) == (S.PROCESSING, "in_progress", 1)


def test_an_unknown_status_is_treated_as_still_running():
    job = in_state(S.PROCESSING)

    job.apply_result(TaskResult(id="t", status="unknown", raw_status="mystery_state"))

    assert VideoJob.objects.get(pk=job.pk).status == S.PROCESSING


def test_completed_moves_to_downloading_leased_with_the_link_and_its_expiry():
    job = in_state(S.PROCESSING)

    job.apply_result(
        TaskResult(id="t", status="completed", raw_status="completed", video_url="https://v/1.mp4")
    )

    job.refresh_from_db()
    assert job.status == S.DOWNLOADING
    assert job.result_url == "https://v/1.mp4"
    assert job.result_expires_at - timezone.now() == pytest.approx(
        timedelta(hours=24), abs=timedelta(seconds=5)
    )
    assert job.lease_token


def test_completed_without_a_link_counts_as_a_bad_answer():
    job = in_state(S.PROCESSING)

    job.apply_result(TaskResult(id="t", status="completed", raw_status="completed"))

    job.refresh_from_db()
    assert (job.status, job.error_count) == (S.PROCESSING, 1)


@pytest.mark.parametrize(
    ("error", "kind"),
    [("Rejected by the safety system: content policy violation", "moderation"), ("GPU on fire", "provider")],
)
def test_a_failed_answer_fails_the_job_with_a_kind(error, kind):
    job = in_state(S.PROCESSING)

    job.apply_result(TaskResult(id="t", status="failed", raw_status="failed", error=error))

    assert (job.status, job.failure_kind, job.error) == (S.FAILED, kind, error)


def test_bad_answers_back_off_then_fail_the_job(settings):
    settings.SORA_MAX_POLL_ERRORS = 3
    settings.SORA_POLL_INTERVAL = 10
    job = in_state(S.PROCESSING)

    job.record_poll_error(Transient("HTTP 500"))
    first_wait = job.next_check_at - timezone.now()
    job.record_poll_error(Transient("HTTP 500"))
    second_wait = job.next_check_at - timezone.now()
    job.record_poll_error(Transient("HTTP 500"))

    assert first_wait >= timedelta(seconds=19) and second_wait >= timedelta(seconds=39)
    assert (job.status, job.failure_kind) == (S.FAILED, "provider")
    assert "3 bad answers in a row" in job.error


def test_retry_after_sets_the_next_poll():
    job = in_state(S.QUEUED)

    job.record_poll_error(Transient("busy", retry_after=120))

    assert job.next_check_at - timezone.now() >= timedelta(seconds=119)


def test_a_dead_download_fails_at_once_and_a_flaky_one_is_retried(settings):
    flaky = in_state(S.DOWNLOADING)
    flaky.record_download_error("broke off")
    dead = in_state(S.DOWNLOADING)
    dead.record_download_error("HTTP 404", permanent=True)

    assert (flaky.status, flaky.download_attempts) == (S.DOWNLOADING, 1)
    assert (dead.status, dead.failure_kind) == (S.FAILED, "download")


def test_an_expired_link_is_not_retried():
    job = in_state(S.DOWNLOADING, result_expires_at=timezone.now() - timedelta(minutes=1))

    job.record_download_error("broke off")

    assert job.status == S.FAILED


@pytest.mark.parametrize("status", VideoJob.ACTIVE)
def test_any_active_job_can_be_cancelled(status):
    job = in_state(status)

    assert job.cancel()
    assert VideoJob.objects.get(pk=job.pk).status == S.CANCELLED


@pytest.mark.parametrize("status", VideoJob.FINAL)
def test_a_final_job_cannot_be_cancelled_or_failed(status):
    job = in_state(status)

    assert job.cancel() is False
    assert job.mark_failed("provider", "x") is False
    assert VideoJob.objects.get(pk=job.pk).status == status


def test_succeeded_is_only_reached_from_downloading():
    assert in_state(S.PROCESSING).mark_succeeded("v.mp4", "p.jpg") is False
    job = in_state(S.DOWNLOADING)
    assert job.mark_succeeded("v.mp4", "p.jpg", 8.0)
    assert (job.video.name, job.actual_duration) == ("v.mp4", 8.0)


def test_a_lease_is_taken_once():
    job = in_state(S.QUEUED, next_check_at=timezone.now() - timedelta(seconds=1))
    [(pk, status, token)] = VideoJob.lease_due()

    assert (pk, status) == (job.pk, S.QUEUED)
    assert job.take_lease(token) is True
    assert job.take_lease(token) is False
    assert job.take_lease("") is False


def test_the_sweep_leases_only_due_rows_and_not_twice():
    due = in_state(S.PROCESSING, next_check_at=timezone.now() - timedelta(seconds=1))
    in_state(S.PROCESSING, next_check_at=timezone.now() + timedelta(minutes=1))
    in_state(S.SUCCEEDED, next_check_at=timezone.now() - timedelta(seconds=1))

    assert [pk for pk, _, _ in VideoJob.lease_due()] == [due.pk]
    assert VideoJob.lease_due() == []


def test_overdue_jobs_fail_as_timed_out():
    late = in_state(S.PROCESSING, deadline_at=timezone.now() - timedelta(seconds=1))
    on_time = in_state(S.PROCESSING)

    assert VideoJob.fail_overdue() == 1
    late.refresh_from_db()
    assert (late.status, late.failure_kind) == (S.FAILED, "timed_out")
    assert VideoJob.objects.get(pk=on_time.pk).status == S.PROCESSING
