"""Two machines that share nothing but the services: web A, web B, worker A, worker B and
one beat, each with a DATA_DIR of its own, on one PostgreSQL database, one Redis database,
one S3 bucket and the settings an operator gives every machine (docs/deploy.md, "More
machines"). Uses the machine's PostgreSQL (127.0.0.1:5432, user postgres) and Redis
(127.0.0.1:6379, database 11) and skips, saying so, when they do not answer."""

import os
import secrets
import subprocess
import sys
import time
from collections import Counter

import pytest
import requests
from django.urls import reverse

from jobs.models import VideoJob
from tests.factories import image_bytes
from tests.helpers import ROOT, free_port, gunicorn, wait_for

pytestmark = [pytest.mark.integration]

POSTGRES = "postgres://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/11"
MULTI_MACHINE_REFUSAL = "SECRET_KEY must be set, and the same, on every machine"


@pytest.fixture
def shared_services():
    """A PostgreSQL database and a Redis database of this test's own, dropped and flushed after."""
    import psycopg
    import redis

    try:
        admin = psycopg.connect(f"{POSTGRES}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL does not answer at {POSTGRES}: {exc}")
    broker = redis.Redis.from_url(REDIS, socket_connect_timeout=3)
    try:
        broker.flushdb()
    except redis.RedisError as exc:
        admin.close()
        pytest.skip(f"Redis does not answer at {REDIS}: {exc}")
    name = f"soraweb_scale_{secrets.token_hex(4)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {"DATABASE_URL": f"{POSTGRES}/{name}", "REDIS_URL": REDIS}
    finally:
        broker.flushdb()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def manage(env, *args):
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def test_a_machine_on_shared_services_without_a_secret_key_refuses_to_start(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("SECRET_KEY")}
    env.update(DATA_DIR=str(tmp_path), DATABASE_URL=f"{POSTGRES}/anything", REDIS_URL=REDIS)

    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode != 0
    assert MULTI_MACHINE_REFUSAL in result.stderr
    assert not (tmp_path / "secret_key").exists()


def test_twenty_jobs_through_two_webs_and_two_workers_sharing_only_the_services(
    processes, sim, s3, shared_services, tmp_path
):
    operator = {
        **shared_services,
        **s3.env,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "PUBLIC_BASE_URL": "",  # References reach the gateway from the bucket.
        "SORAWEB_LIMIT_ACTIVE_JOBS": "0",
    }
    common = {**processes.env, **operator}
    machine = {}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        machine[name] = {**common, "DATA_DIR": str(tmp_path / name)}
    manage(machine["a"], "migrate", "--noinput")
    manage(
        machine["a"], "shell", "-c",
        "from django.contrib.auth.models import User; "
        "User.objects.create_user('alice', password='alice-pass-1')",
    )  # fmt: skip
    web = {}
    for name in ("a", "b"):
        processes.env = machine[name]
        port = free_port()
        gunicorn(processes, port, f"web-{name}")
        processes.worker(concurrency=2, name=f"worker-{name}")
        web[name] = f"http://127.0.0.1:{port}"
    processes.env = machine["a"]
    processes.beat()

    started = time.monotonic()
    # Signed in on A; the session and the CSRF tokens A hands out are good on B.
    session = requests.Session()
    login = web["a"] + reverse("login")
    session.get(login, timeout=10)
    session.post(
        login,
        data={
            "username": "alice",
            "password": "alice-pass-1",
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": login},
        timeout=10,
    )
    for n in range(20):
        form_from, post_to = (web["a"], web["b"]) if n % 2 else (web["b"], web["a"])
        session.get(form_from + reverse("jobs:create"), timeout=10)
        files = {"reference_image": ("wide.png", image_bytes(1280, 720), "image/png")} if n % 5 == 0 else None
        answer = session.post(
            post_to + reverse("jobs:create"),
            data={
                "prompt": f"two machines, job {n}: a tram in the rain",
                "model": "openAiSora2Plus",
                "aspect_ratio": "16:9",
                "duration": "4",
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },  # fmt: skip
            files=files,
            headers={"Referer": post_to + reverse("jobs:create")},
            timeout=30,
        )
        assert answer.status_code == 200 and answer.url.rstrip("/") == post_to, answer.text[-2000:]

    jobs = wait_for(lambda: _all_final(machine["a"]), timeout=300, interval=2, message="20 jobs to finish")
    wall = time.monotonic() - started

    assert Counter(status for _, status, _, _ in jobs) == {"succeeded": 20}, processes.logs()
    creates = Counter(call["prompt"] for call in sim.create_calls())
    assert len(creates) == 20 and set(creates.values()) == {1}
    stored = set(s3.object_keys())
    for pk, _, video, reference in jobs:
        assert video in stored and (not reference or reference in stored)
        for base in web.values():  # Plays from either web: a signed URL on the bucket, with Range.
            hop = session.get(f"{base}/jobs/{pk}/video.mp4", allow_redirects=False, timeout=10)
            assert hop.status_code == 302 and hop.headers["Location"].startswith(s3.endpoint)
            seek = requests.get(hop.headers["Location"], headers={"Range": "bytes=0-99"}, timeout=10)
            assert seek.status_code == 206 and len(seek.content) == 100
    # Nothing reached a machine's own disk: every file is in the bucket.
    for name in ("a", "b"):
        assert not any((tmp_path / name / "media").rglob("*.*"))

    # A reference link signed on machine A is good on web B.
    with_reference = next(pk for pk, _, _, reference in jobs if reference)
    token = manage(
        machine["a"], "shell", "-c",
        f"from jobs import media; from jobs.models import VideoJob; "
        f"print(media.reference_token(VideoJob.objects.get(pk={with_reference})))",
    ).splitlines()[-1]  # fmt: skip
    assert requests.get(f"{web['b']}/r/{token}/", timeout=10).status_code == 200

    downloads = {name: _received(processes, f"worker-{name}", "download_job") for name in ("a", "b")}
    print(
        f"\nFIGURE two machines: 20 jobs in {wall:.1f} s wall (submit to all succeeded), "
        f"creates per job {sorted(set(creates.values()))}, download tasks received by worker A/B: "
        f"{downloads['a']}/{downloads['b']}"
    )


def _all_final(env):
    import psycopg

    with psycopg.connect(env["DATABASE_URL"]) as db:
        rows = db.execute(
            "SELECT id, status, video, reference_image FROM jobs_videojob ORDER BY id"
        ).fetchall()
    final = VideoJob.FINAL
    return rows if len(rows) == 20 and all(status in final for _, status, _, _ in rows) else None


def _received(processes, name, task):
    logs = "".join(p.log_path.read_text() for p in processes.started if p.log_path.name.startswith(name))
    return sum(1 for line in logs.splitlines() if f"jobs.tasks.{task}[" in line and "received" in line)
