"""Plain helpers shared by test modules (fixtures live in conftest.py)."""

import secrets
import socket
import sys
import threading
import time
from pathlib import Path

from django.db import connections

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"


def wait_for(predicate, timeout=120, interval=0.25, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port, host="127.0.0.1"):
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


def gunicorn(processes, port, name="web", *options):
    """Start web as compose does (gunicorn) on 127.0.0.1:port; wait until it listens."""
    proc = processes.start(
        name, sys.executable, "-m", "gunicorn", "soraweb.wsgi:application", f"--bind=127.0.0.1:{port}",
        "--timeout=120", *(options or ("--workers=2", "--threads=4")),
    )  # fmt: skip
    wait_for(lambda: listening(port) or proc.poll() is not None, timeout=60, message=f"{name} to listen")
    assert proc.poll() is None, processes.logs()
    return proc


class S3Bucket:
    """A fresh bucket on an S3 server, with credentials of its own to look for in pages and logs."""

    def __init__(self, endpoint):
        import boto3

        self.endpoint = endpoint
        self.name = f"soraweb-{secrets.token_hex(4)}"
        self.access_key = "AKIA" + secrets.token_hex(8).upper()
        self.secret_key = "s3secret" + secrets.token_hex(16)
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )
        self.client.create_bucket(Bucket=self.name)
        self.env = {
            "S3_BUCKET": self.name,
            "S3_ENDPOINT_URL": endpoint,
            "S3_REGION": "us-east-1",
            "S3_ACCESS_KEY_ID": self.access_key,
            "S3_SECRET_ACCESS_KEY": self.secret_key,
        }

    def object_keys(self):
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def unfinished_uploads(self):
        return self.client.list_multipart_uploads(Bucket=self.name).get("Uploads", [])

    def empty(self):
        for upload in self.unfinished_uploads():
            self.client.abort_multipart_upload(
                Bucket=self.name, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        for key in self.object_keys():
            self.client.delete_object(Bucket=self.name, Key=key)


# --- In the browser -------------------------------------------------------------------


def screenshot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def sign_in(page, username, password):
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")


def assert_no_axe_violations(page):
    """axe-core's default rules (WCAG 2 A/AA and best practices) on the page as it is now."""
    # Imported here: the fast lane imports these helpers without needing the browser tools.
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    violations = results.response["violations"]
    report = [
        f"{v['id']} ({v['impact']}): {[node['target'] for node in v['nodes']]} {v['help']}"
        for v in violations
    ]
    assert not violations, f"{page.url}:\n" + "\n".join(report)


def race(submitters):
    """Run each submitter in its own thread (its own database connection), all released at once."""
    barrier = threading.Barrier(len(submitters))
    results = [None] * len(submitters)

    def run(index, submitter):
        try:
            barrier.wait()
            results[index] = submitter()
        except Exception as exc:  # Reported below, not lost in the thread.
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(n, s)) for n, s in enumerate(submitters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def user_limits_post(client, url, user, **limits):
    """The user's admin change form as posted back unchanged, with a new limits inline row."""
    form = client.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "password"}
    data |= {
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "last_login_0": "",
        "last_login_1": "",
    }
    data |= {
        "limits-TOTAL_FORMS": "1", "limits-INITIAL_FORMS": "0", "limits-MIN_NUM_FORMS": "0",
        "limits-MAX_NUM_FORMS": "1", "limits-0-user": str(user.pk),
    }  # fmt: skip
    data |= {f"limits-0-{name}": value for name, value in limits.items()}
    data.pop("groups", None)
    data.pop("user_permissions", None)
    return data
