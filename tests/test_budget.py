"""The team's monthly budget: counted from known costs and jobs in progress, enforced with
the per-person limits in one transaction, a banner at 80%, and a refusal that says whom to ask."""

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from jobs import submission
from jobs.models import Usage, VideoJob
from spend import budget, summaries
from tests.factories import make_job
from tests.helpers import race

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]
Status = VideoJob.Status
FORM = {
    "prompt": "a kite over the dunes",
    "model": "openAiSora2Plus",
    "aspect_ratio": "16:9",
    "duration": "4",
}


@pytest.fixture(autouse=True)
def only_the_budget(settings):
    """No per-person limit in the way, a budget of 10, and a banner computed afresh for each test."""
    settings.SORAWEB_LIMIT_ACTIVE_JOBS = settings.SORAWEB_LIMIT_JOBS_PER_DAY = 0
    settings.SORAWEB_LIMIT_MONTHLY_SPEND = Decimal(0)
    settings.SORAWEB_TEAM_MONTHLY_BUDGET = Decimal(10)
    settings.SORAWEB_BUDGET_CONTACT = ""
    cache.clear()
    yield
    cache.clear()


def paid(owner, cost, status=Status.SUCCEEDED):
    """A job the studio submitted that finished with this cost."""
    job = submission.submit(owner, lambda: make_job(owner))
    VideoJob.objects.filter(pk=job.pk).update(status=status, cost=Decimal(cost), updated_at=timezone.now())
    job.refresh_from_db()
    return job


def submit(client):
    return client.post(reverse("jobs:create"), FORM)


def test_at_the_budget_submissions_stop_and_name_the_staff_to_ask(client, alice, bob, staff, submitted):
    paid(bob, "10.00")
    client.force_login(alice)

    response = submit(client)

    assert response.status_code == 429
    page = response.content.decode()
    assert "The team has used its budget for this month (10.00 of 10.00" in page
    assert "Ask staff to raise it" in page
    assert VideoJob.objects.filter(owner=alice).count() == 0


def test_the_contact_setting_says_whom_to_ask(alice, bob, settings, submitted):
    settings.SORAWEB_BUDGET_CONTACT = "Dana (finance, ext. 4410)"
    paid(bob, "12.00")

    with pytest.raises(submission.LimitReached, match=r"Ask Dana \(finance, ext. 4410\) to raise it"):
        submission.submit(alice, lambda: make_job(alice))


def test_below_the_budget_anyone_submits(client, alice, bob, submitted):
    paid(bob, "8.00")
    client.force_login(alice)

    assert submit(client).status_code == 302


def test_no_budget_means_no_refusal(alice, bob, settings, submitted):
    settings.SORAWEB_TEAM_MONTHLY_BUDGET = Decimal(0)
    paid(bob, "1000.00")

    submission.submit(alice, lambda: make_job(alice))


def test_jobs_in_progress_count_at_the_months_average_cost(alice, bob, submitted):
    for _ in range(4):
        paid(bob, "2.00")  # 8.00 known, 2.00 a job
    submission.submit(alice, lambda: make_job(alice))  # in progress: 10.00 committed

    with pytest.raises(submission.LimitReached, match="10.00 of 10.00, counting videos still in progress"):
        submission.submit(bob, lambda: make_job(bob))


def test_deleting_videos_gives_back_no_budget(alice, bob, submitted):
    paid(bob, "6.00").delete()
    paid(bob, "4.00", status=Status.FAILED).delete()

    assert not VideoJob.objects.exists() and Usage.objects.count() == 2
    with pytest.raises(submission.LimitReached):
        submission.submit(alice, lambda: make_job(alice))


def test_the_form_says_up_front_that_the_budget_is_used(client, alice, bob, submitted):
    paid(bob, "10.00")
    client.force_login(alice)

    assert "The team has used its budget" in client.get(reverse("jobs:create")).content.decode()


def test_an_admin_sets_the_budget_and_it_replaces_the_default(client, staff, alice, bob, submitted):
    paid(bob, "10.00")
    client.force_login(staff)
    url = reverse("admin:spend_teambudget_change", args=[1])
    assert client.get(reverse("admin:spend_teambudget_changelist")).url == url

    response = client.post(url, {"amount": "50.00"})

    assert response.status_code == 302
    assert budget.amount() == Decimal("50.00")
    submission.submit(alice, lambda: make_job(alice))
    event = AuditEvent.objects.get(action="budget_changed")
    assert (event.actor_name, event.details) == ("staff", {"before": "server default", "after": "50.00"})


# --- The banner -----------------------------------------------------------------------------


def test_at_80_percent_every_page_warns_everyone(client, alice, bob, submitted):
    paid(bob, "8.00")
    client.force_login(alice)

    for url in (reverse("jobs:gallery"), reverse("jobs:create"), reverse("spend:page")):
        page = client.get(url).content.decode()
        assert "The team has used 80% of this month's budget." in page, url


def test_below_80_percent_no_banner(client, alice, bob, submitted):
    paid(bob, "7.90")
    client.force_login(alice)

    assert "of this month's budget" not in client.get(reverse("jobs:gallery")).content.decode()


def test_at_100_percent_the_banner_says_new_videos_are_refused(client, alice, bob, submitted):
    paid(bob, "10.00")
    client.force_login(alice)

    page = client.get(reverse("jobs:gallery")).content.decode()

    assert "new videos are refused until staff raise it" in page


def test_the_banner_is_computed_once_then_read_from_the_cache(client, alice, bob, submitted):
    paid(bob, "9.00")
    client.force_login(alice)
    client.get(reverse("jobs:gallery"))  # Computes the banner.

    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse("jobs:gallery")).content.decode()

    assert "The team has used 90% of this month's budget." in page
    assert not [query for query in queries if "spend_" in query["sql"] or "usage" in query["sql"]]


def test_signed_out_pages_compute_no_banner(client, bob, submitted):
    paid(bob, "9.00")
    cache.clear()

    with CaptureQueriesContext(connection) as queries:
        assert "budget" not in client.get(reverse("login")).content.decode()

    assert not [query for query in queries if "usage" in query["sql"] or "teambudget" in query["sql"]]
    assert cache.get(budget.BANNER_CACHE_KEY) is None


# --- Racing for the last of the budget ---------------------------------------------------------


@pytest.fixture
def slow_counting(monkeypatch):
    """Widen the window between counting the month and inserting, as a busy server would.

    Also no margin for the summaries: a submission then rewrites no summary row of the
    other's, whose row lock would serialise the two on PostgreSQL without the budget's own.
    """
    monkeypatch.setattr(summaries, "MARGIN", timedelta(0))
    counted = budget.this_month

    def slowly(*args, **kwargs):
        month = counted(*args, **kwargs)
        time.sleep(0.5)
        return month

    monkeypatch.setattr(budget, "this_month", slowly)


def the_last_of_the_budget(owner):
    """9.00 of 10.00 known, at 1.00 a job: room for exactly one more job."""
    for _ in range(9):
        paid(owner, "1.00")
    budget.this_month()  # Summarised: the racers find nothing of the setup's left to rebuild.


@pytest.mark.django_db(transaction=True)
def test_two_people_racing_for_the_last_of_the_budget_make_exactly_one_job(
    alice, bob, staff, submitted, slow_counting
):
    the_last_of_the_budget(staff)

    def through_the_form(person):
        def post():
            client = Client()
            client.force_login(person)
            return submit(client).status_code

        return post

    statuses = race([through_the_form(alice), through_the_form(bob)])

    assert sorted(statuses) == [302, 429], statuses
    assert VideoJob.objects.filter(owner__in=[alice, bob]).count() == 1
    assert submitted.call_count == 10


@pytest.mark.django_db(transaction=True)
def test_the_budget_race_is_real_without_the_transaction(alice, bob, staff, submitted, slow_counting):
    """The control: checking the budget, then inserting separately, lets both through."""
    the_last_of_the_budget(staff)

    def check_then_insert(person):
        def run():
            if budget.refusal():
                return "refused"
            with transaction.atomic():
                Usage.objects.create(user=person, job=make_job(person))
            return "made"

        return run

    assert race([check_then_insert(alice), check_then_insert(bob)]) == ["made", "made"]
    assert connection.vendor in ("sqlite", "postgresql")
