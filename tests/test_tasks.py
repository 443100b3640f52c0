"""The tasks, run in-process against a faked HTTP chokepoint."""

import io
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.core.files.base import ContentFile
from django.utils import timezone

from jobs import media, tasks
from jobs.models import VideoJob
from tests.factories import image_bytes, make_job, tiny_mp4
from tests.fakes import FakeGateway, answer

pytestmark = pytest.mark.django_db
S = VideoJob.Status


@pytest.fixture
def gateway(monkeypatch, settings, tmp_path):
    settings.SORA_API_BASE_URL = "https://gateway.test"
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.SORA_TRUSTED_PRIVATE_HOSTS = []
    monkeypatch.setattr("jobs.upstream.check_fetchable", lambda url: None)
    return FakeGateway(monkeypatch)


@pytest.fixture
def enqueued(monkeypatch):
    sent = []
    for name in ("submit_job", "poll_job", "download_job"):
        task = getattr(tasks, name)
        monkeypatch.setattr(task, "delay", lambda *args, _name=name: sent.append((_name, *args)))
    return sent


@pytest.fixture
def mp4_bytes():
    return tiny_mp4()


def streamed(body, status=200, headers=None):
    response = answer(status, headers={"Content-Length": str(len(body)), **(headers or {})})
    response._content = False
    response._content_consumed = False
    response.raw = io.BytesIO(body)
    return response


def downloading_job():
    job = make_job(status=S.DOWNLOADING, result_url="https://cdn.test/v.mp4", lease_token="t0k")
    job.result_expires_at = timezone.now() + timedelta(hours=23)
    job.save()
    return job


def test_submit_makes_one_create_call_and_queues_the_job(gateway):
    gateway.reply(answer(json={"id": "sora-2:t1", "status": "queued"}))
    job = make_job()

    tasks.submit_job(job.pk)
    tasks.submit_job(job.pk)

    job.refresh_from_db()
    assert (job.status, job.upstream_id) == (S.QUEUED, "sora-2:t1")
    assert len(gateway.calls) == 1


def test_submit_retries_later_when_the_call_never_left(gateway):
    gateway.reply(requests.ConnectTimeout())
    job = make_job()

    tasks.submit_job(job.pk)

    job.refresh_from_db()
    assert job.status == S.PENDING and job.error.startswith("Retrying")


def test_submit_with_an_unknown_outcome_is_never_repeated(gateway):
    gateway.reply(requests.ReadTimeout())
    job = make_job()

    tasks.submit_job(job.pk)
    tasks.submit_job(job.pk)

    job.refresh_from_db()
    assert job.status == S.UNKNOWN
    assert len(gateway.calls) == 1


def test_submit_of_a_rejected_job_fails_with_the_reason(gateway):
    gateway.reply(answer(400, json={"error": "prompt too long"}))
    job = make_job()

    tasks.submit_job(job.pk)

    job.refresh_from_db()
    assert (job.status, job.failure_kind) == (S.FAILED, "rejected")
    assert "prompt too long" in job.error


def test_a_reference_image_without_a_public_address_fails_before_any_call(gateway, settings):
    settings.PUBLIC_BASE_URL = ""
    job = make_job(reference_image="references/x.jpg")

    tasks.submit_job(job.pk)

    job.refresh_from_db()
    assert (job.status, job.failure_kind) == (S.FAILED, "rejected")
    assert "PUBLIC_BASE_URL" in job.error
    assert gateway.calls == []


def test_a_submit_for_a_cancelled_job_does_nothing(gateway):
    job = make_job(status=S.CANCELLED)

    tasks.submit_job(job.pk)
    tasks.submit_job(123456)

    assert gateway.calls == []


def test_a_poll_without_the_lease_does_nothing(gateway):
    job = make_job(status=S.QUEUED, upstream_id="t1", lease_token="current")

    tasks.poll_job(job.pk, "stale")

    assert gateway.calls == []


def test_a_completed_poll_starts_the_download_at_once(gateway, enqueued):
    gateway.reply(answer(json={"id": "t1", "status": "completed", "video_url": "https://cdn.test/v.mp4"}))
    job = make_job(status=S.PROCESSING, upstream_id="t1", lease_token="tok")

    tasks.poll_job(job.pk, "tok")

    job.refresh_from_db()
    assert job.status == S.DOWNLOADING
    assert enqueued == [("download_job", job.pk, job.lease_token)]


def test_a_poll_that_finds_the_key_refused_fails_the_job(gateway):
    gateway.reply(answer(401, json={"error": "invalid key"}))
    job = make_job(status=S.PROCESSING, upstream_id="t1", lease_token="tok")

    tasks.poll_job(job.pk, "tok")

    job.refresh_from_db()
    assert (job.status, job.failure_kind) == (S.FAILED, "account")


def test_a_download_stores_the_video_and_a_poster(gateway, mp4_bytes, settings):
    gateway.reply(streamed(mp4_bytes))
    job = downloading_job()

    tasks.download_job(job.pk, "t0k")

    job.refresh_from_db()
    assert job.status == S.SUCCEEDED, job.error
    assert (Path(settings.MEDIA_ROOT) / job.video.name).read_bytes() == mp4_bytes
    assert (Path(settings.MEDIA_ROOT) / job.poster.name).read_bytes()[:2] == b"\xff\xd8"
    assert job.actual_duration == pytest.approx(1, abs=0.2)
    assert not list((Path(settings.DATA_DIR) / "staging").glob(f"job-{job.pk}-*"))


def test_a_download_stores_small_copies_of_images_wider_than_them(gateway, mp4_bytes, settings):
    gateway.reply(streamed(mp4_bytes))
    job = downloading_job()
    job.reference_image.save("ref.jpg", ContentFile(image_bytes(1280, 720, "JPEG")))

    tasks.download_job(job.pk, "t0k")

    job.refresh_from_db()
    media_root = Path(settings.MEDIA_ROOT)
    assert (media_root / media.sized_name(job.reference_image.name, 160)).exists()
    assert (media_root / media.sized_name(job.reference_image.name, 320)).exists()
    # The 128x72 poster is smaller than both: it serves every width itself.
    assert not (media_root / media.sized_name(job.poster.name, 160)).exists()


@pytest.mark.parametrize(
    ("reply", "status", "words"),
    [
        ("404", S.FAILED, "dead or expired"),
        ("html", S.FAILED, "not lead to an MP4"),
        ("truncated", S.DOWNLOADING, "broke off"),
        ("too-big", S.FAILED, "larger than"),
    ],
)
def test_a_bad_download_is_refused_and_leaves_no_file(gateway, mp4_bytes, settings, reply, status, words):
    settings.SORA_MAX_VIDEO_BYTES = len(mp4_bytes) - 1 if reply == "too-big" else 10**9
    gateway.reply(
        {
            "404": answer(404),
            "html": streamed(b"<html><body>Not here</body></html>"),
            "truncated": streamed(mp4_bytes[:1000], headers={"Content-Length": str(len(mp4_bytes))}),
            "too-big": streamed(mp4_bytes),
        }[reply]
    )
    job = downloading_job()

    tasks.download_job(job.pk, "t0k")

    job.refresh_from_db()
    assert job.status == status
    assert words in job.error
    assert not job.video
    assert not list(Path(settings.MEDIA_ROOT).rglob("*.mp4"))
    assert not list((Path(settings.DATA_DIR) / "staging").glob(f"job-{job.pk}-*"))


def test_the_sweep_rings_the_right_doorbell_for_each_due_row(enqueued):
    due = timezone.now() - timedelta(seconds=1)
    pending = make_job(next_check_at=due)
    queued = make_job(status=S.QUEUED, next_check_at=due)
    downloading = make_job(status=S.DOWNLOADING, next_check_at=due)
    stuck = make_job(status=S.SUBMITTING, next_check_at=due)

    tasks.sweep()

    kinds = {(name, args[0]) for name, *args in enqueued}
    assert kinds == {("submit_job", pending.pk), ("poll_job", queued.pk), ("download_job", downloading.pk)}
    stuck.refresh_from_db()
    assert stuck.status == S.UNKNOWN


def test_the_sweep_removes_staging_files_left_by_killed_downloads_but_not_fresh_ones(settings, enqueued):
    staging = Path(settings.DATA_DIR) / "staging"
    staging.mkdir(exist_ok=True)
    old, fresh = staging / "job-1-dead.mp4", staging / "job-2-live.mp4"
    old.write_bytes(b"half a video")
    fresh.write_bytes(b"being written")
    long_ago = time.time() - 2 * settings.SORA_DOWNLOAD_TIMEOUT - 3600
    os.utime(old, (long_ago, long_ago))

    tasks.sweep()

    assert not old.exists()
    assert fresh.exists()
    fresh.unlink()
