"""The rows the benchmarks read: a team of five and up to 100,000 bulk-created jobs.

Row i = 0 is the newest. Every fourth row among the newest 20,000 is in flight (5,000
in all), so the first gallery page has a few live cards, the sweep has 5,000 in-flight
rows to look past, and everything older is finished, as in a long-used studio.
"""

import itertools
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection

from jobs.models import VideoJob

Status = VideoJob.Status
TEAM = ("alice", "bob", "carol", "dave", "erin")
ROW_SPACING = timedelta(seconds=20)
IN_FLIGHT_WINDOW = 20_000
IN_FLIGHT_STATUSES = (Status.QUEUED, Status.PROCESSING, Status.PROCESSING, Status.DOWNLOADING, Status.PENDING)
# Far enough ahead that no in-flight bulk row comes due (or overdue) while a worker runs.
NOT_DUE = timedelta(days=1)
BATCH = 5_000

SUBJECTS = ("A paper boat", "A red fox", "An old lighthouse", "A glass city", "A jazz trio", "A koi pond")
SCENES = ("drifting down a rainy street", "at dawn in deep snow", "under a storm", "seen from a drone")
STYLES = ("cinematic, golden hour", "hand-drawn animation", "35 mm film grain", "macro, shallow focus")


def migrate():
    call_command("migrate", interactive=False, verbosity=0)


def team():
    User = get_user_model()
    return [User.objects.create_user(name, password=f"{name}-bench-password") for name in TEAM]


def add_jobs(start, stop, owners, now):
    """Bulk-create rows start..stop-1 of the data set, BATCH at a time."""
    rows = (job_row(i, owners, now) for i in range(start, stop))
    while batch := list(itertools.islice(rows, BATCH)):
        VideoJob.objects.bulk_create(batch)
    analyze()


def analyze():
    """Fresh planner statistics, as autovacuum would have them on a long-running server."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def job_row(i, owners, now):
    created = now - ROW_SPACING * i
    job = VideoJob(
        owner=owners[i % len(owners)],
        prompt=f"{SUBJECTS[i % 6]} {SCENES[i % 4]}, {STYLES[i % 3]} (take {i})",
        model=VideoJob.Model.values[i % 2],
        aspect_ratio=VideoJob.AspectRatio.values[i // 2 % 2],
        duration=VideoJob.Duration.values[i % 3],
        status=status_of(i),
        created_at=created,
        deadline_at=created + timedelta(hours=2),
    )
    if job.status in VideoJob.ACTIVE:
        job.next_check_at, job.deadline_at = now + NOT_DUE, now + 2 * NOT_DUE
        job.upstream_id = None if job.status == Status.PENDING else f"bench:task_{i}"
    else:
        _finish(job, i)
    return job


def status_of(i):
    if i < IN_FLIGHT_WINDOW and i % 4 == 0:
        return IN_FLIGHT_STATUSES[i // 4 % len(IN_FLIGHT_STATUSES)]
    bucket = i % 100
    if bucket < 85:
        return Status.SUCCEEDED
    if bucket < 93:
        return Status.FAILED
    return Status.CANCELLED if bucket < 97 else Status.UNKNOWN


def _finish(job, i):
    job.upstream_id = f"bench:task_{i}"
    job.completed_at = job.created_at + timedelta(minutes=3)
    if job.status == Status.SUCCEEDED:
        folder = f"{job.created_at:%Y/%m}"
        job.video, job.poster = f"videos/{folder}/job-b{i}.mp4", f"posters/{folder}/job-b{i}.jpg"
        job.actual_duration, job.cost = job.duration, "0.4000"
    elif job.status == Status.FAILED:
        job.failure_kind, job.error = VideoJob.FailureKind.PROVIDER, "Internal generation error"
    else:
        job.error = "Stopped tracking."


def polling_pks(count):
    """`count` rows the gateway is working on: what the sweep mostly hands out."""
    polling = VideoJob.objects.filter(status__in=VideoJob.POLLING).order_by("pk")
    return list(polling.values_list("pk", flat=True)[:count])
