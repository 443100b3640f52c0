"""The library in chromium: search and filters in the URL, stars, boards in bulk, the viewer."""

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from playwright.sync_api import expect

from jobs.models import VideoJob
from jobs.views import PAGE_SIZE
from library.models import Board
from tests.factories import make_job, tiny_mp4
from tests.helpers import assert_no_axe_violations, screenshot, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.usefixtures("media")]
Status = VideoJob.Status


def ready_job(owner, prompt, **fields):
    job = make_job(owner, prompt=prompt, status=Status.SUCCEEDED, duration=4, **fields)
    job.video.save(f"job-{job.pk}.mp4", ContentFile(tiny_mp4()), save=False)
    job.completed_at = timezone.now()
    job.save()
    return job


def card_ids(page):
    return page.eval_on_selector_all("#cards [data-card]", "cards => cards.map(card => card.id)")


def test_search_and_filters_live_in_the_url_and_back_restores_them(page, alice):
    fox = make_job(alice, prompt="a red fox in the snow", model="openAiSora2Pro")
    make_job(alice, prompt="a grey fox at dusk", model="openAiSora2Plus")
    make_job(alice, prompt="a whale under ice", model="openAiSora2Pro")
    sign_in(page, "alice", "alice-password-1")
    page.evaluate("window.notReloaded = true")

    page.get_by_role("searchbox").fill("fox")
    page.wait_for_url("**q=fox**")
    expect(page.locator("#cards [data-card]")).to_have_count(2)
    page.get_by_label("Model").select_option("openAiSora2Pro")
    page.wait_for_url("**model=openAiSora2Pro**")
    expect(page.locator("#cards [data-card]")).to_have_count(1)
    assert card_ids(page) == [f"job-{fox.pk}"]
    assert page.evaluate("window.notReloaded") is True
    assert_no_axe_violations(page)

    page.go_back()
    expect(page.locator("#cards [data-card]")).to_have_count(2)
    assert "q=fox" in page.url and "model=" not in page.url
    assert page.get_by_label("Model").input_value() == ""
    assert page.get_by_role("searchbox").input_value() == "fox"

    page.get_by_role("searchbox").fill("zebra")
    page.wait_for_selector("text=No videos match these filters.")
    page.get_by_role("link", name="Clear filters").click()
    expect(page.locator("#cards [data-card]")).to_have_count(3)
    assert page.console_errors == []


def test_a_person_stars_a_card_and_adds_two_videos_to_a_new_board_in_bulk(page, alice):
    jobs = [make_job(alice, prompt=f"a paper boat, take {number}") for number in range(3)]
    sign_in(page, "alice", "alice-password-1")
    page.evaluate("window.notReloaded = true")
    star = page.locator(f"#job-{jobs[0].pk} .star")
    star.click()
    page.wait_for_selector(f'#job-{jobs[0].pk} .star[aria-pressed="true"]')
    assert page.evaluate("window.notReloaded") is True

    page.goto("/library/boards/")
    page.get_by_label("New board").fill("Launch picks")
    page.get_by_role("button", name="Make board").click()
    page.wait_for_selector("text=Board “Launch picks” made.")
    assert_no_axe_violations(page)

    page.goto("/")
    page.locator(f"#job-{jobs[2].pk} [data-select]").check()
    page.locator(f"#job-{jobs[1].pk} [data-select]").check()
    page.wait_for_selector("text=2 selected")
    page.get_by_label("Board", exact=True).select_option(label="Launch picks")
    page.get_by_role("button", name="Add to board").click()
    page.wait_for_selector("text=Added 2 video(s) to “Launch picks”.")

    board = Board.objects.get(name="Launch picks")
    page.goto(f"/?board={board.pk}")
    assert sorted(card_ids(page)) == sorted(f"job-{job.pk}" for job in jobs[1:])
    assert page.get_by_role("heading", name="Board: Launch picks").is_visible()
    page.goto("/?fav=1")
    assert card_ids(page) == [f"job-{jobs[0].pk}"]
    assert page.console_errors == []


def test_shift_click_selects_a_range_and_select_all_takes_the_page(page, alice):
    for number in range(4):
        make_job(alice, prompt=f"a kite, take {number}")
    sign_in(page, "alice", "alice-password-1")
    boxes = page.locator("#cards [data-select]")
    boxes.nth(0).click()
    boxes.nth(3).click(modifiers=["Shift"])
    page.wait_for_selector("text=4 selected")
    page.get_by_label("Select all on this page").uncheck()
    page.wait_for_selector("text=0 selected")
    assert page.console_errors == []


def test_the_viewer_opens_in_place_steps_with_the_arrow_keys_and_closes_on_escape(page, alice):
    older = ready_job(alice, "a lighthouse in a storm")
    newer = ready_job(alice, "a lighthouse at dawn")
    sign_in(page, "alice", "alice-password-1")
    page.goto("/?q=lighthouse")
    url = page.url

    page.get_by_role("link", name="a lighthouse at dawn").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    assert dialog.locator("h2").text_content() == "a lighthouse at dawn"
    assert dialog.locator("video").get_attribute("src") == f"/jobs/{newer.pk}/video.mp4"
    assert_no_axe_violations(page)
    screenshot(page, "library-viewer")

    page.keyboard.press("ArrowRight")
    assert dialog.locator("h2").text_content() == "a lighthouse in a storm"
    assert dialog.locator("video").get_attribute("src") == f"/jobs/{older.pk}/video.mp4"
    page.keyboard.press("ArrowLeft")
    assert dialog.locator("h2").text_content() == "a lighthouse at dawn"

    page.keyboard.press("Escape")
    page.wait_for_selector("#viewer", state="hidden")
    assert page.evaluate("document.activeElement.textContent.trim()") == "a lighthouse at dawn"
    assert page.url == url
    assert page.console_errors == []


def test_the_viewer_steps_past_the_last_loaded_card_into_the_next_page(page, alice):
    live = make_job(alice, prompt="a lantern in the rain", status=Status.PROCESSING)  # oldest, in progress
    older = [ready_job(alice, f"a lantern, take {number}") for number in range(2)]
    for number in range(2, PAGE_SIZE + 2):
        ready_job(alice, f"a lantern, take {number}")
    make_job(alice, prompt="a whale under ice", status=Status.SUCCEEDED)  # outside the search
    sign_in(page, "alice", "alice-password-1")
    page.goto("/?q=lantern")
    url = page.url
    page.evaluate("window.notReloaded = true")
    grid = page.locator("#cards [data-card]")
    expect(grid).to_have_count(PAGE_SIZE)

    grid.last.locator("[data-viewer-open]").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("h2")).to_have_text("a lantern, take 2")
    page.keyboard.press("ArrowRight")
    expect(dialog.locator("h2")).to_have_text("a lantern, take 1")
    assert dialog.locator("video").get_attribute("src") == f"/jobs/{older[1].pk}/video.mp4"
    expect(grid).to_have_count(PAGE_SIZE + 3)  # the next page's three, and not the whale
    assert card_ids(page)[-3:][:2] == [f"job-{older[1].pk}", f"job-{older[0].pk}"]
    assert page.evaluate("window.notReloaded") is True and page.url == url

    page.keyboard.press("ArrowRight")
    expect(dialog.locator("h2")).to_have_text("a lantern, take 0")
    page.keyboard.press("ArrowRight")
    expect(dialog.locator("h2")).to_have_text("a lantern in the rain")
    # The in-progress card loaded with them joins the live poll, whose answer swaps it for a fresh copy.
    page.evaluate(f"document.getElementById('job-{live.pk}').old = true")
    page.wait_for_function(f"() => !document.getElementById('job-{live.pk}').old")
    page.keyboard.press("ArrowRight")  # the real end: nothing moves, the dialog says so
    expect(dialog.get_by_role("status")).to_have_text("This is the last video.")
    expect(dialog.locator("h2")).to_have_text("a lantern in the rain")
    expect(dialog.get_by_role("button", name="Next →")).to_be_disabled()
    expect(page.locator(".pager")).to_have_count(0)
    assert_no_axe_violations(page)

    page.keyboard.press("Escape")
    page.wait_for_selector("#viewer", state="hidden")
    assert page.evaluate("document.activeElement.textContent.trim()") == "a lantern in the rain"
    assert page.evaluate("document.activeElement.closest('[data-card]').id") == f"job-{live.pk}"
    page.locator(f"#job-{older[0].pk} .star").click()  # a loaded card is as live as the others
    page.wait_for_selector(f'#job-{older[0].pk} .star[aria-pressed="true"]')
    assert page.evaluate("window.notReloaded") is True
    assert page.console_errors == []


def test_hovering_a_ready_card_previews_it_only_after_the_pointer_rests(page, alice):
    job = ready_job(alice, "a hummingbird")
    sign_in(page, "alice", "alice-password-1")
    media = page.locator(f"#job-{job.pk} .card__media")
    media.hover()
    page.wait_for_selector(f"#job-{job.pk} video.card__preview")
    page.mouse.move(0, 0)
    page.wait_for_selector(f"#job-{job.pk} video.card__preview", state="detached")
    assert page.console_errors == []
