"""The team server's shape, proven without a Docker engine: the compose file's own
commands for web, worker and beat, run as real processes against the database and
Redis from the environment (PostgreSQL and Redis in CI), with 20 jobs pushed
through the web form."""

import re
import shlex
import socket
import sys

import pytest
import requests
import yaml
from django.urls import reverse

from jobs.models import UserLimits, VideoJob
from tests.helpers import ROOT, free_port, wait_for

pytestmark = [pytest.mark.integration]

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def command(service):
    argv = SERVICES[service].get("command", [])
    return shlex.split(argv) if isinstance(argv, str) else list(argv)


def local(argv):
    """The compose command as this machine runs it: the suite's own Python and packages."""
    program, *args = argv
    return [sys.executable, *(["-m", program] if program in ("celery", "gunicorn") else []), *args]


def test_every_service_has_a_healthcheck_and_waits_for_what_it_needs():
    for name, service in SERVICES.items():
        check = service.get("healthcheck", {})
        assert check.get("test") or check.get("disable"), f"{name} has no healthcheck"
    for name in ("web", "worker", "beat"):
        needs = SERVICES[name]["depends_on"]
        assert needs["db"]["condition"] == "service_healthy"
        assert needs["redis"]["condition"] == "service_healthy"
        assert needs["migrate"]["condition"] == "service_completed_successfully"


def test_redis_keeps_messages_and_refuses_to_evict_them():
    redis_command = " ".join(command("redis"))

    assert "--maxmemory-policy noeviction" in redis_command
    assert "--appendonly yes" in redis_command
    assert "--requirepass" in redis_command


def test_there_is_exactly_one_beat_and_a_demo_only_simulator():
    assert [name for name in SERVICES if "beat" in command(name)] == ["beat"]
    assert SERVICES["simulator"]["profiles"] == ["demo"]
    assert "deploy" not in SERVICES["beat"]  # No replicas: one scheduler only.


def test_the_env_example_documents_every_variable_the_settings_read():
    read = set(re.findall(r'env_\w+\("([A-Z0-9_]+)"', (ROOT / "soraweb/settings.py").read_text()))
    documented = set(re.findall(r"^#?\s*([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))

    assert (
        read
        - documented
        - {"DATA_DIR", "DATABASE_URL", "REDIS_URL", "MEDIA_ROOT", "MEDIA_ACCEL_PREFIX", "STATIC_ROOT"}
        == set()
    )


def health(url):
    answer = requests.get(url + "/healthz", timeout=10)
    return answer.status_code, answer.json()


def signed_in(base, username, password):
    session = requests.Session()
    login = base + reverse("login")
    session.get(login, timeout=10)
    page = session.post(
        login,
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": login},
        timeout=10,
    )
    assert page.url.rstrip("/") == base, "sign-in failed"
    return session


def test_gunicorn_two_workers_and_beat_run_twenty_jobs_from_the_web_form(processes, sim, alice):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes.env.update(PUBLIC_BASE_URL=base, ALLOWED_HOSTS="127.0.0.1,localhost")
    web = [arg if not arg.startswith("--bind=") else f"--bind=127.0.0.1:{port}" for arg in command("web")]
    processes.start("web", *local(web))
    wait_for(lambda: _answers(port), timeout=30, message="gunicorn to listen")

    status, body = health(base)
    assert status == 503 and not body["checks"]["worker"]["ok"]

    processes.start("worker-a", *local(command("worker")), "--hostname=a@%h", "--concurrency=2")
    processes.start("worker-b", *local(command("worker")), "--hostname=b@%h", "--concurrency=2")
    processes.start("beat", *local([a for a in command("beat") if not a.startswith("--schedule")]))
    wait_for(lambda: health(base)[0] == 200, timeout=60, message="/healthz to turn 200")

    # Twenty at once is past the default limit of jobs in progress: an admin lifted alice's.
    UserLimits.objects.create(user=alice, active_jobs=0)
    session = signed_in(base, "alice", "alice-password-1")
    create = base + reverse("jobs:create")
    for n in range(20):
        session.get(create, timeout=10)
        answer = session.post(
            create,
            data={
                "prompt": f"team job {n}: a kite over dunes",
                "model": VideoJob.Model.values[n % 2],
                "aspect_ratio": VideoJob.AspectRatio.values[n % 2],
                "duration": VideoJob.Duration.values[n % 3],
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            headers={"Referer": create},
            timeout=10,
        )
        assert answer.status_code == 200 and answer.url.rstrip("/") == base

    jobs = wait_for(_all_final, timeout=240, message="20 jobs to finish")
    assert [job.status for job in jobs] == ["succeeded"] * 20, processes.logs()
    stranger = requests.Session()
    for job in jobs:
        video = base + reverse("jobs:video", args=[job.pk])
        seek = session.get(video, headers={"Range": "bytes=100-199"}, timeout=10)
        assert seek.status_code == 206 and len(seek.content) == 100
        assert seek.headers["Content-Range"].startswith("bytes 100-199/")
        refused = stranger.get(video, allow_redirects=False, timeout=10)
        assert refused.status_code == 302 and "/accounts/login/" in refused.headers["Location"]
    assert {job.owner.username for job in jobs} == {"alice"}


def _answers(port):
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _all_final():
    jobs = list(VideoJob.objects.select_related("owner").order_by("pk"))
    return jobs if len(jobs) == 20 and all(job.is_final for job in jobs) else None


def test_media_paths_in_nginx_match_the_accel_prefix():
    nginx = (ROOT / "deploy/nginx.conf").read_text()
    prefix = SERVICES["web"]["environment"]["MEDIA_ACCEL_PREFIX"]

    assert f"location {prefix} {{" in nginx and "internal;" in nginx
    assert "alias /data/media/;" in nginx
