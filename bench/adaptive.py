"""Polling that learns, against the simulator: the fixed schedule (no history: every I from
submission) and the adaptive one (a learned history: the first poll one interval before the
history's fast end), side by side on the same spread of generation times; and how far the
ETA made at submission lands from the real generation time.

Generation times are spread like the gateway's (lognormal, median 6 min, clipped to its
documented 2-15 min), scaled down 1/15 in time with the poll interval scaled alike (30 s ->
I = 2 s): median 24 s, 8-60 s. SIGMA is the spread of one kind of job (model, length,
orientation); the gateway's 2-15 min spans every kind, one kind is narrower.
"""

import math
import random
import statistics
from datetime import timedelta

from django.core.cache import cache
from django.utils import timezone

from bench import services
from bench.pipeline import _calls_per_job, _detection_delay
from jobs import estimates
from jobs.models import VideoJob

SCALE = 15
MEDIAN = 6 * 60 / SCALE
LOW, HIGH = 2 * 60 / SCALE, 15 * 60 / SCALE
SIGMA = 0.35
POLL_INTERVAL = 2
SWEEP_INTERVAL = 1
JOBS = 20
HISTORY = 50
VIDEO = {"model": VideoJob.Model.PLUS, "duration": 4, "aspect_ratio": "16:9"}


def generation_times(count, seed):
    rng = random.Random(seed)
    return [min(HIGH, max(LOW, MEDIAN * math.exp(rng.gauss(0, SIGMA)))) for _ in range(count)]


def adaptive(results, owner):
    times = generation_times(JOBS, seed=12)
    _forget_history()
    fixed = _run(owner, times, "fixed")
    _forget_history()
    _seed_history(owner, generation_times(HISTORY, seed=7))
    cache.clear()
    guess = estimates.estimate(**VIDEO)
    learned = _run(owner, times, "adaptive")
    _report(results, fixed, learned, guess, times)


def _run(owner, times, name):
    """Submit JOBS jobs with these generation times through a fresh worker (a cold estimate cache)."""
    with (
        services.simulator(MEDIAN, VIDEO) as sim,
        services.stack(sim, POLL_INTERVAL, SWEEP_INTERVAL),
    ):
        jobs = []
        for n, seconds in enumerate(times):
            sim.configure(generation_seconds=seconds)
            jobs += services.submit(owner, [f"Bench {name} {n}: a paper boat"], **VIDEO)
            services.wait_for(lambda n=n: len(sim.create_calls()) > n, "the create call", timeout=30)
        rows = services.wait_until_final(jobs, timeout=HIGH * 3 + 60)
        calls = _calls_per_job(sim, rows)
        delays = [_detection_delay(sim, row) for row in rows if row.result_expires_at]
        took = {row.pk: sim.task(row.upstream_id).generation_seconds for row in rows}
    polls = [polled for _, polled, _ in calls.values()]
    creates = [created for created, _, _ in calls.values()]
    return {"rows": rows, "polls": polls, "creates": creates, "delays": delays, "took": took}


def _forget_history():
    VideoJob.objects.filter(**VIDEO).update(generated_at=None)


def _seed_history(owner, times):
    now = timezone.now()
    VideoJob.objects.bulk_create(
        VideoJob(
            owner=owner, prompt=f"Bench history {n}", status=VideoJob.Status.SUCCEEDED,
            submitted_at=now - timedelta(minutes=n + 1, seconds=seconds),
            generated_at=now - timedelta(minutes=n + 1), completed_at=now - timedelta(minutes=n + 1),
            next_check_at=now, deadline_at=now, **VIDEO,
        )
        for n, seconds in enumerate(times)
    )  # fmt: skip


def p95(values):
    return estimates.quantile(values, 0.95)


def _report(results, fixed, learned, guess, times):
    mean_fixed, mean_learned = statistics.mean(fixed["polls"]), statistics.mean(learned["polls"])
    creates = sorted(set(fixed["creates"] + learned["creates"]))
    fewer = 1 - mean_learned / mean_fixed
    spread = f"T {min(times):.0f}-{max(times):.0f} s (median {statistics.median(times):.0f})"
    results.add(
        "adaptive", "polls_per_job",
        f"status calls per job, fixed vs adaptive ({len(times)} jobs, {spread}, I={POLL_INTERVAL} s)",
        f"fixed mean {mean_fixed:.1f} (max {max(fixed['polls'])}) | adaptive mean {mean_learned:.1f} "
        f"(max {max(learned['polls'])}): {fewer:.0%} fewer; create calls per job {creates}",
        ">= 50% fewer", fewer >= 0.5,
        fixed=fixed["polls"], adaptive=learned["polls"], fewer=fewer, sigma=SIGMA, scale=SCALE,
        first_poll_fast_end_seconds=guess.fast_seconds,
    )  # fmt: skip
    results.add(
        "adaptive", "detection_delay",
        "detection delay p95, fixed vs adaptive (gateway completes -> job downloading)",
        f"fixed p95 {p95(fixed['delays']):.2f} s (max {max(fixed['delays']):.2f}) | adaptive p95 "
        f"{p95(learned['delays']):.2f} s (max {max(learned['delays']):.2f})",
        "adaptive p95 <= fixed p95", p95(learned["delays"]) <= p95(fixed["delays"]),
        fixed=fixed["delays"], adaptive=learned["delays"],
    )  # fmt: skip
    errors = [abs(guess.seconds - seconds) for seconds in learned["took"].values()]
    results.add(
        "adaptive", "eta_error",
        f"ETA at submission vs real generation time (median of {guess.samples} finished jobs)",
        f"median absolute error {statistics.median(errors):.1f} s = "
        f"{statistics.median(errors) * SCALE / 60:.1f} min at full scale (estimate {guess.seconds:.1f} s)",
        "report", None,
        errors=errors, estimate_seconds=guess.seconds,
    )  # fmt: skip
