"""The spend page and its CSV: what the team spent in a month, who may see whose figures,
and that deleting videos never changes history."""

import csv
import io
from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from jobs import submission
from jobs.models import Usage, VideoJob
from spend import budget, figures, summaries
from tests.factories import make_job

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media", "submitted")]
Status = VideoJob.Status
PRO = VideoJob.Model.PRO


@pytest.fixture(autouse=True)
def no_limits(settings):
    settings.SORAWEB_LIMIT_ACTIVE_JOBS = settings.SORAWEB_LIMIT_JOBS_PER_DAY = 0
    settings.SORAWEB_LIMIT_MONTHLY_SPEND = Decimal(0)
    cache.clear()  # No figures cached by another test.


def job(owner, status=Status.SUCCEEDED, cost="0.40", seconds=None, **fields):
    """A job submitted through the studio's door, then moved to where the test needs it."""
    made = submission.submit(owner, lambda: make_job(owner, **fields))
    duration = made.duration if seconds is None else seconds
    VideoJob.objects.filter(pk=made.pk).update(
        status=status,
        cost=Decimal(cost) if cost is not None else None,
        actual_duration=duration if status == Status.SUCCEEDED else None,
    )
    made.refresh_from_db()
    return made


def this_month():
    return budget.month_of(timezone.now())[0]


def test_the_month_counts_seconds_jobs_known_and_unknown_cost_and_charged_failures(alice, bob):
    job(alice, duration=8, seconds=8.2)
    job(alice, model=PRO, duration=12, cost="1.50")
    job(bob, status=Status.FAILED, cost="0.40")
    job(bob, status=Status.CANCELLED, cost=None)
    job(bob, status=Status.PROCESSING, cost=None)

    team = figures.month(alice, this_month()).team

    assert team.jobs == 5
    assert team.seconds == pytest.approx(8.2 + 12)
    assert team.known_cost == Decimal("2.30")
    assert team.unknown_cost == 2
    assert (team.charged_failures, team.charged_failures_cost) == (1, Decimal("0.40"))


def test_per_model_and_length_and_per_person(alice, bob):
    job(alice, duration=4)
    job(alice, model=PRO, duration=12, cost="1.50")
    job(bob, model=PRO, duration=12, cost="1.50")

    month = figures.month(alice, this_month())

    assert [(label, seconds, f.jobs, f.known_cost) for label, seconds, f in month.models] == [
        ("Sora 2 Plus", 4, 1, Decimal("0.40")),
        ("Sora 2 Pro", 12, 2, Decimal("3.00")),
    ]
    assert [(name, f.known_cost) for name, f in month.people] == [
        ("alice", Decimal("1.90")),
        ("bob", Decimal("1.50")),
    ]


def test_deleting_videos_changes_no_figure(alice, bob):
    kept = job(alice, duration=8, seconds=8.0)
    paid_failure = job(bob, status=Status.FAILED, cost="0.40", model=PRO, duration=12)
    video = job(bob, model=PRO, duration=12, seconds=12.0, cost="1.50")
    before = figures.month(alice, this_month())

    paid_failure.delete()
    video.delete()

    after = figures.month(alice, this_month())
    assert after.team == before.team
    assert after.models == before.models
    assert after.people == before.people
    assert after.days == before.days
    assert VideoJob.objects.get() == kept


def test_last_month_is_its_own_page(client, alice):
    job(alice, cost="0.40")
    old = job(alice, cost="2.00")
    last_month = this_month() - timedelta(days=1)
    Usage.objects.filter(job=old).update(day=last_month)
    client.force_login(alice)

    page = client.get(reverse("spend:page"), {"month": f"{last_month:%Y-%m}"})

    assert page.context["month"].team.known_cost == Decimal("2.00")
    assert f"{last_month:%B %Y}" in page.content.decode()
    assert client.get(reverse("spend:page")).context["month"].team.known_cost == Decimal("0.40")


def test_a_month_that_is_not_one_is_not_found(client, alice):
    client.force_login(alice)
    assert client.get(reverse("spend:page"), {"month": "2026-13"}).status_code == 404
    assert client.get(reverse("spend:export"), {"month": "soon"}).status_code == 404


def test_the_page_needs_a_sign_in(client):
    response = client.get(reverse("spend:page"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- Who sees whose figures ------------------------------------------------------------


def test_with_scope_own_a_person_sees_their_line_and_the_team_totals_but_no_one_else(
    client, settings, alice, bob
):
    settings.SORAWEB_GALLERY_SCOPE = "own"
    job(alice, cost="0.40")
    job(bob, cost="7.00", prompt="bob's secret storyboard")
    client.force_login(alice)

    response = client.get(reverse("spend:page"))
    export = client.get(reverse("spend:export")).content.decode()

    page = response.content.decode()
    month = response.context["month"]
    assert month.team.known_cost == Decimal("7.40") and month.mine.known_cost == Decimal("0.40")
    assert [name for name, _ in month.people] == ["alice"]
    assert "bob" not in page and "bob" not in export
    assert "others (team)" in export and "7.0000" in export


def test_figures_cached_for_staff_are_not_shown_to_someone_who_may_see_less(
    client, settings, alice, bob, staff
):
    settings.SORAWEB_GALLERY_SCOPE = "own"
    job(bob, cost="7.00")
    client.force_login(staff)
    assert "bob" in client.get(reverse("spend:page")).content.decode()
    client.force_login(alice)

    assert "bob" not in client.get(reverse("spend:page")).content.decode()


def test_with_scope_team_everyone_sees_each_persons_line(client, settings, alice, bob):
    settings.SORAWEB_GALLERY_SCOPE = "team"
    job(alice)
    job(bob)
    client.force_login(alice)

    month = client.get(reverse("spend:page")).context["month"]

    assert [name for name, _ in month.people] == ["alice", "bob"]


def test_staff_see_everyone_whatever_the_scope(client, settings, alice, bob, staff):
    settings.SORAWEB_GALLERY_SCOPE = "own"
    job(alice)
    job(bob)
    client.force_login(staff)

    month = client.get(reverse("spend:page")).context["month"]
    export = client.get(reverse("spend:export")).content.decode()

    assert [name for name, _ in month.people] == ["alice", "bob"]
    assert "alice" in export and "bob" in export and "others (team)" not in export


def test_the_csv_has_a_line_per_day_person_model_and_length(client, alice, bob):
    job(alice, duration=4, cost="0.40")
    job(alice, duration=4, cost="0.40")
    job(bob, model=PRO, duration=12, status=Status.FAILED, cost="1.50")
    client.force_login(alice)

    response = client.get(reverse("spend:export"))

    assert response["Content-Disposition"] == f'attachment; filename="soraweb-spend-{this_month():%Y-%m}.csv"'
    lines = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(line["person"], line["model"], line["seconds"], line["jobs"]) for line in lines] == [
        ("alice", "Sora 2 Plus", "4", "2"),
        ("bob", "Sora 2 Pro", "12", "1"),
    ]
    assert lines[0]["known cost"] == "0.8000"
    assert (lines[1]["charged failures"], lines[1]["charged failures cost"]) == ("1", "1.5000")


def test_a_username_cannot_become_a_spreadsheet_formula(client, django_user_model, staff):
    mallory = django_user_model.objects.create_user("=cmd", password="x-password-1")
    job(mallory)
    client.force_login(staff)

    export = client.get(reverse("spend:export")).content.decode()

    assert "'=cmd" in export


def test_the_page_costs_the_same_queries_for_few_and_many_jobs(client, alice, bob, staff):
    client.force_login(staff)
    job(alice)

    def queries():
        client.get(reverse("spend:page"))  # Summaries exist: later views only check and rebuild.
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("spend:page")).status_code == 200
        return len(captured)

    few = queries()
    for n in range(12):
        job(bob if n % 2 else alice, model=PRO if n % 3 else VideoJob.Model.PLUS, duration=4 + 4 * (n % 3))

    assert queries() == few


def test_a_day_is_summarised_again_only_after_one_of_its_jobs_changes(alice):
    first = this_month()
    quiet, busy = first, first + timedelta(days=1)
    jobs = {day: job(alice) for day in (quiet, busy)}
    for day, made in jobs.items():
        moment = timezone.make_aware(datetime.combine(day, time(12)))
        VideoJob.objects.filter(pk=made.pk).update(created_at=moment, updated_at=moment)
        Usage.objects.filter(job=made).update(created_at=moment, day=day, changed_at=moment)
    later = timezone.now() + timedelta(days=40)
    summaries.refresh(first, now=later)

    assert summaries.refresh(first, now=later + timedelta(minutes=5)).days == set()
    changed = later + timedelta(minutes=6)
    VideoJob.objects.filter(pk=jobs[busy].pk).update(cost=Decimal("9"), updated_at=changed)
    assert summaries.refresh(first, now=later + timedelta(minutes=10)).days == {busy}
    assert figures.month(alice, first).team.known_cost == Decimal("9.40")


def test_a_change_that_moves_no_figure_keeps_the_months_version(alice):
    made = job(alice, status=Status.PROCESSING, cost=None)
    first = this_month()
    later = timezone.now() + timedelta(minutes=5)
    before = summaries.refresh(first, now=later).version

    VideoJob.objects.filter(pk=made.pk).update(status=Status.QUEUED, updated_at=later + timedelta(minutes=1))
    polled = summaries.refresh(first, now=later + timedelta(minutes=5))
    VideoJob.objects.filter(pk=made.pk).update(cost=Decimal("1"), updated_at=later + timedelta(minutes=6))
    priced = summaries.refresh(first, now=later + timedelta(minutes=10))

    assert polled.days == {timezone.localdate(made.created_at)} and polled.version == before
    assert priced.version != before


def test_the_chart_draws_a_bar_per_day_with_cost_and_says_what_it_shows(client, alice):
    job(alice, cost="0.40")
    job(alice, cost="0.60")
    client.force_login(alice)

    page = client.get(reverse("spend:page")).content.decode()

    assert '<title id="chart-title">Known cost per day' in page
    assert 'aria-labelledby="chart-title chart-desc"' in page
    assert page.count('class="chart__bar"') == 1
    assert f"Day {timezone.localdate().day}: 1.00 known cost, 2 jobs" in page
