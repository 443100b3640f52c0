"""The pipeline with nothing faked: real worker and beat processes, the real broker, the
simulator over HTTP. How hard soraweb leans on the gateway, how soon it notices a finished
video, and how many jobs one worker gets through."""

import itertools
import math
import statistics
import time
from collections import Counter

from bench import services
from jobs.models import RESULT_URL_LIFETIME
from simulator import RESULT_PREFIX

GENERATION_SECONDS = 6  # T, for the first job; each next one renders I / 10 longer
POLL_INTERVAL = 2  # I
SWEEP_INTERVAL = 1
POLLED_JOBS = 10
THROUGHPUT_JOBS = 500
VIDEO = {"duration": 4, "aspect_ratio": "16:9"}


def polls(results, owner):
    """10 jobs at T = 6 s and up, I = 2 s: gateway calls per job and the detection delay."""
    with (
        services.simulator(GENERATION_SECONDS, VIDEO) as sim,
        services.stack(sim, POLL_INTERVAL, SWEEP_INTERVAL),
    ):
        rows = services.wait_until_final(_submit_spread(sim, owner), timeout=120)
        calls = _calls_per_job(sim, rows)
        delays = [_detection_delay(sim, row) for row in rows if row.result_expires_at]
        gaps = _poll_gaps(sim)
    _report_calls(results, rows, calls)
    _report_detection(results, delays, gaps)


def _submit_spread(sim, owner):
    """Jobs whose renders end at every phase of the poll cycle, not ten times at the same one.

    With one T for all, each job's polls fall at the same offsets from its create, so the
    delay would be measured at a single phase; T = 6.0, 6.2 ... 7.8 s spans a whole interval.
    """
    jobs = []
    for n in range(POLLED_JOBS):
        sim.configure(generation_seconds=GENERATION_SECONDS + n * POLL_INTERVAL / POLLED_JOBS)
        jobs += services.submit(owner, [f"Bench polls {n}: a paper boat on a stream"], **VIDEO)
        # A task keeps the render time set when it is created: wait for that before the next.
        services.wait_for(lambda n=n: len(sim.create_calls()) > n, "the create call", timeout=30)
    return jobs


def _calls_per_job(sim, rows):
    """{pk: (create calls, result polls, polls allowed)} from the simulator's own request log."""
    creates = Counter(call["prompt"] for call in sim.create_calls())
    polled = Counter(
        entry["task_id"] for entry in sim.requests_log() if entry["path"].startswith(RESULT_PREFIX)
    )
    return {
        row.pk: (creates[row.prompt], polled[row.upstream_id], _polls_allowed(sim.task(row.upstream_id)))
        for row in rows
    }


def _poll_gaps(sim):
    """Seconds between two polls of the same job: the longest bounds the detection delay."""
    times = {}
    for entry in sim.requests_log():
        if entry["path"].startswith(RESULT_PREFIX):
            times.setdefault(entry["task_id"], []).append(entry["time"])
    return [later - earlier for polls in times.values() for earlier, later in itertools.pairwise(polls)]


def _polls_allowed(task):
    return math.ceil(task.generation_seconds / POLL_INTERVAL) + 2 if task else 0


def _detection_delay(sim, row):
    """Seconds from the gateway finishing the video to the row moving to DOWNLOADING."""
    task = sim.task(row.upstream_id)
    finished = task.created + task.generation_seconds
    # The move to DOWNLOADING stamps the link's expiry at now + RESULT_URL_LIFETIME, in one
    # UPDATE: the exact moment of the transition, kept after the job has moved on.
    moved = (row.result_expires_at - RESULT_URL_LIFETIME).timestamp()
    return moved - finished


def _report_calls(results, rows, calls):
    creates, polls_per_job, allowed = zip(*calls.values(), strict=True)
    statuses = Counter(row.status for row in rows)
    within = all(polled <= limit for _, polled, limit in calls.values())
    longest = GENERATION_SECONDS + (POLLED_JOBS - 1) * POLL_INTERVAL / POLLED_JOBS
    results.add(
        "polls", "calls_per_job",
        f"gateway calls per job (T={GENERATION_SECONDS}-{longest:g} s, I={POLL_INTERVAL} s, {len(rows)} "
        "jobs)",
        f"{min(creates)}-{max(creates)} create, polls min {min(polls_per_job)} / mean "
        f"{statistics.mean(polls_per_job):.1f} / max {max(polls_per_job)}",
        f"1 create, <= ceil(T/I)+2 = {min(allowed)}-{max(allowed)} polls",
        set(creates) == {1} and within and statuses == {"succeeded": len(rows)},
        creates=creates, polls=polls_per_job, polls_allowed=allowed, statuses=dict(statuses),
        poll_interval=POLL_INTERVAL, sweep_interval=SWEEP_INTERVAL,
    )  # fmt: skip


def _report_detection(results, delays, gaps):
    limit = POLL_INTERVAL + SWEEP_INTERVAL
    results.add(
        "polls", "detection_delay", "detection delay: gateway completes -> job downloading",
        f"p50 {statistics.median(delays):.2f} s, max {max(delays):.2f} s ({len(delays)} jobs); "
        f"gaps between polls {min(gaps):.2f}-{max(gaps):.2f} s",
        f"<= I + sweep period = {limit} s", max(delays) <= limit,
        p50_seconds=statistics.median(delays), max_seconds=max(delays), seconds=delays, poll_gaps=gaps,
    )  # fmt: skip


def throughput(results, owner):
    """500 jobs through one worker (concurrency 4), the gateway rendering at once."""
    with services.simulator(0, VIDEO) as sim, services.stack(sim, poll_interval=1, sweep_interval=1):
        started = time.monotonic()
        prompts = [f"Bench throughput {n}: a paper boat" for n in range(THROUGHPUT_JOBS)]
        rows = services.wait_until_final(services.submit(owner, prompts, **VIDEO), timeout=420)
        wall = time.monotonic() - started
        creates = len(sim.create_calls())
    statuses = Counter(row.status for row in rows)
    rate = statuses["succeeded"] / wall
    results.add(
        "throughput", "one_worker", f"throughput: {THROUGHPUT_JOBS} jobs, 1 worker (concurrency 4)",
        f"{rate:.2f} jobs/s, {wall:.0f} s wall; {dict(statuses)}; {creates} creates",
        "report", None,
        jobs_per_second=rate, wall_seconds=wall, statuses=dict(statuses), creates=creates,
        poll_interval=1, sweep_interval=1, generation_seconds=0,
    )  # fmt: skip
