"""Operations: a full disk waits instead of failing, retention, the storage page, backup and
restore, and a plain 503 page while the SQLite database is locked or read-only."""

import sqlite3
import subprocess
import tarfile
import threading
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobs import disk, retention, submission, tasks
from jobs.models import VideoJob
from ops import backup as backups
from tests.factories import make_job
from tests.fakes import FakeGateway, LocalServer, answer, mp4_body

# The embedded default's own behaviour (SQLite backups, a locked or read-only file):
# on PostgreSQL, docs/deploy.md's pg_dump procedure and the fault suite's outage rows apply.
sqlite_only = pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"),
    reason="the embedded SQLite default only; PostgreSQL is backed up with pg_dump",
)


S = VideoJob.Status


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB filesystem of the test's own (a tmpfs; needs root, as CI has)."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def video_host(settings):
    server = LocalServer({"/v.mp4": (200, {"Content-Type": "video/mp4"}, mp4_body(3 * 2**20))})
    settings.SORA_TRUSTED_PRIVATE_HOSTS = [f"127.0.0.1:{server.port}"]
    yield server
    server.close()


def downloading(alice, url, **fields):
    now = timezone.now()
    return make_job(
        alice, status=S.DOWNLOADING, result_url=url, result_expires_at=now + timedelta(hours=20),
        lease_token="t", upstream_id="up-1", **fields,
    )  # fmt: skip


# --- A full disk -----------------------------------------------------------------


def test_a_download_that_meets_a_full_disk_waits_and_leaves_no_staging_file(
    db, alice, settings, media, small_disk, video_host
):
    settings.DATA_DIR = small_disk
    job = downloading(alice, video_host.url("/v.mp4"))

    tasks.download_job(job.pk, "t")

    job.refresh_from_db()
    assert job.status == S.DOWNLOADING
    assert job.download_attempts == 0
    assert "Waiting for storage space" in job.error
    assert job.next_check_at > timezone.now() + timedelta(seconds=settings.SORAWEB_STORAGE_RETRY_SECONDS - 5)
    assert list((small_disk / "staging").iterdir()) == []


def test_a_full_disk_after_the_link_expired_fails_the_download(db, alice):
    job = downloading(alice, "http://cdn.example/v.mp4")
    VideoJob.objects.filter(pk=job.pk).update(result_expires_at=timezone.now() - timedelta(seconds=1))
    job.refresh_from_db()

    job.wait_for_storage(disk.StorageFull("the disk is full"))

    assert job.status == S.FAILED
    assert job.failure_kind == VideoJob.FailureKind.DOWNLOAD


def test_storage_full_is_known_through_the_exceptions_that_wrap_it():
    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError as exc:
            raise RuntimeError("write failed") from exc
    except RuntimeError as wrapped:
        assert disk.is_full(wrapped)
    assert not disk.is_full(OSError(5, "Input/output error"))


def test_healthz_reports_storage_below_the_threshold(db, settings):
    settings.SORAWEB_MIN_FREE_DISK_MB = 10**9
    check = Client().get("/healthz").json()["checks"]["storage"]
    assert check["ok"] is False
    assert "Storage is nearly full" in check["detail"]


def test_healthz_storage_passes_with_room(db, settings):
    settings.SORAWEB_MIN_FREE_DISK_MB = 1
    assert Client().get("/healthz").json()["checks"]["storage"]["ok"] is True


def test_new_submissions_are_refused_while_storage_is_short(db, alice, settings, submitted):
    settings.SORAWEB_MIN_FREE_DISK_MB = 10**9
    with pytest.raises(submission.LimitReached, match="storage is nearly full"):
        submission.submit(alice, lambda: make_job(alice))
    assert not VideoJob.objects.exists()
    submitted.assert_not_called()


def test_the_gallery_tells_staff_not_others_that_storage_is_full(db, alice, staff, settings, client):
    settings.SORAWEB_MIN_FREE_DISK_MB = 10**9
    client.force_login(staff)
    assert "Storage is nearly full" in client.get("/").content.decode()
    client.force_login(alice)
    assert "Storage is nearly full" not in client.get("/").content.decode()


# --- Retention -------------------------------------------------------------------


def finished(owner, days_ago, media_root, **fields):
    job = make_job(
        owner, status=S.SUCCEEDED, completed_at=timezone.now() - timedelta(days=days_ago), **fields
    )
    for field, name in (("video", f"videos/job-{job.pk}.mp4"), ("poster", f"posters/job-{job.pk}.jpg")):
        (media_root / name).parent.mkdir(parents=True, exist_ok=True)
        (media_root / name).write_bytes(b"x" * 100)
        setattr(job, field, name)
    job.stored_bytes = 200
    job.save()
    return job


def test_retention_keeps_everything_by_default(db, alice, media):
    finished(alice, 400, media)
    assert retention.remove_expired() == 0


def test_retention_removes_old_files_but_keeps_the_row_and_says_so(db, alice, media, settings):
    settings.SORAWEB_KEEP_VIDEOS_DAYS = 30
    old = finished(alice, 31, media, cost="0.40")
    young = finished(alice, 29, media)

    assert retention.remove_expired() == 1

    old.refresh_from_db()
    assert (old.status, old.video.name, old.poster.name, str(old.cost)) == (S.SUCCEEDED, "", "", "0.4000")
    assert old.files_removed_at is not None
    assert "removed after 30 days" in old.history[-1]["what"]
    assert not (media / f"videos/job-{old.pk}.mp4").exists()
    assert (media / f"videos/job-{young.pk}.mp4").exists()


def test_retention_spares_kept_videos_and_what_an_app_exempts(db, alice, media, settings):
    settings.SORAWEB_KEEP_VIDEOS_DAYS = 30
    kept = finished(alice, 90, media, kept=True)
    starred = finished(alice, 90, media, prompt="starred")
    retention.exempt_when(lambda: __import__("django.db.models").db.models.Q(prompt="starred"))
    try:
        assert retention.remove_expired() == 0
    finally:
        retention._exemptions.clear()
    assert VideoJob.objects.filter(pk__in=[kept.pk, starred.pk], files_removed_at__isnull=True).count() == 2


def test_a_card_says_when_its_video_will_be_removed(db, alice, media, settings, client):
    settings.SORAWEB_KEEP_VIDEOS_DAYS = 30
    soon = finished(alice, 27, media, prompt="going soon")
    later = finished(alice, 1, media, prompt="here a while")
    client.force_login(alice)
    page = client.get("/").content.decode()
    card = lambda job: page[page.index(f'id="job-{job.pk}"') :].split("</article>")[0]  # noqa: E731
    assert "Video removed in 2\xa0days" in card(soon)
    assert "Video removed" not in card(later)


def test_staff_see_storage_per_person(db, alice, bob, staff, media, client):
    finished(alice, 1, media)
    finished(alice, 1, media)
    finished(bob, 1, media)
    client.force_login(staff)
    page = client.get(reverse("ops:storage")).content.decode()
    assert "<td>alice</td><td>2</td><td>400\xa0bytes</td>" in page
    assert "<td>bob</td><td>1</td><td>200\xa0bytes</td>" in page
    assert "<td>3</td><td>600\xa0bytes</td>" in page
    client.force_login(alice)
    assert client.get(reverse("ops:storage")).status_code == 403


# --- Backup and restore ----------------------------------------------------------


@sqlite_only
def test_backup_then_restore_onto_an_empty_folder_brings_back_rows_files_and_key(
    transactional_db, alice, media, tmp_path
):
    done = finished(alice, 1, media)
    make_job(alice, status=S.QUEUED, upstream_id="up-2", lease_token="held")
    key = Path(connection.settings_dict["NAME"]).parent / "secret_key"
    archive, manifest = backups.backup(tmp_path)

    assert manifest["jobs"] == {"queued": 1, "succeeded": 1}
    assert manifest["secret_key"] is key.exists()
    target = tmp_path / "new"
    restored = backups.restore(archive, target_db=target / "db.sqlite3", media_root=target / "media")

    assert restored["released"] == 1
    with closing(sqlite3.connect(target / "db.sqlite3")) as db, db:
        rows = dict(db.execute("SELECT status, lease_token FROM jobs_videojob").fetchall())
    assert rows == {"succeeded": "", "queued": ""}
    assert (target / "media" / done.video.name).read_bytes() == b"x" * 100
    if key.exists():
        assert (target / "secret_key").read_text() == key.read_text()


@sqlite_only
def test_restore_refuses_a_folder_that_already_holds_data(transactional_db, alice, media, tmp_path):
    finished(alice, 1, media)
    archive, _ = backups.backup(tmp_path)
    target = tmp_path / "used"
    (target / "media").mkdir(parents=True)
    (target / "media" / "old.mp4").write_bytes(b"mine")

    with pytest.raises(backups.BackupError, match="only writes onto an empty data folder"):
        backups.restore(archive, target_db=target / "db.sqlite3", media_root=target / "media")
    assert (target / "media" / "old.mp4").read_bytes() == b"mine"
    assert not (target / "db.sqlite3").exists()


def test_restore_refuses_an_archive_naming_paths_outside_its_folders(db, tmp_path):
    archive = tmp_path / "evil.tar.gz"
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"format": 1, "jobs": {}}')
    (tmp_path / "payload").write_text("x")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(manifest, "manifest.json")
        tar.add(tmp_path / "payload", "media/../../escaped")
    target = tmp_path / "new"

    with pytest.raises(backups.BackupError, match="outside its own folders"):
        backups.restore(archive, target_db=target / "db.sqlite3", media_root=target / "media")
    assert not (tmp_path / "escaped").exists()


# --- The SQLite database locked or read-only: a plain 503 ---------------------------


def assert_plain_503(response):
    body = response.content.decode()
    assert response.status_code == 503
    assert "Back in a moment" in body
    assert "Traceback" not in body and "OperationalError" not in body and "sqlite" not in body.lower()
    assert response["Retry-After"] == "30"


@pytest.fixture
def short_busy_timeout():
    options = connection.settings_dict["OPTIONS"]
    saved = options.get("timeout")
    options["timeout"] = 0.5
    connection.close()
    yield
    options["timeout"] = saved
    connection.close()


@sqlite_only
def test_a_locked_database_answers_503_and_loses_nothing(transactional_db, alice, short_busy_timeout):
    job = make_job(alice, prompt="kept through the lock")
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    connection.close()
    holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    # Exclusive locking mode plus a write: even readers wait, past the busy timeout.
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("UPDATE jobs_videojob SET prompt = prompt")
    try:
        assert_plain_503(client.get("/"))
        assert_plain_503(client.get(f"/jobs/{job.pk}/"))
    finally:
        holder.execute("COMMIT")
        holder.close()
    connection.close()
    assert client.get("/").status_code == 200
    assert VideoJob.objects.get(pk=job.pk).prompt == "kept through the lock"


@sqlite_only
def test_a_read_only_database_answers_503_and_loses_nothing(transactional_db, alice, tmp_path, settings):
    make_job(alice, prompt="kept while read-only")
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    source = Path(connection.settings_dict["NAME"])
    readonly = tmp_path / "ro"
    readonly.mkdir()
    with (
        closing(sqlite3.connect(source)) as db,
        db,
        closing(sqlite3.connect(tmp_path / "db.sqlite3")) as copy,
        copy,
    ):
        db.backup(copy)
    subprocess.run(["mount", "--bind", str(tmp_path), str(readonly)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(readonly)], check=True)
        connection.close()
        connection.settings_dict["NAME"] = str(readonly / "db.sqlite3")
        response = client.post(reverse("jobs:create"), {"prompt": "a new one", "model": "openAiSora2Plus"})
        assert_plain_503(response)
    finally:
        connection.close()
        connection.settings_dict["NAME"] = str(source)
        subprocess.run(["umount", "-l", str(readonly)], check=False)
    with closing(sqlite3.connect(tmp_path / "db.sqlite3")) as copy, copy:
        assert copy.execute("SELECT prompt FROM jobs_videojob").fetchall() == [("kept while read-only",)]


@sqlite_only
def test_a_create_answer_that_meets_a_locked_database_is_written_once_it_frees(
    transactional_db, alice, monkeypatch, settings, short_busy_timeout
):
    settings.SORA_API_BASE_URL = "https://gateway.test"
    gateway = FakeGateway(monkeypatch).reply(answer(json={"id": "sora-2:t1", "status": "queued"}))
    job = make_job(alice)
    holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None, check_same_thread=False)
    answered = gateway.__call__

    def answer_then_lock(*args, **kwargs):
        # The gateway answers; the database is taken away for a moment before we can write it.
        reply = answered(*args, **kwargs)
        connection.close()
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("UPDATE jobs_videojob SET prompt = prompt")
        threading.Timer(2, lambda: (holder.execute("COMMIT"), holder.close())).start()
        return reply

    monkeypatch.setattr("jobs.upstream.requests.request", answer_then_lock)

    tasks.submit_job(job.pk)

    job.refresh_from_db()
    assert (job.status, job.upstream_id) == (S.QUEUED, "sora-2:t1")
    assert len(gateway.calls) == 1


def test_a_submission_while_the_broker_is_down_is_saved_and_says_so_without_an_error(
    db, alice, client, submitted, django_capture_on_commit_callbacks
):
    submitted.side_effect = redis.exceptions.ConnectionError("Connection closed by server.")
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("jobs:create"),
            {
                "prompt": "sent while Redis restarts",
                "model": "openAiSora2Plus",
                "aspect_ratio": "16:9",
                "duration": 4,
            },
        )
    assert response.status_code == 302
    job = VideoJob.objects.get()
    assert (job.prompt, job.status) == ("sent while Redis restarts", S.PENDING)
    submitted.assert_called_once_with(job.pk)
