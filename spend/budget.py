"""The team's monthly budget: what counts against it, the banner, and the refusal.

The month counts the known costs of its submitted jobs (deleted ones too: their Usage
rows keep the cost), read from the spend page's per-day summaries, plus, for each job
still in progress whose cost is not known yet, the month's average known cost per job.
Without that estimate a submission would never change the count, so two people
submitting at once near the end of the budget would both get through, and so would
any number more.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models import Sum
from django.utils import timezone

from jobs.models import VideoJob
from spend import summaries
from spend.models import DaySummary, TeamBudget

WARN_AT = Decimal("0.8")
BANNER_CACHE_KEY = "spend:banner"
BANNER_SECONDS = 30


@dataclass(frozen=True)
class Month:
    budget: Decimal  # 0: no budget
    known: Decimal
    in_progress: int
    estimate: Decimal  # per job in progress

    @property
    def committed(self) -> Decimal:
        return self.known + self.in_progress * self.estimate

    @property
    def share(self) -> Decimal:
        return self.committed / self.budget if self.budget else Decimal(0)


def amount(row: TeamBudget | None = None) -> Decimal:
    """The monthly budget in force (0: none)."""
    if row is None:
        row = TeamBudget.objects.filter(pk=1).first()
    if row is None or row.amount is None:
        return settings.SORAWEB_TEAM_MONTHLY_BUDGET
    return row.amount


def month_of(now: datetime) -> tuple[date, date]:
    """The first day of now's local month and of the next."""
    first = timezone.localdate(now).replace(day=1)
    return first, (first + timedelta(days=32)).replace(day=1)


def this_month(now: datetime | None = None, row: TeamBudget | None = None) -> Month:
    budget = amount(row)
    if not budget:
        return Month(budget, Decimal(0), 0, Decimal(0))
    now = now or timezone.now()
    first, following = month_of(now)
    summaries.refresh(first, now)
    figures = DaySummary.objects.filter(day__gte=first, day__lt=following).aggregate(
        known=Sum("known_cost"), jobs=Sum("jobs"), unknown=Sum("unknown_cost")
    )
    zone = timezone.get_current_timezone()
    in_progress = VideoJob.objects.filter(
        status__in=VideoJob.ACTIVE,
        cost__isnull=True,
        created_at__gte=datetime.combine(first, time.min, tzinfo=zone),
        created_at__lt=datetime.combine(following, time.min, tzinfo=zone),
    ).count()
    known = figures["known"] or Decimal(0)
    priced = (figures["jobs"] or 0) - (figures["unknown"] or 0)
    estimate = known / priced if priced else Decimal(0)
    return Month(budget, known, in_progress, estimate)


def lock() -> TeamBudget:
    """Take the budget row's lock for the rest of the transaction (the submission's)."""
    TeamBudget.objects.bulk_create([TeamBudget(pk=1)], ignore_conflicts=True)
    return TeamBudget.objects.select_for_update().get(pk=1)


def refusal(now: datetime | None = None, count: int = 1, row: TeamBudget | None = None) -> str | None:
    """Why the team may not submit count more jobs now, or None; row: the budget row, locked by the caller."""
    month = this_month(now, row)
    # As for a person's spend limit, the job that reaches the budget is let through; a group
    # may not go further past it than that.
    if not month.budget or month.committed + (count - 1) * month.estimate < month.budget:
        return None
    return (
        f"The team has used its budget for this month ({month.committed:.2f} of {month.budget:.2f}, "
        f"counting videos still in progress). Ask {contact()} to raise it; it resets on the 1st."
    )


def contact() -> str:
    if settings.SORAWEB_BUDGET_CONTACT:
        return settings.SORAWEB_BUDGET_CONTACT
    names = list(
        get_user_model()
        .objects.filter(is_staff=True, is_active=True)
        .order_by("username")
        .values_list("username", flat=True)[:5]
    )
    return " or ".join(names) if names else "an administrator"


def banner() -> dict[str, Any] | None:
    """What the warning banner says, or None below 80%; cached briefly, as it is on every page."""
    state = cache.get(BANNER_CACHE_KEY)
    if state is None:
        month = this_month()
        state = {"share": month.share, "committed": month.committed, "budget": month.budget}
        cache.set(BANNER_CACHE_KEY, state, BANNER_SECONDS)
    if not state["budget"] or state["share"] < WARN_AT:
        return None
    return {**state, "percent": int(state["share"] * 100), "reached": state["share"] >= 1}


def forget_banner() -> None:
    """After the budget changes, the next page computes the banner afresh."""
    cache.delete(BANNER_CACHE_KEY)
