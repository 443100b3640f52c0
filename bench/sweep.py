"""One run of the periodic sweep, 50 due rows among 50 vs 5,000 in flight, in a table of 100,000."""

import statistics
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from unittest import mock

from django.utils import timezone

from bench import data
from bench.measure import queries_of, timings_ms
from jobs import tasks
from jobs.models import VideoJob

DUE = 50
RUNS = 50
# The two cases take turns, a block each, so a burst of other work on the machine hits both alike.
ROUNDS = 5


def sweep(results):
    due = data.polling_pks(DUE)
    many, few = [], []
    for _ in range(ROUNDS):
        many += _sweep_times(due, RUNS // ROUNDS)
        with _only_in_flight(due):
            few += _sweep_times(due, RUNS // ROUNDS)
    many_ms, few_ms = statistics.median(many), statistics.median(few)
    many_queries = _sweep_queries(due)
    with _only_in_flight(due):
        few_queries = _sweep_queries(due)
    ratio = many_ms / few_ms
    results.add(
        "sweep", "due_among_in_flight", f"one sweep, {DUE} due among 50 vs 5,000 in flight",
        f"{few_ms:.1f} vs {many_ms:.1f} ms p50 (x{ratio:.2f}); {len(few_queries)} vs {len(many_queries)} "
        "queries",
        "ratio <= 1.5", ratio <= 1.5,
        p50_ms_50=few_ms, p50_ms_5000=many_ms, ratio=ratio, queries_50=few_queries, queries_5000=many_queries,
    )  # fmt: skip


def _sweep_times(due, runs):
    with _dispatch_caught(due) as (make_due, sweep_once):
        return timings_ms(sweep_once, runs, warmup=2, setup=make_due)


def _sweep_queries(due):
    with _dispatch_caught(due) as (make_due, sweep_once):
        return queries_of(sweep_once, setup=make_due)


@contextmanager
def _dispatch_caught(due):
    """Yields (make `due` due again, run one sweep); its messages are caught instead of sent."""
    sent = []

    def make_due():
        sent.clear()
        VideoJob.objects.filter(pk__in=due).update(next_check_at=timezone.now() - timedelta(seconds=1))

    def sweep_once():
        tasks.sweep()
        assert len(sent) == DUE, f"the sweep dispatched {len(sent)} of {DUE} due jobs"

    with ExitStack() as stack:
        for task in (tasks.submit_job, tasks.poll_job, tasks.download_job):
            stack.enter_context(mock.patch.object(task, "delay", lambda *args: sent.append(args)))
        yield make_due, sweep_once


@contextmanager
def _only_in_flight(keep):
    """Park every other in-flight row as finished for a while, so only `keep` is in flight."""
    parked = VideoJob.objects.filter(status__in=VideoJob.ACTIVE).exclude(pk__in=keep)
    statuses = {}
    for pk, status in parked.values_list("pk", "status"):
        statuses.setdefault(status, []).append(pk)
    parked.update(status=VideoJob.Status.SUCCEEDED)
    data.analyze()
    try:
        yield
    finally:
        for status, pks in statuses.items():
            VideoJob.objects.filter(pk__in=pks).update(status=status)
        data.analyze()
