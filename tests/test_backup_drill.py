"""The restore drill: back up while the worker runs, wipe, restore elsewhere, start again.

Every finished video plays from the restored folder, the jobs that were in progress
finish, and no job's create call is made twice (the simulator's log says so).
"""

import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest
from django.conf import settings

from jobs import media
from jobs.models import VideoJob
from jobs.tasks import submit_job
from simulator import CREATE_PATHS
from tests.helpers import ROOT, wait_for

pytestmark = [pytest.mark.integration]

S = VideoJob.Status


def manage(env, *args):
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"),
    reason="backs up the embedded SQLite default; PostgreSQL is backed up with pg_dump (docs/deploy.md)",
)
def test_a_backup_taken_while_the_worker_runs_restores_and_carries_on(
    processes, sim, alice, settings, tmp_path
):
    first_media = tmp_path / "media-first"
    settings.MEDIA_ROOT = first_media
    processes.env.update(MEDIA_ROOT=str(first_media), REDIS_URL=settings.CELERY_BROKER_URL)
    processes.worker()
    processes.beat()

    def job(prompt):
        made = VideoJob.objects.create(owner=alice, prompt=prompt, duration=4)
        submit_job.delay(made.pk)
        return made

    finished = [job(f"finished before the backup {i}") for i in range(3)]
    failed = job("refused before the backup [sim:moderation]")
    statuses = lambda jobs: [VideoJob.objects.get(pk=j.pk).status for j in jobs]  # noqa: E731
    wait_for(lambda: set(statuses([*finished, failed])) == {S.SUCCEEDED, S.FAILED}, 90, message="first jobs")
    sim.configure(generation_seconds=15)
    running = [job(f"in progress at the backup {i}") for i in range(3)]
    wait_for(lambda: all(s in VideoJob.POLLING for s in statuses(running)), 30, message="jobs in progress")

    archive = tmp_path / "backup.tar.gz"
    manage(processes.env, "backup", str(archive))
    processes.stop_all()

    # A new machine: an empty data folder, the backup, the same broker and gateway.
    fresh = tmp_path / "restored"
    fresh.mkdir()
    env = {
        **processes.env,
        "DATA_DIR": str(fresh),
        "DATABASE_URL": f"sqlite:///{fresh / 'db.sqlite3'}",
        "MEDIA_ROOT": str(fresh / "media"),
    }
    manage(env, "restore", str(archive))
    processes.env = env
    processes.worker()
    processes.beat()

    def rows():
        with closing(sqlite3.connect(fresh / "db.sqlite3")) as db, db:
            return db.execute("SELECT prompt, status, video FROM jobs_videojob").fetchall()

    wait_for(lambda: all(status in VideoJob.FINAL for _, status, _ in rows()), 120, message="all final")
    outcome = {prompt: (status, video) for prompt, status, video in rows()}
    assert [outcome[j.prompt][0] for j in finished + running] == [S.SUCCEEDED] * 6, outcome
    assert outcome[failed.prompt][0] == S.FAILED
    for prompt in [j.prompt for j in finished + running]:
        stored = fresh / "media" / outcome[prompt][1]
        assert media.probe(stored).get("duration", 0) > 3, f"{prompt}: {stored} does not play"
    creates = [entry["prompt"] for entry in sim.requests_log() if entry["path"] in CREATE_PATHS]
    assert sorted(creates) == sorted(j.prompt for j in [*finished, failed, *running]), creates
