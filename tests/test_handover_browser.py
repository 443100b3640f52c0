"""Handing videos over in a real browser: a ZIP of three videos, and share links (to a video, to a board)
opened signed out."""

import csv
import io
import zipfile
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from jobs import media
from jobs.models import VideoJob
from library.models import Board
from tests.factories import image_bytes, make_job, tiny_mp4
from tests.helpers import screenshot, sign_in, wait_for
from tests.test_accessibility import assert_no_axe_violations

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.usefixtures("media")]


@contextmanager
def signed_out(browser, live_server):
    """A page in a fresh browser context (no session), collecting its console errors."""
    visitor = browser.new_context(base_url=live_server.url)
    stranger = visitor.new_page()
    stranger.console_errors = []
    stranger.on(
        "console", lambda message: message.type == "error" and stranger.console_errors.append(message.text)
    )
    try:
        yield stranger
    finally:
        visitor.close()


def ready(owner, prompt):
    job = make_job(owner, prompt=prompt, status=VideoJob.Status.SUCCEEDED, completed_at=timezone.now())
    job.video.save(f"job-{job.pk}.mp4", ContentFile(tiny_mp4()), save=False)
    job.poster.save(f"job-{job.pk}.jpg", ContentFile(image_bytes(1280, 720, "JPEG")), save=False)
    job.save()
    return job


def test_three_cards_picked_in_the_selection_bar_download_as_one_zip_with_a_manifest(
    live_server, page, alice, tmp_path
):
    jobs = [ready(alice, prompt) for prompt in ("A red kite", "A blue boat", "A green hill")]
    ready(alice, "A grey whale")  # the newest, left unselected
    sign_in(page, "alice", "alice-password-1")
    # Newest first: the whale, the hill, the boat, the kite. A click, then a shift-click takes the range.
    page.locator(f"#job-{jobs[2].pk} [data-select]").click()
    page.locator(f"#job-{jobs[0].pk} [data-select]").click(modifiers=["Shift"])
    page.wait_for_selector("text=3 selected")

    with page.expect_download() as download:
        page.locator("#bulk-form").get_by_role("button", name="Download ZIP").click()

    path = tmp_path / "videos.zip"
    download.value.save_as(path)
    assert download.value.suggested_filename.endswith("-3-videos.zip")
    with zipfile.ZipFile(path) as archive:
        names = sorted(archive.namelist())
        assert archive.testzip() is None  # every CRC checks
        manifest = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode("utf-8-sig"))))
        archive.extractall(tmp_path / "out")
    assert names == sorted(
        [
            "manifest.csv",
            f"{jobs[0].pk}-a-red-kite.mp4",
            f"{jobs[1].pk}-a-blue-boat.mp4",
            f"{jobs[2].pk}-a-green-hill.mp4",
        ]
    )
    for name in (name for name in names if name.endswith(".mp4")):
        assert (tmp_path / "out" / name).read_bytes()[4:8] == b"ftyp"
        assert media.probe(tmp_path / "out" / name).get("duration") == pytest.approx(1, abs=0.2)
    assert sorted(row["prompt"] for row in manifest) == ["A blue boat", "A green hill", "A red kite"]
    assert page.console_errors == []


def test_a_share_link_plays_signed_out_until_it_is_revoked(live_server, browser, page, alice):
    job = ready(alice, "A lighthouse at dusk, waves below")
    sign_in(page, "alice", "alice-password-1")
    page.goto(f"/jobs/{job.pk}/")
    page.get_by_label("Share link valid for").select_option("30")
    page.get_by_role("button", name="Make a share link").click()
    url = urlsplit(page.locator("#share-url").input_value()).path
    assert_no_axe_violations(page)

    with signed_out(browser, live_server) as stranger:
        assert stranger.goto(url).status == 200
        video = stranger.locator("video")
        video.evaluate("v => { v.muted = true; return v.play(); }")
        wait_for(lambda: video.evaluate("v => v.currentTime") > 0.2, timeout=15, message="the video to play")
        assert "alice" not in stranger.content()
        assert stranger.get_by_role("link", name="Download MP4").is_visible()
        assert_no_axe_violations(stranger)
        screenshot(stranger, "share-link")
        assert stranger.console_errors == []

        page.goto("/shares/")
        assert_no_axe_violations(page)
        page.get_by_role("button", name="Revoke").click()
        page.wait_for_selector("text=no longer works")

        gone = stranger.reload()
        assert gone.status == 410
        assert "no longer works" in stranger.content()
        assert_no_axe_violations(stranger)
        assert stranger.goto(f"/jobs/{job.pk}/").url.startswith(f"{live_server.url}/accounts/login/")
    assert page.console_errors == []


def test_a_board_link_plays_its_videos_signed_out_until_it_is_revoked(live_server, browser, page, alice):
    jobs = [ready(alice, prompt) for prompt in ("A red kite over the dunes", "A blue boat at anchor")]
    board = Board.objects.create(name="Launch picks", created_by=alice)
    board.add(alice, [job.pk for job in jobs])
    sign_in(page, "alice", "alice-password-1")
    page.goto("/library/boards/")
    assert_no_axe_violations(page)
    screenshot(page, "share-board-form")
    card = page.locator(".board", has_text="Launch picks")
    card.get_by_label("Share link valid for").select_option("30")
    card.get_by_role("button", name="Share board").click()
    url = urlsplit(page.locator("#share-url").input_value()).path
    assert "Launch picks" in page.locator("main").inner_text()
    assert_no_axe_violations(page)

    with signed_out(browser, live_server) as stranger:
        assert stranger.goto(url).status == 200
        assert stranger.get_by_role("heading", level=1).inner_text() == "Launch picks"
        videos = stranger.locator("video")
        assert videos.count() == 2
        assert stranger.get_by_role("link", name="Download MP4").count() == 2
        video = stranger.locator("article", has_text="A blue boat at anchor").locator("video")
        video.evaluate("v => { v.muted = true; return v.play(); }")
        wait_for(lambda: video.evaluate("v => v.currentTime") > 0.2, timeout=15, message="the video to play")
        assert "alice" not in stranger.content()
        assert_no_axe_violations(stranger)
        screenshot(stranger, "share-board")
        assert stranger.console_errors == []

        page.goto("/shares/")
        assert_no_axe_violations(page)
        page.get_by_role("row", name="Board: Launch picks").get_by_role("button", name="Revoke").click()
        page.wait_for_selector("text=The share link to board “Launch picks” no longer works.")

        gone = stranger.reload()
        assert gone.status == 410
        assert "no longer works" in stranger.content()
        assert stranger.locator("video").count() == 0
        assert_no_axe_violations(stranger)
    assert page.console_errors == []
