"""How long and how much, learned from the team's own finished jobs.

For each kind of job (model, length, orientation) the estimate is the median generation
time (submitted_at -> generated_at, when a poll first saw "completed") of the newest
HISTORY_SIZE succeeded jobs of that kind in the last HISTORY_DAYS days. The median shrugs
off the odd 40-minute straggler; the window follows a change of the gateway's speed once
half of it is new. Before MIN_SAMPLES jobs of a kind have finished, DEFAULT_MINUTES stands
in. The fast end (FAST_QUANTILE of the same samples) tells the first poll when to look.

Everything is cached for CACHE_SECONDS, so the form and the cards cost no query per view.
"""

import math
import statistics
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import F
from django.utils import timezone

from jobs.models import VideoJob, jittered

HISTORY_SIZE = 50
HISTORY_DAYS = 30
MIN_SAMPLES = 5
FAST_QUANTILE = 0.1
CACHE_SECONDS = 300
# Before there is history: the gateway says 2-15 minutes; Pro and longer videos take longer.
DEFAULT_MINUTES: dict[tuple[str, int], int] = {
    (VideoJob.Model.PLUS, 4): 3,
    (VideoJob.Model.PLUS, 8): 5,
    (VideoJob.Model.PLUS, 12): 7,
    (VideoJob.Model.PRO, 4): 5,
    (VideoJob.Model.PRO, 8): 8,
    (VideoJob.Model.PRO, 12): 11,
}
FALLBACK_MINUTES = 6


@dataclass(frozen=True)
class Estimate:
    seconds: float  # the typical generation time
    fast_seconds: float | None  # the fast end of recent history; None without history
    samples: int

    @property
    def learned(self) -> bool:
        return self.fast_seconds is not None


def from_samples(samples: list[float], default_seconds: float) -> Estimate:
    """The estimate for one kind from its recent generation times (newest first)."""
    samples = samples[:HISTORY_SIZE]
    if len(samples) < MIN_SAMPLES:
        return Estimate(default_seconds, None, len(samples))
    return Estimate(statistics.median(samples), quantile(samples, FAST_QUANTILE), len(samples))


def quantile(values: list[float], q: float) -> float:
    """The q-quantile by the nearest-rank method: always one of the values, never below the fastest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def default_seconds(model: str, duration: int) -> float:
    return 60.0 * DEFAULT_MINUTES.get((model, int(duration)), FALLBACK_MINUTES)


def generation_seconds(model: str, duration: int, aspect_ratio: str) -> list[float]:
    """Generation times of the newest finished jobs of this kind, newest first."""
    rows = (
        VideoJob.objects.filter(
            status=VideoJob.Status.SUCCEEDED,
            model=model,
            duration=duration,
            aspect_ratio=aspect_ratio,
            generated_at__gte=timezone.now() - timedelta(days=HISTORY_DAYS),
            submitted_at__isnull=False,
        )
        .order_by("-generated_at")
        .annotate(took=F("generated_at") - F("submitted_at"))
        .values_list("took", flat=True)[:HISTORY_SIZE]
    )
    return [took.total_seconds() for took in rows if took is not None]


def estimate(model: str, duration: int, aspect_ratio: str) -> Estimate:
    key = f"jobs.estimate:{model}:{int(duration)}:{aspect_ratio}"
    found = cache.get(key)
    if found is None:
        found = from_samples(
            generation_seconds(model, duration, aspect_ratio), default_seconds(model, duration)
        )
        cache.set(key, found, CACHE_SECONDS)
    return found


def typical_cost(model: str, duration: int) -> Decimal | None:
    """The median recorded cost of recent jobs of this model and length; None with no history."""
    key = f"jobs.cost:{model}:{int(duration)}"
    found = cache.get(key)
    if found is None:
        costs = list(
            VideoJob.objects.filter(
                status=VideoJob.Status.SUCCEEDED,
                model=model,
                duration=duration,
                cost__isnull=False,
                generated_at__gte=timezone.now() - timedelta(days=HISTORY_DAYS),
            )
            .order_by("-generated_at")
            .values_list("cost", flat=True)[:HISTORY_SIZE]
        )
        found = statistics.median(costs) if costs else ""
        cache.set(key, found, CACHE_SECONDS)
    return found if found != "" else None


def first_poll_delay(model: str, duration: int, aspect_ratio: str) -> timedelta:
    """How long after submission to ask first.

    Without history: one poll interval, as always. With it: one interval before the fast end
    of recent history (never sooner than one interval), so a job as fast as the fastest
    recent ones is still seen within one interval (plus a sweep) of finishing. Only the last
    interval is jittered, so the spread never pushes the first poll past the fast end.
    """
    interval = settings.SORA_POLL_INTERVAL
    fast = estimate(model, duration, aspect_ratio).fast_seconds
    head = max(0.0, fast - 2 * interval) if fast else 0.0
    return timedelta(seconds=head) + jittered(interval)


def table() -> dict[str, dict[str, Any]]:
    """{"model|duration|aspect_ratio": {"seconds", "cost"}} for every choice on the form."""
    found = {}
    for model in VideoJob.Model.values:
        for duration in VideoJob.Duration.values:
            cost = typical_cost(model, duration)
            for ratio in VideoJob.AspectRatio.values:
                guess = estimate(model, duration, ratio)
                found[f"{model}|{duration}|{ratio}"] = {
                    "seconds": round(guess.seconds),
                    "learned": guess.learned,
                    "cost": str(cost) if cost is not None else None,
                }
    return found


def minutes_text(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} min"
