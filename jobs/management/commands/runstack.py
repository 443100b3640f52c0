"""`make run`: the whole app in one command on one machine.

Starts gunicorn (web), a Celery worker, Celery beat and, in demo mode, the
gateway simulator; prints the URL; starts again any of them that exits by itself
(as compose's `restart: unless-stopped` does); stops everything on Ctrl-C or SIGTERM.
"""

import contextlib
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.request import urlopen

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from jobs import firstrun
from soraweb import embedded_redis

# Demo timings: a video "renders" in seconds rather than minutes.
DEMO_DEFAULTS = {"SORA_POLL_INTERVAL": "2", "SORA_SWEEP_INTERVAL": "2"}
DEMO = not settings.SORA_API_KEY
SIMULATOR_PORT = int(os.environ.get("SORA_SIMULATOR_PORT", "8765"))
# A child that ran this long before it exited has recovered: its next wait is 1 s again.
STEADY_SECONDS = 60
# This many quick exits in a row is a crash loop: said once, then a try every BACKOFF_CAP seconds.
CRASH_LOOP = 5
BACKOFF_CAP = 30


def restart_delay(quick_exits):
    """Seconds before starting a child again after its quick_exits-th quick exit in a row."""
    return BACKOFF_CAP if quick_exits >= CRASH_LOOP else 2 ** (quick_exits - 1)


class Command(BaseCommand):
    help = "Run web, worker, beat (and the simulator in demo mode) until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--generation-seconds", type=float, default=20.0, help="simulator render time")

    def handle(self, host, port, generation_seconds, **options):
        for busy in [port] + ([SIMULATOR_PORT] if DEMO else []):
            if _listening(busy):
                raise CommandError(f"Port {busy} is already in use: stop what uses it, or set PORT.")
        call_command("migrate", interactive=False, verbosity=0)
        # Content-hashed names (and a long cache lifetime) for static files; see STORAGES.
        call_command("collectstatic", interactive=False, verbosity=0)
        # Small poster copies for videos stored before they were made (a stat per file when done).
        call_command("make_thumbnails", verbosity=0)
        self.log_dir = Path(settings.DATA_DIR) / "logs"
        self.log_dir.mkdir(exist_ok=True)
        self.env = {**os.environ, "PORT": str(port)}
        if DEMO:
            self.env.update(demo_env(host, port))
        if settings.SORAWEB_EMBEDDED_REDIS:
            embedded_redis.ensure_running(settings.DATA_DIR)
        self.children = {}
        self.commands = {}  # What start() ran for each child, to run it again.
        self.started_at = {}
        self.quick_exits = {}  # Per child: exits in a row, each within STEADY_SECONDS of its start.
        self.restart_at = {}  # Children waiting out their backoff: when to start them again.
        # A stop request only sets this flag; the loops below look at it. A handler that
        # raised (sys.exit) could land inside stop_all itself: `make` passes its SIGTERM
        # on to runstack, so a SIGTERM to make's process group arrives twice, and the
        # second one cut stop_all short before it had stopped anything, leaving the
        # whole stack running without its parent. Now later signals are only noted.
        self.stop_requested = threading.Event()
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        self.start_watcher()
        try:
            self.start_all(host, port, generation_seconds)
            if self.wait_for_web(f"http://{host}:{port}/"):
                self.announce(host, port)
                self.watch()
        finally:
            self.stop_all()

    def request_stop(self, signum, frame):
        if self.stop_requested.is_set():
            # os.write, not self.stdout: a handler may run in the middle of another write.
            with contextlib.suppress(OSError):
                os.write(1, f"{signal.Signals(signum).name}: already stopping, please wait.\n".encode())
        self.stop_requested.set()

    def announce(self, host, port):
        mode = "demo mode: the built-in simulator plays the video service" if DEMO else ""
        self.stdout.write(self.style.SUCCESS(f"\nsoraweb is running at http://{host}:{port}/"))
        if code := firstrun.announce():
            self.stdout.write(self.style.WARNING(f"First run: open it and enter the setup code {code}"))
        self.stdout.write(f"{mode}\nLogs: {self.log_dir}/  Press Ctrl-C to stop.\n")
        self.stdout.flush()  # Seen now even when stdout is a pipe (`make run | tee`, tests).

    def start_watcher(self):
        """A process that stops the stack if runstack itself dies without doing it (kill -9)."""
        pidfile = str(Path(settings.DATA_DIR) / "redis.pid") if settings.SORAWEB_EMBEDDED_REDIS else ""
        self.watcher = subprocess.Popen(
            [sys.executable, "-m", "jobs.stackwatch", pidfile], cwd=settings.BASE_DIR,
            stdin=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip

    def tell_watcher(self, line):
        with contextlib.suppress(OSError):
            self.watcher.stdin.write(f"{line}\n".encode())
            self.watcher.stdin.flush()

    def start_all(self, host, port, generation_seconds):
        celery = [sys.executable, "-m", "celery", "-A", "soraweb"]
        if DEMO:
            self.start(
                "simulator", sys.executable, "-m", "simulator", f"--port={SIMULATOR_PORT}",
                f"--api-key={self.env['SORA_API_KEY']}", f"--generation-seconds={generation_seconds}",
            )  # fmt: skip
        self.start("worker", *celery, "worker", "--loglevel=INFO", "--concurrency=2", "--without-gossip")
        self.start("beat", *celery, "beat", "--loglevel=INFO", f"--schedule={self.log_dir / 'beat-schedule'}")
        self.start(
            "web", sys.executable, "-m", "gunicorn", "soraweb.wsgi:application", f"--bind={host}:{port}",
            "--workers=2", "--threads=4", "--timeout=120", "--access-logfile=-",
        )  # fmt: skip

    def start(self, name, *command):
        if self.stop_requested.is_set():
            return
        with open(self.log_dir / f"{name}.log", "ab") as log:
            self.children[name] = subprocess.Popen(
                command, cwd=settings.BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent(os.getpid()),
            )  # fmt: skip
        self.commands[name], self.started_at[name] = command, time.monotonic()
        self.tell_watcher(self.children[name].pid)  # Its own session: its pid is its group.
        self.stdout.write(f"started {name} (pid {self.children[name].pid})")
        self.stdout.flush()

    def wait_for_web(self, url):
        """True once web answers; False if a stop was asked for first."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.stop_requested.is_set():
                return False
            self.check_children()
            try:
                with urlopen(url, timeout=2):
                    return True
            except OSError:
                self.stop_requested.wait(0.3)
        raise CommandError(f"The web server did not answer at {url}; see {self.log_dir / 'web.log'}")

    def watch(self):
        """Until a stop is asked for, start again each child that exits by itself, after a backoff."""
        while not self.stop_requested.wait(1):
            now = time.monotonic()
            for name in [name for name, due in self.restart_at.items() if due <= now]:
                del self.restart_at[name]
                self.start(name, *self.commands[name])  # Does nothing once a stop is asked for.
            for name, child in list(self.children.items()):
                if child.poll() is not None:
                    # Reaped: its number may go to another process, which stop_all must not signal.
                    del self.children[name]
                    self.restart_at[name] = now + self.exited(name, child, now)

    def exited(self, name, child, now):
        """Clear up after a child that exited by itself; return how long to wait before starting it again."""
        # Its own children (Celery's pool, gunicorn's workers) must not outlive it and hold its work.
        _signal_group(child.pid, signal.SIGKILL)
        self.tell_watcher(f"-{child.pid}")
        quick = now - self.started_at[name] < STEADY_SECONDS
        self.quick_exits[name] = self.quick_exits.get(name, 0) + 1 if quick else 1
        delay = restart_delay(self.quick_exits[name])
        line = f"{name} exited with code {child.returncode}; restarting in {delay} s"
        self.stdout.write(self.style.WARNING(line))
        if self.quick_exits[name] == CRASH_LOOP:
            self.stdout.write(self.style.ERROR(
                f"{name} keeps crashing: {CRASH_LOOP} times in a row, each within {STEADY_SECONDS} s"
                f" of starting; see {self.log_dir / name}.log. Trying again every {BACKOFF_CAP} s"
                " until it stays up."
            ))  # fmt: skip
        self.stdout.flush()
        return delay

    def check_children(self):
        """While starting: a child that exits already is misconfigured, and a restart would not help."""
        for name, child in self.children.items():
            if child.poll() is not None:
                raise CommandError(f"{name} stopped (exit {child.returncode}); see {self.log_dir / name}.log")

    def stop_all(self):
        """Stop every child's whole process group (gunicorn's and celery's own children too)."""
        self.stop_requested.set()
        for child in self.children.values():
            _signal_group(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in self.children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(child.pid, signal.SIGKILL)
                child.wait()
            # A grandchild that outlived its parent (a stuck pool process) goes too.
            _signal_group(child.pid, signal.SIGKILL)
        if settings.SORAWEB_EMBEDDED_REDIS:
            embedded_redis.stop(settings.DATA_DIR)
        self.tell_watcher("done")
        self.stdout.write("soraweb stopped.")


def demo_env(host, port):
    """What web, worker and beat need to use the simulator as their gateway."""
    simulator = f"127.0.0.1:{SIMULATOR_PORT}"
    trusted = ",".join(filter(None, [os.environ.get("SORA_TRUSTED_PRIVATE_HOSTS"), simulator]))
    return {
        **{name: value for name, value in DEMO_DEFAULTS.items() if name not in os.environ},
        "SORA_DEMO_MODE": "true",
        # A key of this run's own: the simulator accepts only it, like the real gateway.
        "SORA_API_KEY": secrets.token_urlsafe(16),
        "SORA_API_BASE_URL": f"http://{simulator}",
        "SORA_TRUSTED_PRIVATE_HOSTS": trusted,
        "PUBLIC_BASE_URL": os.environ.get("PUBLIC_BASE_URL") or f"http://{host}:{port}",
    }


def _signal_group(pgid, sig):
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid):
    """For preexec_fn: the child gets SIGTERM when runstack dies, even by SIGKILL (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec():
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # runstack died before prctl: nobody would tell us.
            os._exit(1)

    return preexec


def _listening(port):
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0
