"""The month's spend as a reader may see it, from the per-day summaries (spend/summaries.py).

Usage rows outlive their jobs and keep what the job was (model, length, outcome, cost,
seconds delivered) once it is deleted; while the job exists its own fields count. So
deleting videos never changes a month's figures.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Sum

from jobs.models import VideoJob
from spend import summaries
from spend.models import DaySummary

CACHE_SECONDS = 600


@dataclass
class Figures:
    jobs: int = 0
    seconds: float = 0.0
    known_cost: Decimal = field(default_factory=Decimal)
    unknown_cost: int = 0
    charged_failures: int = 0
    charged_failures_cost: Decimal = field(default_factory=Decimal)

    @classmethod
    def of(cls, row: dict[str, Any]) -> "Figures":
        return cls(**{name: row[name] or 0 for name in summaries.FIGURES})

    @property
    def cells(self) -> tuple[str, ...]:
        """The table cells, formatted here: a page shows a hundred rows, and template filters are slow."""
        charged = f"{self.charged_failures}"
        if self.charged_failures:
            charged += f" ({self.charged_failures_cost:.2f})"
        known = f"{self.known_cost:.2f}"
        return (str(self.jobs), f"{self.seconds:.0f}", known, str(self.unknown_cost), charged)

    def add(self, other: "Figures") -> None:
        for name in summaries.FIGURES:
            setattr(self, name, getattr(self, name) + getattr(other, name))


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


def sees_everyone(user: Any) -> bool:
    """Staff, or anyone when the gallery already shows the whole team's jobs."""
    return user.is_staff or settings.SORAWEB_GALLERY_SCOPE == "team"


def totals(rows: Any, *keys: str) -> list[tuple[Any, Figures]]:
    """[(keys' values, Figures)] of rows grouped by keys, in the database."""
    sums = {name: Sum(name) for name in summaries.FIGURES}
    return [
        (tuple(row[key] for key in keys), Figures.of(row))
        for row in rows.values(*keys).annotate(**sums).order_by(*keys)
    ]


def month(user: Any, first: date) -> Month:
    """first's month as user may see it: the summaries brought up to date, then two GROUP BYs.

    The two are cached under the summaries' version, so until a day's figures change a
    view of the page costs only the few queries that check for changes.
    """
    version = summaries.refresh(first).version
    everyone = sees_everyone(user)
    key = f"spend:month:{first:%Y-%m}:{version}:{'all' if everyone else user.pk}"
    sums = cache.get(key)
    if sums is None:
        rows = DaySummary.objects.filter(day__gte=first, day__lt=summaries.following_month(first))
        sums = (
            totals(rows if everyone else rows.filter(user=user), "user_id", "user__username"),
            # A few hundred rows at most: the days and the models are added up from them here.
            totals(rows, "day", "model", "duration"),
        )
        cache.set(key, sums, CACHE_SECONDS)
    people, by_day_and_model = sums
    team, per_day, per_model = Figures(), defaultdict(Figures), defaultdict(Figures)
    for (day, model, seconds), figures in by_day_and_model:
        team.add(figures)
        per_day[day].add(figures)
        per_model[model, seconds].add(figures)
    models = sorted(per_model.items())
    labels = dict(VideoJob.Model.choices)
    end = summaries.following_month(first)
    return Month(
        first=first,
        team=team,
        mine=next((figures for (pk, _), figures in people if pk == user.pk), Figures()),
        people=sorted(
            ((name, figures) for (_, name), figures in people),
            key=lambda item: (-item[1].known_cost, -item[1].jobs, item[0]),
        ),
        models=[
            (labels.get(model, model or "Not recorded"), seconds or None, figures)
            for (model, seconds), figures in models
        ],
        days=[
            (day, per_day.get(day, Figures()))
            for day in (first + timedelta(days=n) for n in range((end - first).days))
        ],
        sees_everyone=everyone,
    )


def lines(user: Any, first: date) -> list[tuple[date, str, str, int | None, Figures]]:
    """The CSV's lines: (day, person, model, seconds, Figures); others' folded into one line when hidden."""
    summaries.refresh(first)
    rows = DaySummary.objects.filter(day__gte=first, day__lt=summaries.following_month(first))
    labels = dict(VideoJob.Model.choices)
    if sees_everyone(user):
        named = totals(rows, "day", "user__username", "model", "duration")
        others: list[tuple[Any, Figures]] = []
    else:
        named = totals(rows.filter(user=user), "day", "user__username", "model", "duration")
        others = [
            ((day, "", model, seconds), figures)
            for (day, model, seconds), figures in totals(rows.exclude(user=user), "day", "model", "duration")
        ]
    return [
        (day, name, labels.get(model, model or "Not recorded"), seconds or None, figures)
        for (day, name, model, seconds), figures in sorted(named + others, key=lambda line: line[0])
    ]
