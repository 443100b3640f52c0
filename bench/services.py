"""Real service processes for the pipeline benchmarks: the simulator (in this process, so
its request log can be read directly), and Celery worker and beat processes."""

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from jobs import submission
from jobs.models import Heartbeat, VideoJob
from simulator import Simulator
from soraweb.celery import app

ROOT = Path(__file__).resolve().parent.parent
CELERY = [sys.executable, "-m", "celery", "-A", "soraweb"]


@contextmanager
def simulator(generation_seconds, video):
    """The fake gateway, its MP4 for `video` (the jobs' fields) made before any timing starts."""
    sim = Simulator(generation_seconds=generation_seconds).start()
    try:
        sim.videos.path(VideoJob(**video).size, video["duration"])
        yield sim
    finally:
        sim.stop()


@contextmanager
def stack(sim, poll_interval, sweep_interval, concurrency=4):
    """One worker and beat against this run's database and broker; stopped on exit."""
    app.control.purge()
    Heartbeat.objects.all().delete()
    log_dir = Path(settings.DATA_DIR) / "logs"
    log_dir.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "SORA_API_BASE_URL": sim.url,
        # Any key: the simulator takes every bearer token; without one the worker refuses to call.
        "SORA_API_KEY": "bench-simulator-key",
        "SORA_TRUSTED_PRIVATE_HOSTS": sim.url.removeprefix("http://"),
        "SORA_POLL_INTERVAL": str(poll_interval),
        "SORA_SWEEP_INTERVAL": str(sweep_interval),
        "SORA_READ_TIMEOUT": "5",
        "SORA_DOWNLOAD_TIMEOUT": "60",
        "LOG_LEVEL": "INFO",
    }
    worker = [*CELERY, "worker", f"--concurrency={concurrency}", "--without-gossip", "--without-mingle"]
    beat = [*CELERY, "beat", f"--schedule={log_dir / 'beat-schedule'}"]
    children = [_start(worker, env, log_dir / "worker.log"), _start(beat, env, log_dir / "beat.log")]
    try:
        _wait_until_swept(children, log_dir)
        yield
    finally:
        _stop(children)


def _start(command, env, log_path):
    with open(log_path, "ab") as log:  # The child keeps its own copy of the descriptor.
        return subprocess.Popen(
            [*command, "--loglevel=INFO"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def _wait_until_swept(children, log_dir):
    """Beat and worker are both up once a sweep has recorded its heartbeat."""

    def swept():
        if any(child.poll() is not None for child in children):
            raise RuntimeError(f"worker or beat stopped; see the logs in {log_dir}")
        return Heartbeat.age("sweep") is not None

    wait_for(swept, f"a first sweep (logs in {log_dir})", timeout=60)


def _stop(children):
    for child in children:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def submit(owner, prompts, **fields):
    """Save jobs and ring their submit doorbells, as the create form does."""
    jobs = []
    for prompt in prompts:
        jobs.append(
            submission.submit(
                owner, lambda p=prompt: VideoJob.objects.create(owner=owner, prompt=p, **fields)
            )
        )
    return jobs


def wait_for(predicate, what, timeout):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def wait_until_final(jobs, timeout):
    """The jobs' rows once all are final, or as they are at the timeout (the figures then say so)."""
    pks = [job.pk for job in jobs]
    deadline = time.monotonic() + timeout
    while True:
        rows = list(VideoJob.objects.filter(pk__in=pks))
        if all(row.is_final for row in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)
