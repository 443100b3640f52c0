"""The month's spend, aggregated in the database: one GROUP BY over Usage, rolled up here.

Usage rows outlive their jobs and keep what the job was (model, length, outcome,
cost, seconds delivered) once it is deleted; while the job exists its own fields
count. So deleting videos never changes a month's figures.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Case, Count, F, Q, Sum, When
from django.db.models.functions import Coalesce

from jobs.models import Usage, VideoJob

Status = VideoJob.Status
CHARGED_FAILURE = (Status.FAILED, Status.CANCELLED)


@dataclass
class Figures:
    jobs: int = 0
    seconds: float = 0.0
    known_cost: Decimal = field(default_factory=Decimal)
    unknown_cost: int = 0
    charged_failures: int = 0
    charged_failures_cost: Decimal = field(default_factory=Decimal)

    def add(self, row: dict[str, Any]) -> None:
        self.jobs += row["jobs"]
        self.seconds += row["seconds"] or 0.0
        self.known_cost += row["known_cost"] or 0
        self.unknown_cost += row["unknown_cost"]
        self.charged_failures += row["charged_failures"]
        self.charged_failures_cost += row["charged_failures_cost"] or 0


@dataclass
class Month:
    first: date
    team: Figures
    mine: Figures
    # [(username, Figures)], the biggest spender first; only the rows the reader may see.
    people: list[tuple[str, Figures]]
    # [(model label, seconds, Figures)]
    models: list[tuple[str, int | None, Figures]]
    # [(day, Figures)] for every day of the month
    days: list[tuple[date, Figures]]
    sees_everyone: bool
    # The finest rows, for the CSV: (day, username or "", model, seconds, Figures)
    lines: list[tuple[date, str, str, int | None, Figures]]


def sees_everyone(user: Any) -> bool:
    """Staff, or anyone when the gallery already shows the whole team's jobs."""
    return user.is_staff or settings.SORAWEB_GALLERY_SCOPE == "team"


def following_month(first: date) -> date:
    return (first + timedelta(days=32)).replace(day=1)


def grouped(first: date):
    """One row per (person, day, model, length) of the month, with its figures; one query."""
    status = Coalesce("job__status", "status")
    cost = Coalesce("cost", "job__cost")
    return (
        Usage.objects.filter(day__gte=first, day__lt=following_month(first))
        .alias(job_status=status, job_cost=cost)
        .annotate(
            job_model=Coalesce("job__model", "model"), job_duration=Coalesce("job__duration", "duration")
        )
        .values("user_id", "day", "job_model", "job_duration")
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


def month(user: Any, first: date) -> Month:
    """first's month as user may see it: two queries (the figures, then the names)."""
    everyone = sees_everyone(user)
    team, mine = Figures(), Figures()
    people: dict[int, Figures] = defaultdict(Figures)
    models: dict[tuple[str, int | None], Figures] = defaultdict(Figures)
    days: dict[date, Figures] = defaultdict(Figures)
    finest: dict[tuple[date, int | None, str, int | None], Figures] = defaultdict(Figures)
    for row in grouped(first):
        own = row["user_id"] == user.pk
        team.add(row)
        days[row["day"]].add(row)
        models[row["job_model"] or "", row["job_duration"]].add(row)
        if own:
            mine.add(row)
        if everyone or own:
            people[row["user_id"]].add(row)
            person: int | None = row["user_id"]
        else:
            person = None  # Folded into the team's line: nothing names whose it was.
        finest[row["day"], person, row["job_model"] or "", row["job_duration"]].add(row)

    names = dict(get_user_model().objects.filter(pk__in=people).values_list("pk", "username"))
    labels = dict(VideoJob.Model.choices)
    end = following_month(first)
    return Month(
        first=first,
        team=team,
        mine=mine,
        people=sorted(
            ((names.get(pk, f"#{pk}"), figures) for pk, figures in people.items()),
            key=lambda item: (-item[1].known_cost, -item[1].jobs, item[0]),
        ),
        models=[
            (labels.get(model, model or "Not recorded"), seconds, figures)
            for (model, seconds), figures in sorted(
                models.items(), key=lambda item: (item[0][0], item[0][1] or 0)
            )
        ],
        days=[
            (first + timedelta(days=n), days[first + timedelta(days=n)]) for n in range((end - first).days)
        ],
        sees_everyone=everyone,
        lines=[
            (day, names.get(person, "") if person else "", labels.get(model, model), seconds, figures)
            for (day, person, model, seconds), figures in sorted(
                finest.items(), key=lambda item: (item[0][0], item[0][1] or 0, item[0][2], item[0][3] or 0)
            )
        ],
    )
