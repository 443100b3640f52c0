"""Thin Celery tasks: reload the row, check it is still theirs, do one thing.

A message only rings the doorbell. A lost one is harmless (the sweep finds the
row again when it comes due) and a duplicate is harmless (the claim or lease on
the row lets exactly one task act).
"""

import logging
import time
from contextlib import suppress

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import InterfaceError, OperationalError, connection

from jobs import disk, media, retention, upstream
from jobs.models import Heartbeat, VideoJob, download_lease

log = logging.getLogger(__name__)


def _load(pk):
    return VideoJob.objects.filter(pk=pk).first()


def _through_outage(write, *args, **kwargs):
    """Run write(*args, **kwargs), retrying while the database is away (a restart, a network cut).

    For what a gateway answer must not lose: a create's answer is a paid video, known
    nowhere else. Other writes need not wait; their row comes due again. Bounded by
    SORAWEB_DB_OUTAGE_PATIENCE, inside the task's time limit.
    """
    # Within the task's soft time limit, which would cut the wait short without a word.
    patience = min(settings.SORAWEB_DB_OUTAGE_PATIENCE, settings.CELERY_TASK_SOFT_TIME_LIMIT - 30)
    deadline = time.monotonic() + patience
    pause = 0.5
    while True:
        try:
            return write(*args, **kwargs)
        except (OperationalError, InterfaceError):
            if time.monotonic() + pause > deadline:
                raise
            log.warning("the database is unreachable; trying the write again in %.0f s", pause)
        # The broken connection is dropped so the next try opens a new one.
        with suppress(Exception):
            connection.close()
        time.sleep(pause)
        # Soon after it is back: before the sweep gives the job up as unknown, if it can.
        pause = min(pause * 2, 2)


@shared_task
def submit_job(pk):
    """Make the job's one paid create call."""
    job = _load(pk)
    if job is None or not job.claim_for_submit():
        return
    # The claim is committed before the call: a worker killed from here on leaves
    # a SUBMITTING row, which the sweep turns into UNKNOWN, never a second call.
    try:
        image_url = media.reference_url(job) if job.reference_image else None
        created = upstream.create_video(job, image_url)
    except upstream.Transient as exc:
        _through_outage(job.retry_submit_later, exc)
    except upstream.Permanent as exc:
        _through_outage(job.mark_failed, exc.kind, str(exc), from_statuses=[VideoJob.Status.SUBMITTING])
    except upstream.OutcomeUnknown as exc:
        _through_outage(job.mark_unknown, str(exc))
    except Exception:
        log.exception("job %s: unexpected error while submitting", pk)
        _through_outage(job.mark_unknown, "Something unexpected went wrong while submitting.")
    else:
        _through_outage(job.mark_submitted, created)
        if created.status in ("failed", "cancelled"):
            message = created.error or "The video service failed the job at once."
            job.mark_failed(VideoJob.FailureKind.PROVIDER, message, from_statuses=VideoJob.POLLING)


@shared_task
def poll_job(pk, token):
    """Ask the gateway once how the job is doing."""
    job = _load(pk)
    if job is None or job.status not in VideoJob.POLLING or not job.take_lease(token):
        return
    try:
        result = upstream.fetch_result(job.upstream_id)
    except upstream.Permanent as exc:
        job.refuse_poll(exc, exc.kind)
    except upstream.UpstreamError as exc:
        job.record_poll_error(exc)
    else:
        job.apply_result(result)
        if job.status == VideoJob.Status.DOWNLOADING:
            download_job.delay(job.pk, job.lease_token)


@shared_task
def download_job(pk, token):
    """Bring the finished video into our storage before the gateway's link expires."""
    job = _load(pk)
    if job is None or job.status != VideoJob.Status.DOWNLOADING or not job.take_lease(token):
        return
    try:
        video_name, poster_name, seconds = media.fetch_video(job)
    except disk.StorageFull as exc:
        job.wait_for_storage(exc)
    except upstream.Permanent as exc:
        job.record_download_error(exc, permanent=True)
    except (upstream.UpstreamError, SoftTimeLimitExceeded) as exc:
        job.record_download_error(exc)
    else:
        stored = default_storage.size(video_name) + default_storage.size(poster_name)
        if not job.mark_succeeded(video_name, poster_name, seconds, stored_bytes=stored):
            # Cancelled while downloading: keep nothing nobody is tracking.
            default_storage.delete(video_name)
            default_storage.delete(poster_name)


@shared_task
def sweep():
    """Hand out the rows whose turn has come; the beat runs this every few seconds."""
    # Run by a worker on beat's schedule, so a fresh sweep proves both are alive.
    Heartbeat.beat("sweep")
    VideoJob.fail_overdue()
    media.clean_staging(older_than=download_lease())
    media.abort_stale_uploads(older_than=download_lease(), every=download_lease().total_seconds())
    for pk, status, token in VideoJob.lease_due():
        if status == VideoJob.Status.PENDING:
            submit_job.delay(pk)
        elif status == VideoJob.Status.SUBMITTING:
            # Its submit task died between the claim and the answer (deleted rows are skipped).
            if job := _load(pk):
                job.mark_unknown("The worker stopped while submitting this job.")
        elif status == VideoJob.Status.DOWNLOADING:
            download_job.delay(pk, token)
        else:
            poll_job.delay(pk, token)


@shared_task
def remove_expired_videos():
    """Retention: remove the files of videos older than SORAWEB_KEEP_VIDEOS_DAYS (beat, hourly)."""
    retention.remove_expired()
