"""`make run`: the whole app in one command on one machine.

Starts gunicorn (web), a Celery worker, Celery beat and, in demo mode, the
gateway simulator; prints the URL; stops everything on Ctrl-C or SIGTERM.
"""

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from soraweb import embedded_redis

# Demo timings: a video "renders" in seconds rather than minutes.
DEMO_DEFAULTS = {"SORA_POLL_INTERVAL": "2", "SORA_SWEEP_INTERVAL": "2"}
DEMO = not settings.SORA_API_KEY
SIMULATOR_PORT = int(os.environ.get("SORA_SIMULATOR_PORT", "8765"))


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
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            self.start_all(host, port, generation_seconds)
            self.wait_for_web(f"http://{host}:{port}/")
            mode = "demo mode: the built-in simulator plays the video service" if DEMO else ""
            self.stdout.write(self.style.SUCCESS(f"\nsoraweb is running at http://{host}:{port}/"))
            self.stdout.write(f"{mode}\nLogs: {self.log_dir}/  Press Ctrl-C to stop.\n")
            self.watch()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop_all()

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
        with open(self.log_dir / f"{name}.log", "ab") as log:
            self.children[name] = subprocess.Popen(
                command, cwd=settings.BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.stdout.write(f"started {name} (pid {self.children[name].pid})")

    def wait_for_web(self, url):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.check_children()
            try:
                with urlopen(url, timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise CommandError(f"The web server did not answer at {url}; see {self.log_dir / 'web.log'}")

    def watch(self):
        while True:
            self.check_children()
            time.sleep(1)

    def check_children(self):
        for name, child in self.children.items():
            if child.poll() is not None:
                raise CommandError(f"{name} stopped (exit {child.returncode}); see {self.log_dir / name}.log")

    def stop_all(self):
        for child in self.children.values():
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in self.children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
        if settings.SORAWEB_EMBEDDED_REDIS:
            embedded_redis.stop(settings.DATA_DIR)
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


def _listening(port):
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0
