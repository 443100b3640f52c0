"""Per-day summaries of Usage: built by one GROUP BY, rebuilt only for the days whose jobs changed.

A month of a busy studio is 100,000 jobs; summing them on every view of the spend page
costs hundreds of milliseconds. A day's figures change only when one of its jobs does
(every transition writes the job's updated_at) or a Usage row is written (a new job,
a deleted one: changed_at), so a day is summarised once and again only after such a change.
"""

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Case, Count, F, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from jobs.models import Usage, VideoJob
from spend.models import DaySummary, SummarisedDay

Status = VideoJob.Status
CHARGED_FAILURE = (Status.FAILED, Status.CANCELLED)
FIGURES = ("jobs", "seconds", "known_cost", "unknown_cost", "charged_failures", "charged_failures_cost")
# A change is stamped just before its transaction commits: a summary counts as holding only
# what was stamped this long before it was computed, so no commit slips between the two.
MARGIN = timedelta(seconds=60)
# Past this many changed jobs (or Usage rows), every day of the month is rebuilt rather than listed.
MAX_CHANGED = 5000


def following_month(first: date) -> date:
    return (first + timedelta(days=32)).replace(day=1)


def grouped(first: date, days: Any = None) -> QuerySet:
    """One row per (day, person, model, length) of first's month (only days, if given); one query."""
    status = Coalesce("job__status", "status")
    cost = Coalesce("cost", "job__cost")
    # Only one of the two filters: given both, SQLite reads the whole month's range of the index.
    if days is None:
        rows = Usage.objects.filter(day__gte=first, day__lt=following_month(first))
    else:
        rows = Usage.objects.filter(day__in=days)
    return (
        rows.alias(job_status=status, job_cost=cost)
        .annotate(
            group_model=Coalesce("job__model", "model", Value("")),
            group_duration=Coalesce("job__duration", "duration", Value(0)),
        )
        .values("user_id", "day", "group_model", "group_duration")
        .annotate(
            jobs=Count("pk"),
            seconds=Sum(
                Case(When(job_status=Status.SUCCEEDED, then=Coalesce("job__actual_duration", "seconds")))
            ),
            known_cost=Sum(F("job_cost")),
            unknown_cost=Count("pk", filter=Q(job_cost__isnull=True)),
            charged_failures=Count("pk", filter=Q(job_status__in=CHARGED_FAILURE, job_cost__isnull=False)),
            charged_failures_cost=Sum("job_cost", filter=Q(job_status__in=CHARGED_FAILURE)),
        )
        .order_by()
    )


@dataclass(frozen=True)
class Refreshed:
    days: set[date]  # the days rebuilt
    # Names the month's summaries as they now are: it changes whenever a day is rebuilt.
    version: str


def refresh(first: date, now: datetime | None = None) -> Refreshed:
    """Bring first's month's summaries up to date."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    if first > today:
        return Refreshed(set(), "future")
    last = min(following_month(first), today + timedelta(days=1))
    days = {first + timedelta(days=n) for n in range((last - first).days)}
    marks = SummarisedDay.objects.filter(day__in=days).values_list("day", "computed_at", "digest")
    done = {day: computed_at for day, computed_at, _ in marks}
    digests = {day: digest for day, _, digest in marks}
    stale = days - done.keys()
    if done:
        stale |= changed_days(first, done)
    if stale:
        digests.update(rebuild(first, stale, now - MARGIN, digests))
    version = hashlib.blake2b(repr(sorted(digests.items())).encode(), digest_size=12).hexdigest()
    return Refreshed(stale, version)


def changed_days(first: date, done: dict[date, datetime]) -> set[date]:
    """The summarised days of first's month with a change stamped after their summary."""
    since = min(done.values())
    zone = timezone.get_current_timezone()
    # No month filter in SQL: both lists are read through their changed-at index, so they
    # cost only what changed since the oldest summary; other months' rows are skipped below.
    usages = list(
        Usage.objects.filter(changed_at__gt=since)
        .order_by()
        .values_list("day", "changed_at")[: MAX_CHANGED + 1]
    )
    # A Usage row's day is its job's local creation day (submission copies created_at).
    jobs = list(
        VideoJob.objects.filter(updated_at__gt=since)
        .order_by()
        .values_list("created_at", "updated_at")[: MAX_CHANGED + 1]
    )
    if len(jobs) > MAX_CHANGED or len(usages) > MAX_CHANGED:
        return set(done)
    changes = [*usages, *((timezone.localdate(created_at, zone), updated) for created_at, updated in jobs)]
    return {day for day, changed_at in changes if day in done and changed_at > done[day]}


def rebuild(first: date, days: set[date], computed_at: datetime, digests: dict[date, str]) -> dict[date, str]:
    """Summarise days again; returns each one's digest (of its figures)."""
    by_day: dict[date, list[DaySummary]] = {day: [] for day in days}
    for row in grouped(first, days):
        by_day[row["day"]].append(
            DaySummary(
                day=row["day"],
                user_id=row["user_id"],
                model=row["group_model"],
                duration=row["group_duration"],
                **{name: row[name] or 0 for name in FIGURES},
            )
        )
    fresh = {day: digest(rows) for day, rows in by_day.items()}
    # Most changes (a poll, a lease) move no figure: then only the day's mark is written.
    changed = [row for day, rows in by_day.items() if fresh[day] != digests.get(day) for row in rows]
    # Upserts: two views rebuilding the same day at once both write whole, equal groups,
    # and a group never disappears (Usage rows are never deleted, a job's model never changes).
    with transaction.atomic():
        DaySummary.objects.bulk_create(
            changed,
            batch_size=500,
            update_conflicts=True,
            unique_fields=["day", "user", "model", "duration"],
            update_fields=list(FIGURES),
        )
        SummarisedDay.objects.bulk_create(
            [SummarisedDay(day=day, computed_at=computed_at, digest=fresh[day]) for day in days],
            batch_size=500,
            update_conflicts=True,
            unique_fields=["day"],
            update_fields=["computed_at", "digest"],
        )
    return fresh


def digest(rows: list[DaySummary]) -> str:
    figures = sorted(
        (row.user_id, row.model, row.duration, *(str(getattr(row, name)) for name in FIGURES)) for row in rows
    )
    return hashlib.blake2b(repr(figures).encode(), digest_size=12).hexdigest()
