"""Media on S3 over real HTTP (moto's server mode): the pipeline stores the video, poster and
reference image in the bucket, browsers play and seek from signed URLs, deletion empties it,
and a killed upload never shows half a video under its key. Nothing below boto3 is faked."""

import json
import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
import requests
from django.urls import reverse

from jobs import media
from jobs.models import VideoJob
from tests.factories import image_bytes
from tests.helpers import ROOT, free_port, gunicorn, sign_in, wait_for

pytestmark = [pytest.mark.integration]


def s3_storage(bucket):
    """The STORAGES entry the settings make from bucket.env (for code run in this process)."""
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket.name,
            "endpoint_url": bucket.endpoint,
            "region_name": "us-east-1",
            "access_key": bucket.access_key,
            "secret_key": bucket.secret_key,
            "querystring_auth": True,
            "signature_version": "s3v4",
            "file_overwrite": False,
        },
    }


def test_a_worker_killed_mid_upload_leaves_no_object_and_the_sweep_clears_its_parts(s3, settings, tmp_path):
    env = {**os.environ, **s3.env, "DATA_DIR": str(tmp_path)}
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.s3_upload_child", "300", "videos/killed.mp4"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: _parts_sent(s3), timeout=60, message="the first parts to arrive")
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()

    assert "videos/killed.mp4" not in s3.object_keys()
    assert [upload["Key"] for upload in s3.unfinished_uploads()] == ["videos/killed.mp4"]

    settings.STORAGES = {**settings.STORAGES, "default": s3_storage(s3)}
    # (moto reports every upload as started in 2010, so the age cannot be tested here.)
    assert media.abort_stale_uploads(older_than=timedelta(0)) == 1
    assert s3.unfinished_uploads() == []
    assert s3.object_keys() == []


def _parts_sent(bucket):
    for upload in bucket.unfinished_uploads():
        parts = bucket.client.list_parts(Bucket=bucket.name, Key=upload["Key"], UploadId=upload["UploadId"])
        if parts.get("Parts"):
            return True
    return False


def test_a_reference_goes_to_the_gateway_as_a_presigned_bucket_link(s3, settings, alice):
    settings.STORAGES = {**settings.STORAGES, "default": s3_storage(s3)}
    settings.S3_BUCKET, settings.PUBLIC_BASE_URL = s3.name, ""
    from django.core.files.base import ContentFile

    job = VideoJob.objects.create(owner=alice, prompt="a kite")
    job.reference_image.save("ref.png", ContentFile(image_bytes(1280, 720)))

    link = media.reference_url(job)

    assert link.startswith(f"{s3.endpoint}/{s3.name}/")
    assert "X-Amz-Signature=" in link and "X-Amz-Expires=86400" in link
    assert s3.secret_key not in link
    assert requests.get(link, timeout=10).content == image_bytes(1280, 720)


@pytest.mark.browser
def test_a_video_on_s3_plays_and_seeks_in_chromium_and_deleting_it_empties_the_bucket(
    processes, sim, s3, browser, alice, tmp_path
):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # No PUBLIC_BASE_URL: the gateway gets the reference from the bucket.
    processes.env.update(s3.env, PUBLIC_BASE_URL="", ALLOWED_HOSTS="127.0.0.1")
    gunicorn(processes, port)
    processes.worker(concurrency=2)
    processes.beat()
    context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors, from_bucket = [], []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("response", lambda r: r.url.startswith(s3.endpoint) and from_bucket.append((r.url, r.status)))
    reference = tmp_path / "wide.png"
    reference.write_bytes(image_bytes(1280, 720))
    sign_in(page, "alice", "alice-password-1")
    page.goto("/new/")
    page.get_by_label("Prompt").fill("A lighthouse at dusk, from the bucket")
    page.get_by_label("Reference image").set_input_files(str(reference))
    page.get_by_role("button", name="Generate video").click()
    page.wait_for_url("**/")
    job = wait_for(lambda: VideoJob.objects.filter(status__in=VideoJob.FINAL).first(), timeout=120,
                   message="the job to finish")  # fmt: skip
    assert job.status == "succeeded", processes.logs()

    stored = s3.object_keys()
    assert {job.video.name, job.poster.name, job.reference_image.name} <= set(stored)
    assert s3.client.head_object(Bucket=s3.name, Key=job.video.name)["ContentType"] == "video/mp4"
    [create] = sim.create_calls()
    assert create["body"]["input_reference"][0].startswith(s3.endpoint)

    page.goto(f"/jobs/{job.pk}/")
    video = page.locator("video")
    video.evaluate(
        "v => new Promise(done => v.readyState >= 1 ? done() : v.addEventListener('loadedmetadata', done))"
    )
    video.evaluate("v => { v.muted = true; return v.play(); }")
    wait_for(lambda: video.evaluate("v => v.currentTime") > 0.2, timeout=15, message="the video to play")
    seeked = video.evaluate(
        "v => new Promise(done => { v.addEventListener('seeked', () => done(v.currentTime), {once: true});"
        " v.currentTime = 3; })"
    )
    assert seeked == pytest.approx(3, abs=0.2)
    # The browser fetched the video from the bucket itself, in ranges.
    video_url = f"{s3.endpoint}/{s3.name}/{job.video.name}"
    assert (video_url, 206) in [(url.split("?")[0], status) for url, status in from_bucket]
    assert errors == []  # A bucket origin missing from the CSP shows here.
    pages = [page.content()]
    for path in ("/", "/new/", reverse("jobs:delete", args=[job.pk])):
        page.goto(path)
        pages.append(page.content())

    page.get_by_role("button", name="Delete for good").click()
    page.wait_for_url(base + "/")
    context.close()

    assert s3.object_keys() == []
    everything = "\n".join(pages) + _all_logs(processes) + json.dumps(sim.requests_log())
    assert s3.secret_key not in everything


def _all_logs(processes):
    return "".join(proc.log_path.read_text() for proc in processes.started)
