"""Per-person limits: jobs in progress, jobs per day, spend per month; set in admin,
defaulting to settings; holding when submissions race."""

import time
from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobs import submission
from jobs.models import Usage, UserLimits, VideoJob
from tests.factories import make_job
from tests.helpers import race, user_limits_post

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]
Status = VideoJob.Status
FORM = {
    "prompt": "a kite over the dunes",
    "model": "openAiSora2Plus",
    "aspect_ratio": "16:9",
    "duration": "4",
}


@pytest.fixture
def submitted():
    """The submit doorbell, caught instead of sent to the broker: "no call" is this never ringing."""
    with mock.patch("jobs.tasks.submit_job.delay") as delay:
        yield delay


@pytest.fixture
def defaults(settings):
    settings.SORAWEB_LIMIT_ACTIVE_JOBS = 2
    settings.SORAWEB_LIMIT_JOBS_PER_DAY = 4
    settings.SORAWEB_LIMIT_MONTHLY_SPEND = Decimal("10")
    return settings


def submit(client, **overrides):
    return client.post(reverse("jobs:create"), FORM | overrides)


def submitted_job(owner, **fields):
    """A job made the way the studio makes one, so it counts."""
    return submission.submit(owner, lambda: make_job(owner, **fields))


# --- Which limits apply -----------------------------------------------------------------


def test_everyone_starts_with_the_server_defaults(alice, defaults):
    assert submission.limits_for(alice) == submission.Limits(2, 4, Decimal("10"))


def test_an_admins_setting_replaces_the_default_and_empty_keeps_it(alice, defaults):
    UserLimits.objects.create(user=alice, active_jobs=7, monthly_spend=Decimal("0"))
    assert submission.limits_for(alice) == submission.Limits(7, 4, Decimal("0"))


def test_zero_means_no_limit(client, alice, defaults, submitted):
    UserLimits.objects.create(user=alice, active_jobs=0, jobs_per_day=0)
    client.force_login(alice)
    for _ in range(6):
        assert submit(client).status_code == 302
    assert VideoJob.objects.count() == 6


@pytest.mark.parametrize(
    "value, expected",
    [(None, 5), ("", 0), ("0", 0), ("12", 12)],
)
def test_the_settings_read_a_limit_unset_empty_zero_or_a_number(monkeypatch, value, expected):
    from soraweb.settings import env_limit

    monkeypatch.delenv("SORAWEB_LIMIT_ACTIVE_JOBS", raising=False)
    if value is not None:
        monkeypatch.setenv("SORAWEB_LIMIT_ACTIVE_JOBS", value)
    assert env_limit("SORAWEB_LIMIT_ACTIVE_JOBS", 5) == expected


@pytest.mark.parametrize("value", ["-1", "lots", "NaN"])
def test_the_settings_refuse_a_nonsense_limit(monkeypatch, value):
    from decimal import Decimal as D

    from django.core.exceptions import ImproperlyConfigured

    from soraweb.settings import env_limit

    monkeypatch.setenv("SORAWEB_LIMIT_MONTHLY_SPEND", value)
    with pytest.raises(ImproperlyConfigured, match="SORAWEB_LIMIT_MONTHLY_SPEND"):
        env_limit("SORAWEB_LIMIT_MONTHLY_SPEND", D(100), kind=D)


# --- Each limit refuses, says which and when, and makes nothing -----------------------


def test_the_active_jobs_limit_refuses_the_next_and_says_so(
    client, alice, defaults, submitted, django_capture_on_commit_callbacks
):
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=True):
        assert submit(client).status_code == 302
        assert submit(client).status_code == 302
        response = submit(client, prompt="the third, one too many")
    assert response.status_code == 429
    page = response.content.decode()
    assert "You have 2 videos in progress and your limit is 2 at once" in page
    assert "as soon as one of them finishes" in page
    assert "the third, one too many</textarea>" in page  # The prompt is kept.
    assert VideoJob.objects.count() == 2
    assert submitted.call_count == 2


def test_a_finished_job_frees_a_place(client, alice, defaults, submitted):
    client.force_login(alice)
    submit(client)
    submit(client)
    VideoJob.objects.filter(pk=VideoJob.objects.first().pk).update(status=Status.SUCCEEDED)
    assert submit(client).status_code == 302


def test_the_daily_limit_refuses_and_says_it_resets_at_midnight(client, alice, defaults, submitted):
    defaults.SORAWEB_LIMIT_ACTIVE_JOBS = 0
    client.force_login(alice)
    for _ in range(4):
        submit(client)
    response = submit(client)
    page = response.content.decode()
    assert response.status_code == 429
    assert "You have submitted 4 videos today, your daily limit. It resets at midnight (00:00 on" in page
    assert VideoJob.objects.count() == 4


def test_yesterdays_jobs_do_not_count_today(client, alice, defaults, submitted):
    defaults.SORAWEB_LIMIT_ACTIVE_JOBS = 0
    for _ in range(4):
        job = submitted_job(alice, status=Status.SUCCEEDED)
        Usage.objects.filter(job=job).update(created_at=timezone.now() - timedelta(days=1, hours=1))
    client.force_login(alice)
    assert submit(client).status_code == 302


def test_deleting_jobs_does_not_give_back_the_days_quota(client, alice, defaults, submitted):
    defaults.SORAWEB_LIMIT_ACTIVE_JOBS = 0
    client.force_login(alice)
    for _ in range(4):
        submit(client)
    for job in VideoJob.objects.all():
        job.cancel()
        assert client.post(reverse("jobs:delete", args=[job.pk])).status_code == 302
    assert not VideoJob.objects.exists()
    assert submit(client).status_code == 429


def test_the_monthly_spend_limit_refuses_and_says_when_it_resets(client, alice, defaults, submitted):
    for cost in ["6.50", "3.50"]:
        submitted_job(alice, status=Status.SUCCEEDED, cost=Decimal(cost))
    client.force_login(alice)
    response = submit(client)
    page = response.content.decode()
    assert response.status_code == 429
    assert "You have spent 10.00 this month and your monthly limit is 10.00" in page
    assert "It resets on the 1st (00:00 on 1 " in page
    assert VideoJob.objects.count() == 2


def test_a_deleted_jobs_cost_still_counts_this_month(client, alice, defaults, submitted):
    job = submitted_job(alice, status=Status.SUCCEEDED, cost=Decimal("12"))
    client.force_login(alice)
    client.post(reverse("jobs:delete", args=[job.pk]))
    assert not VideoJob.objects.exists()
    assert submit(client).status_code == 429


def test_last_months_spend_does_not_count(client, alice, defaults, submitted):
    job = submitted_job(alice, status=Status.SUCCEEDED, cost=Decimal("50"))
    Usage.objects.filter(job=job).update(created_at=timezone.now() - timedelta(days=40))
    client.force_login(alice)
    assert submit(client).status_code == 302


def test_limits_are_per_person(client, alice, bob, defaults, submitted):
    submitted_job(alice)
    submitted_job(alice)
    client.force_login(bob)
    assert submit(client).status_code == 302


def test_the_form_says_up_front_when_a_limit_is_reached(client, alice, defaults):
    submitted_job(alice)
    submitted_job(alice)
    client.force_login(alice)
    page = client.get(reverse("jobs:create")).content.decode()
    assert "You have 2 videos in progress and your limit is 2 at once" in page


def test_retry_is_refused_by_a_limit_with_the_reason(client, alice, defaults, submitted):
    done = submitted_job(alice, status=Status.FAILED)
    submitted_job(alice)
    submitted_job(alice)
    client.force_login(alice)
    response = client.post(reverse("jobs:retry", args=[done.pk]), follow=True)
    assert "Not retried: You have 2 videos in progress" in response.content.decode()
    assert VideoJob.objects.count() == 3
    submitted.assert_not_called()


def test_a_teammates_retry_counts_against_the_teammate(client, alice, bob, defaults, submitted):
    done = submitted_job(alice, status=Status.FAILED)
    submitted_job(alice)
    client.force_login(bob)
    assert client.post(reverse("jobs:retry", args=[done.pk])).url == reverse("jobs:gallery")
    assert VideoJob.objects.filter(owner=bob).count() == 1
    assert Usage.objects.filter(user=bob).count() == 1


def test_the_admins_retry_as_new_stops_at_the_admins_limit(client, alice, staff, defaults, submitted):
    failed = [submitted_job(alice, status=Status.FAILED) for _ in range(3)]
    client.force_login(staff)
    response = client.post(
        reverse("admin:jobs_videojob_changelist"),
        {"action": "retry_as_new", "_selected_action": [job.pk for job in failed]},
        follow=True,
    )
    page = response.content.decode()
    assert "2 new job(s) submitted" in page
    assert "Stopped before job" in page and "your limit is 2 at once" in page
    assert VideoJob.objects.filter(owner=staff).count() == 2


def test_an_admin_sets_a_persons_limits_on_their_user_page(client, alice, staff, defaults, submitted):
    client.force_login(staff)
    url = reverse("admin:auth_user_change", args=[alice.pk])
    page = client.get(url).content.decode()
    assert "Empty: the server default (SORAWEB_LIMIT_ACTIVE_JOBS). 0: no limit." in page
    assert "0 in progress of 2; 0 today of 4; 0.00 spent this month of 10" in page
    data = user_limits_post(client, url, alice, active_jobs="9", jobs_per_day="", monthly_spend="25.50")
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert submission.limits_for(alice) == submission.Limits(9, 4, Decimal("25.50"))


# --- Racing submissions ----------------------------------------------------------------------


@pytest.fixture
def slow_counting(monkeypatch):
    """Widen the window between counting and inserting, as a busy server would."""
    counted = submission.used_by

    def slowly(user, now):
        used = counted(user, now)
        time.sleep(0.5)
        return used

    monkeypatch.setattr(submission, "used_by", slowly)


@pytest.mark.django_db(transaction=True)
def test_two_submissions_at_the_same_moment_make_exactly_one_job_at_a_limit_of_one(
    alice, settings, submitted, slow_counting
):
    settings.SORAWEB_LIMIT_ACTIVE_JOBS = 1

    def through_the_form():
        client = Client()
        client.force_login(alice)
        return submit(client).status_code

    statuses = race([through_the_form, through_the_form])

    assert sorted(statuses) == [302, 429], statuses
    assert VideoJob.objects.count() == 1
    assert Usage.objects.count() == 1
    assert submitted.call_count == 1


@pytest.mark.django_db(transaction=True)
def test_a_retry_and_a_new_job_racing_also_make_exactly_one(alice, settings, submitted, slow_counting):
    done = make_job(alice, status=Status.FAILED)
    settings.SORAWEB_LIMIT_ACTIVE_JOBS = 1

    def retry():
        client = Client()
        client.force_login(alice)
        client.post(reverse("jobs:retry", args=[done.pk]))

    def new():
        client = Client()
        client.force_login(alice)
        submit(client)

    race([retry, new])

    assert VideoJob.objects.filter(status=Status.PENDING).count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_race_is_real_without_the_transaction(alice, settings, submitted, slow_counting):
    """The control: checking, then inserting separately, lets both through; submit() is what stops it."""
    settings.SORAWEB_LIMIT_ACTIVE_JOBS = 1

    def check_then_insert():
        try:
            submission.check(alice)
        except submission.LimitReached:
            return "refused"
        with transaction.atomic():
            make_job(alice)
        return "made"

    assert race([check_then_insert, check_then_insert]) == ["made", "made"]
    assert VideoJob.objects.count() == 2
    assert connection.vendor in ("sqlite", "postgresql")


@pytest.mark.django_db(transaction=True)
def test_the_migration_counts_jobs_made_before_limits_existed(alice):
    from django.db.migrations.executor import MigrationExecutor

    before = [("jobs", "0002_heartbeat")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    OldJob = executor.loader.project_state(before).apps.get_model("jobs", "VideoJob")
    old = OldJob.objects.create(owner_id=alice.pk, prompt="made last week", cost=Decimal("3"))

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    usage = Usage.objects.get()
    assert (usage.user, usage.job_id, usage.created_at) == (alice, old.pk, old.created_at)
    assert submission.used_by(alice, timezone.now()).this_month == Decimal("3")


def test_a_group_that_would_cross_a_limit_creates_none_and_says_by_how_much(
    alice, defaults, submitted, django_capture_on_commit_callbacks
):
    submitted_job(alice)

    with django_capture_on_commit_callbacks() as doorbells, pytest.raises(submission.LimitReached) as refusal:
        submission.submit_many(alice, [lambda: make_job(alice)] * 2)

    message = str(refusal.value)
    assert "You have 1 video in progress and your limit is 2 at once: 2 more would be 1 over" in message
    assert VideoJob.objects.count() == 1
    assert doorbells == []


def test_a_group_that_fits_is_made_whole(alice, defaults, submitted, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        jobs = submission.submit_many(alice, [lambda: make_job(alice)] * 2)

    assert VideoJob.objects.filter(owner=alice).count() == 2
    assert sorted(call.args[0] for call in submitted.call_args_list) == sorted(job.pk for job in jobs)
