"""Every studio page passes axe-core in chromium, works with a keyboard alone, and stays light."""

import functools
import subprocess
import tempfile
from pathlib import Path

import imageio_ffmpeg
import pytest
from axe_playwright_python.sync_playwright import Axe
from django.core.files.base import ContentFile
from django.utils import timezone

from jobs import media
from jobs.models import VideoJob
from tests.conftest import sign_in
from tests.factories import make_job, tiny_mp4

pytestmark = [pytest.mark.integration, pytest.mark.browser]
Status = VideoJob.Status


def assert_no_axe_violations(page):
    """axe-core's default rules (WCAG 2 A/AA and best practices) on the page as it is now."""
    results = Axe().run(page)
    violations = results.response["violations"]
    report = [
        f"{v['id']} ({v['impact']}): {[node['target'] for node in v['nodes']]} {v['help']}"
        for v in violations
    ]
    assert not violations, f"{page.url}:\n" + "\n".join(report)


@functools.cache
def poster_source(width, height):
    """A real first frame at the simulator's sizes, made once: posters as the pipeline makes them."""
    with tempfile.TemporaryDirectory() as folder:
        video = Path(folder) / "source.mp4"
        poster = Path(folder) / "poster.jpg"
        subprocess.run(
            [
                imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
                "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=24:duration=2",
                "-pix_fmt", "yuv420p", str(video),
            ],
            check=True,
            timeout=60,
        )  # fmt: skip
        media.make_poster(video, poster, 2.0)
        return poster.read_bytes()


def ready_job(owner, aspect_ratio="16:9", **fields):
    job = make_job(owner, aspect_ratio=aspect_ratio, status=Status.SUCCEEDED, duration=4, **fields)
    job.video.save(f"job-{job.pk}.mp4", ContentFile(tiny_mp4()), save=False)
    size = (1280, 720) if aspect_ratio == "16:9" else (720, 1280)
    job.poster.save(f"job-{job.pk}.jpg", ContentFile(poster_source(*size)), save=False)
    job.completed_at = timezone.now()
    job.save()
    media.make_image_sizes(job)
    return job


@pytest.fixture
def full_gallery(alice):
    """Ready, in-progress and failed cards, in both orientations."""
    ready = [ready_job(alice), ready_job(alice, aspect_ratio="9:16")]
    make_job(alice, status=Status.PROCESSING, submitted_at=timezone.now())
    make_job(alice, status=Status.FAILED, failure_kind="moderation", error="Refused.")
    make_job(alice, status=Status.UNKNOWN)
    make_job(alice, status=Status.CANCELLED)
    return ready


# --- axe on every page -------------------------------------------------------------


def test_the_first_run_page_has_no_axe_violations(page):
    page.goto("/setup/")
    assert_no_axe_violations(page)


def test_the_sign_in_page_has_no_axe_violations(page, alice):
    page.goto("/accounts/login/")
    assert_no_axe_violations(page)


def test_the_lockout_page_has_no_axe_violations(page, alice, settings):
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(2):
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill("not-her-password")
        page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Too many failed sign-in attempts").wait_for()
    assert_no_axe_violations(page)


def test_the_empty_gallery_has_no_axe_violations(page, alice):
    sign_in(page, "alice", "alice-password-1")
    assert_no_axe_violations(page)


def test_the_full_gallery_and_its_messages_have_no_axe_violations(page, alice, full_gallery):
    cancelled = VideoJob.objects.get(status=Status.CANCELLED)
    sign_in(page, "alice", "alice-password-1")
    page.goto(f"/jobs/{cancelled.pk}/delete/")
    page.get_by_role("button", name="Delete for good").click()
    page.get_by_text("The job and its files were deleted.").wait_for()
    assert page.locator(".card").count() == 5
    assert_no_axe_violations(page)


def test_the_form_and_its_errors_have_no_axe_violations(page, alice):
    sign_in(page, "alice", "alice-password-1")
    page.goto("/new/")
    assert_no_axe_violations(page)
    page.get_by_role("button", name="Generate video").click()
    page.get_by_role("alert").first.wait_for()
    assert_no_axe_violations(page)


def test_the_video_page_and_delete_confirmation_have_no_axe_violations(page, alice):
    job = ready_job(alice)
    job.reference_image.save("ref.jpg", ContentFile(poster_source(1280, 720)), save=True)
    sign_in(page, "alice", "alice-password-1")
    page.goto(f"/jobs/{job.pk}/")
    assert_no_axe_violations(page)
    page.goto(f"/jobs/{job.pk}/delete/")
    assert_no_axe_violations(page)


def test_the_not_found_and_forbidden_pages_have_no_axe_violations(page, alice, bob):
    job = make_job(alice, status=Status.FAILED)
    sign_in(page, "bob", "bob-password-1")
    page.goto(f"/jobs/{job.pk}/delete/")
    assert_no_axe_violations(page)
    page.goto("/jobs/999999/")
    assert_no_axe_violations(page)


# --- Light pages ---------------------------------------------------------------------


def transferred_bytes(page, path):
    """Bytes over the wire (bodies and headers) to load path and every image in it."""
    requests = []
    page.on("requestfinished", lambda request: requests.append(request))
    page.goto(path)
    page.mouse.wheel(0, 20_000)  # Lazy images below the fold count too.
    page.wait_for_load_state("networkidle")
    sizes = [request.sizes() for request in requests]
    return sum(size["responseBodySize"] + size["responseHeadersSize"] for size in sizes), len(sizes)


def test_a_desktop_gallery_of_24_ready_cards_transfers_under_300_kib(page, alice):
    for number in range(24):
        ready_job(alice, aspect_ratio="16:9" if number % 2 else "9:16", prompt=f"Scene {number}")
    sign_in(page, "alice", "alice-password-1")

    total, count = transferred_bytes(page, "/")

    print(f"\ngallery of 24 ready cards: {total / 1024:.0f} KiB in {count} responses")
    assert page.locator(".card img").count() == 24
    assert total < 300 * 1024
