"""Variants with nothing faked: real worker and beat, the simulator over HTTP, a real browser."""

import threading
import uuid
from collections import Counter

import pytest
from django.core.files.base import ContentFile
from django.db import connections

from jobs import submission
from jobs.models import Heartbeat, VideoJob
from tests.factories import image_bytes
from tests.helpers import screenshot, sign_in, wait_for
from tests.test_accessibility import assert_no_axe_violations, ready_job

pytestmark = [pytest.mark.integration]
FINAL = set(VideoJob.FINAL)
ALL = "[...document.querySelectorAll('video[data-variant]')]"


def builds(owner, prompt, count):
    group = uuid.uuid4()
    return [
        lambda n=n: VideoJob.objects.create(owner=owner, prompt=f"{prompt} #{n}", group=group, duration=4)
        for n in range(count)
    ]


def final_rows(pks, timeout=120):
    def done():
        rows = list(VideoJob.objects.filter(pk__in=pks))
        return rows if rows and all(row.status in FINAL for row in rows) else None

    return wait_for(done, timeout=timeout, message="every variant to finish")


def a_sweep_later():
    """Wait until beat has swept twice more: anything due by now has been dispatched."""
    seen = Heartbeat.objects.get(name="sweep").seen_at
    wait_for(lambda: Heartbeat.objects.get(name="sweep").seen_at > seen, timeout=30, message="a sweep")
    seen = Heartbeat.objects.get(name="sweep").seen_at
    wait_for(lambda: Heartbeat.objects.get(name="sweep").seen_at > seen, timeout=30, message="a sweep")


def test_a_group_of_four_all_succeed_with_exactly_four_create_calls(stack, sim, alice):
    jobs = submission.submit_many(alice, builds(alice, "Four takes of a heron", 4))

    rows = final_rows([job.pk for job in jobs])

    assert {row.status for row in rows} == {"succeeded"}, stack.logs()
    assert len({row.group for row in rows}) == 1
    creates = Counter(call["prompt"] for call in sim.create_calls())
    assert sorted(creates.values()) == [1, 1, 1, 1]


def test_a_group_that_would_cross_a_limit_creates_nothing(stack, sim, alice, settings):
    settings.SORAWEB_LIMIT_ACTIVE_JOBS = 3

    with pytest.raises(submission.LimitReached, match="4 more would be 1 over"):
        submission.submit_many(alice, builds(alice, "Too many takes", 4))
    wait_for(lambda: Heartbeat.objects.filter(name="sweep").exists(), timeout=30, message="beat")
    a_sweep_later()

    assert not VideoJob.objects.exists()
    assert sim.create_calls() == []


def test_two_groups_racing_for_the_last_slots_never_exceed_the_limit(stack, sim, alice, bob, settings):
    settings.SORAWEB_LIMIT_ACTIVE_JOBS = 4
    submission.submit(alice, builds(alice, "Already running", 1)[0])
    barrier = threading.Barrier(2)
    outcomes = []

    def group(prompt):
        try:
            barrier.wait()
            outcomes.append(len(submission.submit_many(alice, builds(alice, prompt, 3))))
        except submission.LimitReached as exc:
            outcomes.append(str(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=group, args=(f"Racer {n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(outcomes, key=str)[0] == 3 and "over" in str(sorted(outcomes, key=str)[1]), outcomes
    rows = final_rows(list(VideoJob.objects.values_list("pk", flat=True)))
    assert len(rows) == 4
    assert len(sim.create_calls()) == 4


# --- In the browser ---------------------------------------------------------------------


@pytest.mark.browser
def test_three_variants_fill_in_live_play_and_seek_together_and_one_is_kept(studio, page, alice):
    sign_in(page, "alice", "alice-password-1")
    page.goto("/new/")
    page.get_by_label("Prompt").fill("A kite over the dunes at noon")
    page.locator("label.choice--pill", has_text="4").click()
    page.locator("label.choice--count", has_text="3").click()
    assert "in about 3 min" in page.locator("#estimate").inner_text()  # Plus, 4 s: updated from 8 s
    page.get_by_role("button", name="Generate video").click()
    page.wait_for_url("**/")
    rows = wait_for(lambda: list(VideoJob.objects.filter(prompt="A kite over the dunes at noon")), timeout=10)
    assert len(rows) == 3 and len({row.group for row in rows}) == 1
    group = rows[0].group
    page.evaluate("window.stillTheSamePage = true")

    for row in rows:
        page.wait_for_selector(f"#group-{group} #job-{row.pk}[data-status=succeeded]", timeout=120_000)
    assert page.evaluate("window.stillTheSamePage") is True, "the gallery reloaded"
    screenshot(page, "variants-gallery")

    page.locator(f"#group-{group} .card__title a").click()
    page.wait_for_url(f"**/groups/{group}/")
    videos = page.locator("video[data-variant]")
    assert videos.count() == 3
    page.wait_for_function(f"() => {ALL}.every(v => v.readyState >= 1)")
    page.get_by_role("button", name="Play all").click()
    page.wait_for_function(f"() => {ALL}.every(v => !v.paused && v.currentTime > 0.3)")
    page.get_by_role("button", name="Pause all").click()
    page.locator("[data-group-seek]").fill("750")
    page.wait_for_function(
        f"() => {ALL}.every(v => v.paused && !v.seeking && Math.abs(v.currentTime - 3) < 0.3)"
    )
    times = page.evaluate(
        "() => [...document.querySelectorAll('video[data-variant]')].map(v => v.currentTime)"
    )
    assert max(times) - min(times) < 0.05, times
    assert_no_axe_violations(page)
    screenshot(page, "variants-group")

    page.get_by_role("button", name="☆ Keep variant 2").click()
    page.get_by_role("link", name="Delete the rest…").click()
    page.get_by_role("button", name="Delete 2 for good").click()

    kept = rows[1].pk
    assert list(VideoJob.objects.values_list("pk", "kept")) == [(kept, True)]
    assert page.locator("video[data-variant]").count() == 1
    assert page.console_errors == []


@pytest.mark.browser
def test_the_form_the_stacked_card_and_the_group_pages_have_no_axe_violations(page, alice, media):
    group = uuid.uuid4()
    ready_job(alice, group=group)
    VideoJob.objects.create(owner=alice, prompt="take two", group=group, status=VideoJob.Status.PROCESSING)
    earlier = ready_job(alice)
    earlier.reference_image.save("ref.jpg", ContentFile(image_bytes(1280, 720, "JPEG")), save=True)
    sign_in(page, "alice", "alice-password-1")
    assert page.locator(f"#group-{group} progress").count() == 1
    assert_no_axe_violations(page)

    page.goto("/new/")
    assert page.locator("input[name=reuse_reference]").count() == 2
    assert_no_axe_violations(page)
    page.goto(f"/jobs/{VideoJob.objects.get(prompt='take two').pk}/")
    assert_no_axe_violations(page)
    page.goto(f"/groups/{group}/")  # One variant ready, one with its progress bar.
    assert page.locator("#group-variants progress").count() == 1
    assert_no_axe_violations(page)
    VideoJob.objects.filter(group=group, status=VideoJob.Status.SUCCEEDED).update(kept=True)
    ready_job(alice, group=group)
    page.goto(f"/groups/{group}/delete-rest/")
    assert page.get_by_role("button", name="Delete 1 for good").is_visible()
    assert_no_axe_violations(page)
