"""The ETA, the price and the first poll learn from the team's own finished jobs."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.utils import timezone

from jobs import estimates
from jobs.models import VideoJob
from jobs.upstream import CreateResult, TaskResult
from tests.factories import make_job

pytestmark = pytest.mark.django_db
PLUS = VideoJob.Model.PLUS


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


def finished(minutes, ago_days=1, cost=None, **fields):
    """A succeeded job that took `minutes` to generate, finished `ago_days` ago."""
    generated = timezone.now() - timedelta(days=ago_days)
    job = make_job(duration=8, **fields)
    VideoJob.objects.filter(pk=job.pk).update(
        status=VideoJob.Status.SUCCEEDED,
        submitted_at=generated - timedelta(minutes=minutes),
        generated_at=generated,
        cost=cost,
    )
    return job


def test_with_no_history_it_falls_back_to_the_documented_default():
    guess = estimates.estimate(PLUS, 8, "16:9")

    assert guess.seconds == 60 * estimates.DEFAULT_MINUTES[(PLUS, 8)]
    assert not guess.learned


def test_with_too_little_history_it_still_uses_the_default():
    for _ in range(estimates.MIN_SAMPLES - 1):
        finished(2)

    assert estimates.estimate(PLUS, 8, "16:9").seconds == 60 * estimates.DEFAULT_MINUTES[(PLUS, 8)]


def test_with_enough_history_it_says_the_median():
    for minutes in (4, 5, 6, 7, 8):
        finished(minutes)

    guess = estimates.estimate(PLUS, 8, "16:9")
    assert guess.seconds == 6 * 60
    assert guess.fast_seconds == 4 * 60


def test_an_outlier_does_not_move_the_estimate_much():
    for minutes in (5, 6, 6, 6, 7, 7):
        finished(minutes)
    finished(120)

    assert estimates.estimate(PLUS, 8, "16:9").seconds == 6 * 60


def test_it_follows_a_change_of_speed():
    for _ in range(40):
        finished(10, ago_days=3)
    for _ in range(30):
        finished(3, ago_days=1)

    assert estimates.estimate(PLUS, 8, "16:9").seconds == 3 * 60


def test_jobs_older_than_the_window_are_forgotten():
    for _ in range(10):
        finished(10, ago_days=estimates.HISTORY_DAYS + 1)

    assert not estimates.estimate(PLUS, 8, "16:9").learned


def test_each_kind_learns_from_its_own_jobs_only():
    for _ in range(5):
        finished(2, aspect_ratio="9:16")

    assert not estimates.estimate(PLUS, 8, "16:9").learned
    assert estimates.estimate(PLUS, 8, "9:16").seconds == 120


def test_the_price_is_the_median_recorded_cost_or_unknown():
    assert estimates.typical_cost(PLUS, 8) is None
    for cost in ("0.80", "0.80", "9.00"):
        finished(5, cost=Decimal(cost))
    cache.clear()

    assert estimates.typical_cost(PLUS, 8) == Decimal("0.80")


def test_without_history_the_first_poll_comes_after_one_interval(settings):
    settings.SORA_POLL_INTERVAL = 30

    delay = estimates.first_poll_delay(PLUS, 8, "16:9").total_seconds()

    assert 30 <= delay <= 36


def test_with_history_the_first_poll_waits_until_an_interval_before_the_fast_end(settings):
    settings.SORA_POLL_INTERVAL = 30
    for minutes in (5, 6, 6, 7, 8):
        finished(minutes)

    delays = [estimates.first_poll_delay(PLUS, 8, "16:9").total_seconds() for _ in range(50)]

    assert min(delays) >= 5 * 60 - 60 + 30
    # Never later than the fast end itself, so a job that fast is seen within one interval.
    assert max(delays) <= 5 * 60 - 30 + 6


def test_a_fast_history_never_makes_the_first_poll_sooner_than_one_interval(settings):
    settings.SORA_POLL_INTERVAL = 30
    for _ in range(5):
        finished(0.2)

    assert estimates.first_poll_delay(PLUS, 8, "16:9").total_seconds() >= 30


def test_the_first_poll_is_never_after_the_deadline(settings):
    settings.SORA_POLL_INTERVAL = 30
    for _ in range(5):
        finished(60)
    job = make_job(duration=8, deadline_at=timezone.now() + timedelta(minutes=10))
    VideoJob.objects.filter(pk=job.pk).update(status=VideoJob.Status.SUBMITTING)
    job.refresh_from_db()

    job.mark_submitted(CreateResult(id="t-1", status="queued", raw_status="queued"))

    assert job.next_check_at <= job.deadline_at


def test_a_completed_poll_records_when_the_video_was_generated():
    job = make_job()
    VideoJob.objects.filter(pk=job.pk).update(status=VideoJob.Status.PROCESSING)
    job.refresh_from_db()

    job.apply_result(
        TaskResult(id="t", status="completed", raw_status="succeeded", video_url="https://x/v.mp4")
    )

    assert VideoJob.objects.get(pk=job.pk).generated_at is not None
