"""Every studio page passes axe-core in chromium, works with a keyboard alone, and stays light."""

import functools
import gzip
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import imageio_ffmpeg
import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from jobs import media
from jobs.models import VideoJob
from tests.factories import make_job, tiny_mp4
from tests.helpers import assert_no_axe_violations, screenshot, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.browser]
Status = VideoJob.Status


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
    screenshot(page, "gallery-with-message")
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
    """Bytes over the wire (bodies and headers) for a first visit to path, by kind: page, static, images.

    Text (the page, CSS, JS) is counted gzip-compressed, as a deployment sends it: nginx gzips
    pages and WhiteNoise serves the compressed copies collectstatic makes. The test server
    sends both plain, so their bodies are compressed here (level 6, nginx's and WhiteNoise's).
    """
    page.goto("about:blank")
    browser_tools = page.context.new_cdp_session(page)
    browser_tools.send("Network.enable")
    browser_tools.send("Network.setCacheDisabled", {"cacheDisabled": True})
    requests = []
    page.on("requestfinished", lambda request: requests.append(request))
    page.goto(path)
    page.mouse.wheel(0, 20_000)  # Lazy images below the fold count too.
    page.wait_for_load_state("networkidle")
    kinds = {"page": 0, "static": 0, "images": 0}
    for request in requests:
        size = request.sizes()
        kind = "images" if request.resource_type == "image" else "page"
        kind = "static" if "/static/" in request.url else kind
        body = size["responseBodySize"]
        if kind != "images" and (response := request.response()):
            body = len(gzip.compress(response.body(), compresslevel=6))
        kinds[kind] += body + size["responseHeadersSize"]
    return kinds


def test_a_desktop_gallery_of_24_ready_cards_transfers_under_300_kib(page, alice):
    for number in range(24):
        ready_job(alice, aspect_ratio="16:9" if number % 2 else "9:16", prompt=f"Scene {number}")
    sign_in(page, "alice", "alice-password-1")

    kinds = transferred_bytes(page, "/")

    total = sum(kinds.values())
    parts = ", ".join(f"{kind} {size / 1024:.0f}" for kind, size in kinds.items())
    print(f"\ngallery of 24 ready cards: {total / 1024:.0f} KiB ({parts}; text counted gzipped)")
    assert page.locator(".card img").count() == 24
    assert total < 300 * 1024


# --- A keyboard alone ----------------------------------------------------------------

FOCUS_RING = """() => {
    const focused = document.activeElement;
    // The radio cards hide the radio itself and ring the card beside it.
    const ring = focused.matches(".choice__input") ? focused.nextElementSibling : focused;
    const style = getComputedStyle(ring);
    return style.boxShadow !== "none" || (style.outlineStyle !== "none" && style.outlineWidth !== "0px");
}"""


def at_path(path):
    return lambda url: urlsplit(url).path == path


def tab_to(page, selector, key="Tab", limit=60):
    """Press Tab until the focus is on selector, and check that the focus can be seen there."""
    for _ in range(limit):
        page.keyboard.press(key)
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            assert page.evaluate(FOCUS_RING), f"no visible focus on {selector}"
            return
    raise AssertionError(f"{key} never reached {selector}")


def test_a_creator_makes_and_plays_a_video_with_the_keyboard_alone(page, alice):
    ready = ready_job(alice, prompt="A lighthouse at dusk, waves below")
    page.goto("/accounts/login/")
    tab_to(page, "#id_username")
    page.keyboard.type("alice")
    tab_to(page, "#id_password")
    page.keyboard.type("alice-password-1")
    page.keyboard.press("Enter")
    page.wait_for_url(at_path("/"))

    tab_to(page, ".page-head a[href='/new/']")
    page.keyboard.press("Enter")
    page.wait_for_url(at_path("/new/"))
    tab_to(page, "#id_prompt")
    page.keyboard.type("Snow falling on a quiet harbour")
    tab_to(page, "input[name=model]:checked")
    page.keyboard.press("ArrowRight")
    assert page.evaluate(FOCUS_RING)
    tab_to(page, "input[name=aspect_ratio]:checked")
    page.keyboard.press("ArrowRight")
    assert page.evaluate(FOCUS_RING)
    tab_to(page, "input[name=duration]:checked")
    page.keyboard.press("ArrowRight")
    tab_to(page, "button[type=submit].button--large")
    tab_to(page, "input[name=duration]:checked", key="Shift+Tab")  # Back, and forward again.
    tab_to(page, "button[type=submit].button--large")
    page.keyboard.press("Enter")
    page.wait_for_url(at_path("/"), timeout=60_000)  # A loaded machine; the first submission is the slowest.

    job = VideoJob.objects.get(prompt="Snow falling on a quiet harbour")
    assert (job.model, job.aspect_ratio, job.duration) == ("openAiSora2Pro", "9:16", 12)
    tab_to(page, f"#job-{ready.pk} .card__title a")
    page.keyboard.press("Enter")  # The viewer opens in place, and leads on to the video's own page.
    page.get_by_role("dialog").wait_for()
    tab_to(page, "[data-viewer-page]")
    page.keyboard.press("Enter")
    page.wait_for_url(at_path(f"/jobs/{ready.pk}/"))
    tab_to(page, "video")
    page.keyboard.press("Space")
    page.wait_for_function("() => document.querySelector('video').currentTime > 0.2")
    assert page.console_errors == []


# --- Live tab counts -------------------------------------------------------------------


def tab_count(page, key):
    return page.locator(f"#tab-count-{key}").inner_text()


def test_the_tab_counts_follow_a_card_that_becomes_ready_without_a_reload(page, alice):
    ready_job(alice)
    job = make_job(alice, status=Status.PROCESSING, submitted_at=timezone.now())
    sign_in(page, "alice", "alice-password-1")
    assert (tab_count(page, "active"), tab_count(page, "succeeded")) == ("1", "1")
    page.evaluate("window.stillTheSamePage = true")

    # What the download task does last; the page's poll (every 3 s) notices.
    VideoJob.objects.filter(pk=job.pk).update(status=Status.SUCCEEDED)

    page.wait_for_selector(f"#job-{job.pk}[data-status=succeeded]")
    page.wait_for_function("() => document.querySelector('#tab-count-succeeded').textContent.trim() === '2'")
    assert tab_count(page, "active") == "0"
    assert page.evaluate("window.stillTheSamePage") is True, "the gallery reloaded"
