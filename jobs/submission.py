"""The one door new jobs enter by: limits, the row, and the submit doorbell.

Every new job (the form, a retry, the admin's "retry as new") goes through
submit(), which checks the owner's limits (jobs in progress at once, jobs per
day, spend per month) and the team's monthly budget, and inserts the row in one
transaction that holds a per-person lock and the budget's lock, so two web
processes taking submissions at the same moment cannot both slip under a limit;
the worker is told once the row is committed. Each new job is recorded in the audit.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

import audit
from jobs import disk
from jobs.models import Usage, UserLimits, VideoJob
from jobs.tasks import submit_job
from spend import budget
from spend.models import TeamBudget

log = logging.getLogger(__name__)


class LimitReached(Exception):
    """A submission refused by a limit; str() names the limit and when it frees up."""


@dataclass(frozen=True)
class Limits:
    """0 means no limit."""

    active_jobs: int
    jobs_per_day: int
    monthly_spend: Decimal


def limits_for(user: Any, row: UserLimits | None = None) -> Limits:
    """user's effective limits; row is their UserLimits when the caller already holds it."""
    row = row or UserLimits.objects.filter(user=user).first()

    def pick(field, default):
        value = getattr(row, field) if row else None
        return default if value is None else value

    return Limits(
        active_jobs=pick("active_jobs", settings.SORAWEB_LIMIT_ACTIVE_JOBS),
        jobs_per_day=pick("jobs_per_day", settings.SORAWEB_LIMIT_JOBS_PER_DAY),
        monthly_spend=pick("monthly_spend", settings.SORAWEB_LIMIT_MONTHLY_SPEND),
    )


@dataclass(frozen=True)
class Used:
    in_progress: int
    today: int
    this_month: Decimal


def used_by(user: Any, now: datetime) -> Used:
    """What user has used against each limit at this moment."""
    rows = Usage.objects.filter(user=user)
    return Used(
        in_progress=VideoJob.objects.filter(owner=user, status__in=VideoJob.ACTIVE).count(),
        today=rows.filter(created_at__gte=_day(now)[0]).count(),
        this_month=rows.filter(created_at__gte=_month(now)[0]).aggregate(
            total=Sum(Coalesce("cost", "job__cost"))
        )["total"]
        or Decimal(0),
    )


def check(
    user: Any,
    now: datetime | None = None,
    row: UserLimits | None = None,
    count: int = 1,
    team: TeamBudget | None = None,
) -> None:
    """Raise LimitReached if user (or the team) may not submit count more jobs now.

    team is the budget row when the caller already holds its lock.
    """
    now = now or timezone.now()
    if reason := budget.refusal(now, count, row=team):
        raise LimitReached(reason)
    if disk.shortage():
        # Its video could not be kept: better refused now than paid for and left waiting.
        raise LimitReached(
            "The server's storage is nearly full, so new videos cannot be kept. "
            "Staff have been told; you can submit again once space is freed."
        )
    limits, used = limits_for(user, row), used_by(user, now)
    if limits.active_jobs and used.in_progress + count > limits.active_jobs:
        raise LimitReached(
            f"You have {_videos(used.in_progress)} in progress and your limit is {limits.active_jobs} "
            f"at once{_over(used.in_progress, count, limits.active_jobs)}. You can submit again as soon "
            "as one of them finishes (or you cancel one)."
        )
    if limits.jobs_per_day and used.today + count > limits.jobs_per_day:
        where = (
            f"and your daily limit is {limits.jobs_per_day}{_over(used.today, count, limits.jobs_per_day)}"
            if count > 1
            else "your daily limit"
        )
        raise LimitReached(
            f"You have submitted {_videos(used.today)} today, {where}. "
            f"It resets at midnight {_when(_day(now)[1], now)}."
        )
    if limits.monthly_spend and used.this_month >= limits.monthly_spend:
        raise LimitReached(
            f"You have spent {used.this_month:.2f} this month and your monthly limit is "
            f"{limits.monthly_spend:.2f}. It resets on the 1st {_when(_month(now)[1], now)}."
        )


def _over(used: int, count: int, limit: int) -> str:
    """For a group of jobs: by how much it would cross the limit."""
    return f": {count} more would be {used + count - limit} over" if count > 1 else ""


def refusal(user: Any) -> str | None:
    """Why user could not submit right now, or None; for the form to say up front."""
    try:
        check(user)
    except LimitReached as exc:
        return str(exc)
    return None


def submit(user: Any, build: Callable[[], VideoJob]) -> VideoJob:
    """Save the job build() makes as user's, if user's limits allow, and send it after commit."""
    return submit_many(user, [build])[0]


def submit_many(user: Any, builds: list[Callable[[], VideoJob]]) -> list[VideoJob]:
    """Save the jobs the builds make as user's, all or none, and send them after commit.

    Every job counts against the limits: if the whole group does not fit, LimitReached is
    raised before any build() is called, so a refusal makes no row and no call.
    """
    with transaction.atomic():
        # Always the person's row, then the team's: one order, so two submissions never deadlock.
        check(user, row=_lock(user), count=len(builds), team=budget.lock())
        jobs = []
        for build in builds:
            job = build()
            Usage.objects.create(user=user, job=job, created_at=job.created_at)
            if job.retry_of_id:
                audit.record(user, "retried", job, retry_of=job.retry_of_id)
            else:
                audit.record(user, "submitted", job)
            jobs.append(job)
        # After commit, so the worker finds the rows it is told about.
        transaction.on_commit(lambda: _ring(jobs))
    return jobs


def _ring(jobs):
    # The rows are saved: a broker that is down (a Redis restart) must not turn that into
    # an error page, which would have the person submit, and pay, again. The sweep sends
    # a pending row whose message never came within SUBMIT_GRACE.
    try:
        for job in jobs:
            submit_job.delay(job.pk)
    except (KombuOperationalError, RedisError) as exc:
        log.warning("the broker is unreachable (%s); the sweep will send jobs %s", exc, [j.pk for j in jobs])


def _lock(user):
    # PostgreSQL: the row lock queues one person's submissions until each commits.
    # SQLite ignores it, but there the transaction began IMMEDIATE (settings), which
    # already holds the database's write lock until commit.
    UserLimits.objects.bulk_create([UserLimits(user=user)], ignore_conflicts=True)
    return UserLimits.objects.select_for_update().get(user=user)


def _videos(count):
    return f"{count} video{'s' if count != 1 else ''}"


def _day(now):
    local = timezone.localtime(now)
    start = datetime.combine(local.date(), time.min, tzinfo=local.tzinfo)
    end = datetime.combine(local.date() + timedelta(days=1), time.min, tzinfo=local.tzinfo)
    return start, end


def _month(now):
    local = timezone.localtime(now)
    first = local.date().replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return (
        datetime.combine(first, time.min, tzinfo=local.tzinfo),
        datetime.combine(following, time.min, tzinfo=local.tzinfo),
    )


def _when(moment, now):
    """ "(00:00 on 24 November UTC, in 5 h 3 min)" """
    left = max(0, int((moment - now).total_seconds()) // 60)
    days, hours, minutes = left // 1440, left // 60 % 24, left % 60
    wait = f"{days} d {hours} h" if days else f"{hours} h {minutes} min" if hours else f"{minutes} min"
    return f"({moment:%H:%M} on {moment.day} {moment:%B} {moment.tzname()}, in {wait})"
