"""Fixtures. Integration fixtures start real services: Celery worker and beat
processes on the suite's Redis, and the gateway simulator over HTTP."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
from django.db import connection

from tests.helpers import ROOT, S3Bucket, free_port

# The lanes: `pytest -m "not slow"` (make check) runs what needs no process, browser or
# server of its own. A test using one of these fixtures must say so with a marker, or
# collection stops: the fast lane must not quietly grow slow, nor lose coverage to it.
SLOW_FIXTURES = {"live_server", "processes", "stack", "studio", "browser", "simulator", "s3"}
# A crawl needs no process, but walks every URL as every actor: minutes, not seconds.
SLOW_MARKERS = ("slow", "integration", "browser", "crawl")


def pytest_collection_modifyitems(config, items):
    unmarked = []
    for item in items:
        if any(item.get_closest_marker(name) for name in SLOW_MARKERS):
            item.add_marker(pytest.mark.slow)
        elif used := sorted(SLOW_FIXTURES.intersection(item.fixturenames)):
            unmarked.append(f"  {item.nodeid} uses {', '.join(used)}")
    if unmarked:
        raise pytest.UsageError(
            "these tests start processes, a server or a browser but are not marked "
            "integration, browser or slow:\n" + "\n".join(unmarked)
        )
    # Slow tests first (order otherwise kept): xdist hands them out while both processes
    # are free, and the many short tests fill in at the end instead of one long test
    # finishing alone.
    items.sort(key=lambda item: not item.get_closest_marker("slow"))


@pytest.fixture(autouse=True)
def fast_password_hashing(request, settings):
    # The default hasher costs ~0.5 s per user here; unit tests make many. Not for
    # integration tests: the processes they start must check the same hashes.
    if not request.node.get_closest_marker("integration"):
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def media(settings, tmp_path):
    """Files stored by in-process code go to a folder of this test's own."""
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def submitted():
    """The submit doorbell, caught instead of sent to the broker: "no call" is this never ringing."""
    with mock.patch("jobs.tasks.submit_job.delay") as delay:
        yield delay


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-password-1")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="bob-password-1")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser("staff", password="staff-password-1")


@pytest.fixture(scope="session")
def simulator():
    from simulator import Simulator

    sim = Simulator(generation_seconds=3).start()
    yield sim
    sim.stop()


@pytest.fixture
def sim(simulator):
    """The session's simulator, with its tasks, log and faults cleared."""
    simulator.reset()
    return simulator


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API over HTTP on a free port (moto's server mode); nothing below boto3 is faked."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # A line per request otherwise.
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(s3_server):
    """A bucket of this test's own; .env is what an operator would set for it."""
    bucket = S3Bucket(s3_server)
    yield bucket
    bucket.empty()


def database_url():
    """The URL of the database this test run uses, for processes we start."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{user}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


def service_env(simulator, **overrides):
    """The environment for worker, beat and web processes in integration tests."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="soraweb.settings",
        DATABASE_URL=database_url(),
        SORA_API_BASE_URL=simulator.url,
        SORA_TRUSTED_PRIVATE_HOSTS=simulator.url.removeprefix("http://"),
        SORA_POLL_INTERVAL="1",
        SORA_SWEEP_INTERVAL="1",
        SORA_READ_TIMEOUT="5",
        SORA_DOWNLOAD_TIMEOUT="60",
        LOG_LEVEL="INFO",
    )
    env.update({key: str(value) for key, value in overrides.items()})
    return env


class Processes:
    """Worker, beat and web processes started for one test, stopped after it."""

    def __init__(self, env, log_dir):
        self.env = env
        self.log_dir = log_dir
        self.started = []

    def start(self, name, *args):
        log_path = self.log_dir / f"{name}-{len(self.started)}.log"
        with open(log_path, "wb") as log:  # The child keeps its own copy of the descriptor.
            proc = subprocess.Popen(
                [*args], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        proc.log_path = log_path
        self.started.append(proc)
        return proc

    def worker(self, concurrency=4, name="worker"):
        celery = [sys.executable, "-m", "celery", "-A", "soraweb"]
        return self.start(
            name, *celery, "worker", "--loglevel=INFO", f"--concurrency={concurrency}",
            "--without-gossip", "--without-mingle", f"--hostname={name}-{len(self.started)}@%h",
        )  # fmt: skip

    def beat(self):
        schedule = self.log_dir / f"beat-schedule-{len(self.started)}"
        celery = [sys.executable, "-m", "celery", "-A", "soraweb"]
        return self.start("beat", *celery, "beat", "--loglevel=INFO", f"--schedule={schedule}")

    def stop_all(self):
        for proc in self.started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.started:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def logs(self):
        return "\n".join(f"--- {p.log_path}\n{Path(p.log_path).read_text()[-3000:]}" for p in self.started)


@pytest.fixture
def processes(transactional_db, simulator, tmp_path):
    """Start real service processes against the test database; all stopped at the end."""
    procs = Processes(service_env(simulator), tmp_path)
    yield procs
    procs.stop_all()


@pytest.fixture
def stack(processes):
    """One worker (concurrency 4) and beat, as a small team server runs them."""
    processes.worker()
    processes.beat()
    return processes


# --- The browser: Debian's chromium driven by Playwright (it never downloads one) ---

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: make test installs it (.ci/ensure-chromium)")
    # Playwright's sync API runs an event loop in this thread; the ORM must still work.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                "--disable-background-networking", "--disable-component-update",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )  # fmt: skip
        yield browser
        browser.close()


@pytest.fixture
def studio(processes, live_server):
    """A worker and beat behind the live server, so pages show real progress."""
    processes.env["PUBLIC_BASE_URL"] = live_server.url
    processes.worker(concurrency=2)
    processes.beat()
    return live_server


@pytest.fixture
def page(browser, live_server):
    """A fresh browser tab on the live server; it records console errors."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    tab.console_errors = []
    tab.on("console", lambda message: message.type == "error" and tab.console_errors.append(message.text))
    tab.on("pageerror", lambda error: tab.console_errors.append(str(error)))
    yield tab
    context.close()
