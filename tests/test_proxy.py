"""deploy/nginx.conf, served for real: Debian's nginx, unprivileged on a free port, in front
of gunicorn with one worker and one thread (MEDIA_ACCEL_PREFIX as compose sets it). Only
the addresses in the file are changed; everything else is the file compose mounts."""

import difflib
import os
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg
import pytest
import requests
from axes.models import AccessAttempt
from django.conf import settings
from django.urls import reverse

from jobs import uploads
from jobs.images import MAX_UPLOAD_BYTES
from tests.factories import image_bytes, make_job
from tests.helpers import ROOT, free_port, gunicorn, listening, sign_in, wait_for

NGINX = "/usr/sbin/nginx"
NOBODY = 65534
CONF = (ROOT / "deploy/nginx.conf").read_text()
COMPOSE_PREFIX = "/protected-media/"


def served_config(text, *, listen, upstream, media):
    """deploy/nginx.conf with compose's addresses replaced by this machine's: nothing else."""
    replacements = [
        (r"^(\s*)listen 80;$", rf"\g<1>listen {listen};"),
        (r"^(\s*)proxy_pass http://web:8000;$", rf"\g<1>proxy_pass http://{upstream};"),
        (r"^(\s*)alias /data/media/;$", rf"\g<1>alias {media}/;"),
    ]
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert count == 1, f"deploy/nginx.conf no longer has exactly one line matching {pattern}"
    return text


def test_only_the_addresses_of_the_compose_config_are_changed():
    served = served_config(CONF, listen="127.0.0.1:8080", upstream="127.0.0.1:9000", media="/tmp/m")

    changed = [
        line for line in difflib.unified_diff(CONF.splitlines(), served.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]  # fmt: skip
    assert sorted(changed) == [
        "+        alias /tmp/m/;",
        "+        proxy_pass http://127.0.0.1:9000;",
        "+    listen 127.0.0.1:8080;",
        "-        alias /data/media/;",
        "-        proxy_pass http://web:8000;",
        "-    listen 80;",
    ]


def test_nginx_accepts_every_upload_the_app_can_answer_for_itself():
    limit = re.search(r"client_max_body_size (\d+)m;", CONF)

    # Up to nginx's limit the app reads the body and says in the form what is wrong.
    assert int(limit[1]) * 2**20 >= MAX_UPLOAD_BYTES + uploads.REQUEST_SLACK


# --- The proxy running -------------------------------------------------------------


class Proxy:
    def __init__(self, processes, tmp_path, **env):
        # Under a folder nginx may enter when it runs as nobody (pytest's tmp is root's only).
        self.root = Path(tempfile.mkdtemp(prefix="soraweb-proxy-"))
        self.root.chmod(0o755)
        self.media = self.root / "media"
        self.media.mkdir()
        web_port, port = free_port(), free_port()
        processes.env.update(
            MEDIA_ROOT=str(self.media), MEDIA_ACCEL_PREFIX=COMPOSE_PREFIX, ALLOWED_HOSTS="127.0.0.1",
            **{key: str(value) for key, value in env.items()},
        )  # fmt: skip
        # One worker, one thread: anything holding it would be seen at once.
        gunicorn(processes, web_port, "web", "--workers=1", "--threads=1")
        prefix = self.root / "nginx"
        (prefix / "logs").mkdir(parents=True)
        served = served_config(
            CONF, listen=f"127.0.0.1:{port}", upstream=f"127.0.0.1:{web_port}", media=self.media
        )
        (prefix / "default.conf").write_text(served)
        # What the nginx image's /etc/nginx/nginx.conf wraps conf.d in, with every path in tmp.
        (prefix / "nginx.conf").write_text(
            f"""
            pid {prefix}/nginx.pid;
            error_log {prefix}/logs/error.log;
            events {{ worker_connections 256; }}
            http {{
                include /etc/nginx/mime.types;
                default_type application/octet-stream;
                sendfile on;
                keepalive_timeout 65;
                access_log {prefix}/logs/access.log;
                client_body_temp_path {prefix}/body;
                proxy_temp_path {prefix}/proxy;
                fastcgi_temp_path {prefix}/fastcgi;
                uwsgi_temp_path {prefix}/uwsgi;
                scgi_temp_path {prefix}/scgi;
                include {prefix}/default.conf;
            }}
            """
        )
        unprivileged = []
        if os.geteuid() == 0:  # Never as root: as nobody, owning only its own folder.
            for path in [prefix, *prefix.rglob("*")]:
                os.chown(path, NOBODY, NOBODY)
            unprivileged = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        processes.start(
            "nginx", *unprivileged, NGINX, "-p", str(prefix), "-e", str(prefix / "logs/error.log"),
            "-c", str(prefix / "nginx.conf"), "-g", "daemon off;",
        )  # fmt: skip
        wait_for(lambda: listening(port), timeout=15, message="nginx to listen")
        self.port = port
        self.url = f"http://127.0.0.1:{port}"


@pytest.fixture
def proxy(processes, tmp_path):
    if not Path(NGINX).exists():
        pytest.skip(f"{NGINX} is missing: apt-get install nginx")
    made = []
    yield lambda **env: made.append(Proxy(processes, tmp_path, **env)) or made[-1]
    processes.stop_all()
    for site in made:
        shutil.rmtree(site.root, ignore_errors=True)


def session_for(base, username, password, **headers):
    session = requests.Session()
    session.headers.update(headers)
    login = base + reverse("login")
    session.get(login, timeout=10)
    session.post(
        login,
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": login},
        timeout=10,
    )
    return session


def four_second_video(path):
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=24:duration=4",
            "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path),
        ],
        check=True, timeout=60,
    )  # fmt: skip


@pytest.mark.integration
@pytest.mark.browser
def test_static_files_and_videos_come_from_nginx_with_ranges_and_seek_in_chromium(proxy, browser, alice):
    site = proxy()
    (site.media / "videos").mkdir()
    four_second_video(site.media / "videos/proxied.mp4")
    job = make_job(alice, status="succeeded", video="videos/proxied.mp4", duration=4)
    session = session_for(site.url, "alice", "alice-password-1")
    video = site.url + reverse("jobs:video", args=[job.pk])

    seek = session.get(video, headers={"Range": "bytes=100-199"}, timeout=10)
    css = session.get(site.url + "/static/css/app.css", timeout=10)

    assert seek.status_code == 206 and len(seek.content) == 100
    assert seek.content == (site.media / "videos/proxied.mp4").read_bytes()[100:200]
    assert seek.headers["Server"].startswith("nginx") and "X-Accel-Redirect" not in seek.headers
    assert css.status_code == 200 and ".button" in css.text
    assert requests.get(site.url + COMPOSE_PREFIX + "videos/proxied.mp4", timeout=10).status_code == 404
    assert requests.get(video, allow_redirects=False, timeout=10).status_code == 302  # Not signed in.

    # Time to the first byte of a video range through nginx (printed, never asserted).
    waits = []
    for _ in range(50):
        started = time.perf_counter()
        with session.get(video, headers={"Range": "bytes=0-1023"}, stream=True, timeout=10) as answer:
            next(answer.iter_content(1))
            waits.append(time.perf_counter() - started)
    p50 = statistics.median(waits) * 1000
    print(f"\nFIGURE time to first byte of a video range through nginx: p50 {p50:.1f} ms (n=50)")

    context = browser.new_context(base_url=site.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    sign_in(page, "alice", "alice-password-1")
    page.wait_for_url(site.url + "/")  # sign_in's pattern also matches the sign-in page itself.
    page.goto(f"/jobs/{job.pk}/")
    player = page.locator("video")
    player.evaluate(
        "v => new Promise(done => v.readyState >= 1 ? done() : v.addEventListener('loadedmetadata', done))"
    )
    seeked = player.evaluate(
        "v => new Promise(done => { v.addEventListener('seeked', () => done(v.currentTime), {once: true});"
        " v.currentTime = 3; })"
    )
    context.close()
    assert seeked == pytest.approx(3, abs=0.2)
    assert errors == []


@pytest.mark.integration
def test_uploads_up_to_nginx_limit_get_the_apps_answer_and_larger_ones_nginx_413(proxy, alice):
    site = proxy()
    session = session_for(site.url, "alice", "alice-password-1")
    create = site.url + reverse("jobs:create")
    session.get(create, timeout=10)
    form = {
        "prompt": "a kite", "model": "openAiSora2Plus", "aspect_ratio": "16:9", "duration": "4",
        "csrfmiddlewaretoken": session.cookies["csrftoken"],
    }  # fmt: skip

    def post(size):
        blob = image_bytes(1280, 720) + bytes(size)  # A PNG with trailing padding: size is what counts.
        files = {"reference_image": ("big.png", blob, "image/png")}
        return session.post(create, data=form, files=files, headers={"Referer": create}, timeout=30)

    over_the_apps_cap = post(8 * 2**20)
    over_nginx_limit = post(13 * 2**20)

    assert over_the_apps_cap.status_code == 200 and "larger than the 5 MB limit" in over_the_apps_cap.text
    assert over_nginx_limit.status_code == 413 and "nginx" in over_nginx_limit.text


@pytest.mark.integration
def test_https_said_by_the_tls_proxy_reaches_django_without_a_redirect_loop(proxy, alice):
    site = proxy(SECURE_SSL="true")

    # The TLS proxy in front says the browser used https: Django answers the page.
    via_tls = requests.get(
        site.url + reverse("login"), headers={"X-Forwarded-Proto": "https"}, allow_redirects=False, timeout=10
    )
    # Plain http straight to nginx: sent to https once.
    plain = requests.get(site.url + reverse("login"), allow_redirects=False, timeout=10)

    assert via_tls.status_code == 200
    assert "Secure" in via_tls.headers["Set-Cookie"] and "Strict-Transport-Security" in via_tls.headers
    assert plain.status_code == 301 and plain.headers["Location"].startswith("https://")


@pytest.mark.integration
def test_a_forged_forwarded_for_does_not_escape_the_sign_in_lockout(proxy, alice):
    site = proxy(SORAWEB_TRUSTED_PROXY_COUNT=1)
    for n in range(settings.AXES_FAILURE_LIMIT):
        session_for(site.url, "alice", "wrong", **{"X-Forwarded-For": f"203.0.113.{n}"})

    locked = session_for(site.url, "alice", "alice-password-1", **{"X-Forwarded-For": "198.51.100.7"})

    assert locked.get(site.url + "/", allow_redirects=False, timeout=10).status_code == 302  # Not signed in.
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1"}


@pytest.mark.integration
def test_a_slow_upload_does_not_hold_the_only_gunicorn_worker(proxy, alice):
    site = proxy()
    slow = socket.create_connection(("127.0.0.1", site.port), timeout=10)
    try:
        # With a CSRF cookie Django reads the body for the token: straight to gunicorn, this
        # request would hold its only thread until the body is whole (checked by hand).
        slow.sendall(
            b"POST /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: csrftoken=" + b"a" * 32 + b"\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\nusername="
        )
        for _ in range(3):  # A trickle; nginx holds it until the body is whole.
            slow.sendall(b"a")
            time.sleep(0.3)

        answer = requests.get(site.url + reverse("login"), timeout=10)

        assert answer.status_code == 200
    finally:
        slow.close()
