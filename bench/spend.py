"""The spend page and the budget banner at 100,000 jobs and 50 people, nearly all in this month.

The bench rows are bulk-created jobs without Usage rows and five owners; this spreads the
jobs over 50 people and gives each its Usage row, as the studio's own door would have.
It changes owners, so it runs after every other group.
"""

import itertools

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.cache import cache
from django.db.models import F, Value
from django.db.models.functions import Coalesce, Least
from django.urls import reverse
from django.utils import timezone

from bench import data
from bench.measure import median_ms, queries_of
from bench.web import getter, page, signed_in_client
from jobs.models import Usage, VideoJob
from spend import budget, summaries
from spend.models import DaySummary, SummarisedDay

PEOPLE = 50
TARGET_MS = 50
MAX_QUERIES = 10


def spend(results, team):
    people = fifty_people(team)
    usage_rows()
    staff = people[0]
    staff.is_staff = True
    staff.save(update_fields=["is_staff"])
    first = budget.month_of(timezone.now())[0]
    month = Usage.objects.filter(day__gte=first).count()
    url = reverse("spend:page")

    def forget():
        SummarisedDay.objects.all().delete()
        DaySummary.objects.all().delete()

    client = signed_in_client(staff)
    cold = median_ms(getter(client, url), 5, warmup=0, setup=forget)
    cold_queries = queries_of(getter(client, url), setup=forget)
    results.add(
        "spend", "page_cold", f"spend page, {PEOPLE} people, first view (every day summarised)",
        f"{cold:.0f} ms p50; {len(cold_queries)} queries; {month:,} jobs this month",
        "once per month, then per changed day", None,
        p50_ms=cold, queries=cold_queries, jobs_this_month=month,
    )  # fmt: skip
    for who, user in (("staff (every person's line)", staff), ("a creator", people[1])):
        p50, queries, response = page(signed_in_client(user), url)
        assert b'data-chart="daily"' in response.content
        key = "page_staff" if user.is_staff else "page_creator"
        results.add(
            "spend", key, f"spend page at 100,000 jobs, {PEOPLE} people, as {who}",
            f"{p50:.1f} ms p50; {len(queries)} queries; {month:,} jobs this month",
            f"<= {TARGET_MS} ms p50; queries constant, <= {MAX_QUERIES}",
            p50 <= TARGET_MS and len(queries) <= MAX_QUERIES,
            p50_ms=p50, queries=queries, jobs_this_month=month,
        )  # fmt: skip
    one_day_changed(results, client, url)
    banner(results)


def one_day_changed(results, client, url):
    """The usual views: today's jobs moved since the last one, so today is summarised again.

    Mostly a poll or a lease that moves no figure; sometimes a job that finished with a cost.
    """
    today = timezone.localdate()
    todays = VideoJob.objects.filter(usage__day=today)
    # A new amount each time: a figure that came back to an earlier value would find its totals cached.
    costs = (f"{0.4 + n / 10_000:.4f}" for n in itertools.count())

    def polled():
        todays.filter(pk=todays.values("pk")[:1]).update(updated_at=timezone.now())

    def finished():
        todays.filter(pk=todays.values("pk")[:1]).update(updated_at=timezone.now(), cost=next(costs))

    for key, label, change in (
        ("page_today_polled", "a job of today polled (no figure moved)", polled),
        ("page_today_finished", "a job of today got its cost", finished),
    ):
        p50 = median_ms(getter(client, url), 20, setup=change)
        queries = queries_of(getter(client, url), setup=change)
        results.add(
            "spend", key, f"spend page, since the last view {label}",
            f"{p50:.1f} ms p50; {len(queries)} queries; {todays.count():,} jobs today summarised again",
            f"<= {TARGET_MS} ms p50", p50 <= TARGET_MS, p50_ms=p50, queries=queries,
        )  # fmt: skip


def banner(results):
    """The budget banner: one aggregate every BANNER_SECONDS, a cache read on every other page."""
    from spend.models import TeamBudget

    TeamBudget.objects.update_or_create(pk=1, defaults={"amount": 10**6})
    uncached = median_ms(budget.banner, 20, setup=cache.clear)
    queries = queries_of(budget.banner, setup=cache.clear)
    cached = median_ms(budget.banner, 200)
    results.add(
        "spend", "banner", "budget banner, 100,000 jobs this month",
        f"{uncached:.1f} ms uncached ({len(queries)} queries, once per {budget.BANNER_SECONDS} s); "
        f"{cached * 1000:.0f} µs cached", "cached on pages", None,
        uncached_ms=uncached, cached_ms=cached, queries=queries,
    )  # fmt: skip


def fifty_people(team):
    User = get_user_model()
    password = make_password("spend-bench-password")  # Hashed once: fifty hashes would take a minute.
    extra = [User(username=f"person{n:02}", password=password) for n in range(len(team), PEOPLE)]
    people = [*team, *User.objects.bulk_create(extra)]
    # Job i goes to person i % 50; the first five keep their jobs.
    for index, person in enumerate(people[len(team) :], start=len(team)):
        VideoJob.objects.alias(slot=F("id") % PEOPLE).filter(slot=index).update(owner=person)
    return people


def usage_rows():
    jobs = VideoJob.objects.filter(usage__isnull=True).values_list("pk", "owner_id", "created_at")
    rows = (
        Usage(job_id=pk, user_id=owner, created_at=created, day=timezone.localdate(created))
        for pk, owner, created in jobs.iterator(chunk_size=data.BATCH)
    )
    while batch := list(itertools.islice(rows, data.BATCH)):
        Usage.objects.bulk_create(batch)
    # As a long-used studio has them: a Usage row written at submission, a job last
    # written when it finished (in-flight rows when made), and nothing in the last
    # minutes, so "nothing changed since the last view" is what it says.
    settled = timezone.now() - 2 * summaries.MARGIN
    Usage.objects.update(changed_at=Least("created_at", Value(settled)))
    VideoJob.objects.update(updated_at=Least(Coalesce("completed_at", "created_at"), Value(settled)))
    data.analyze()
