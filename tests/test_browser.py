"""What a creator does all day, in a real browser against real workers and the simulator."""

import pytest

from jobs import firstrun
from jobs.models import VideoJob
from tests.factories import image_bytes
from tests.helpers import screenshot, sign_in, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def create_video(page, prompt, orientation="Landscape", seconds="4"):
    page.goto("/new/")
    page.get_by_label("Prompt").fill(prompt)
    page.locator("label.choice", has_text=orientation).click()
    page.locator("label.choice--pill", has_text=seconds).click()


def newest_job(prompt):
    return wait_for(lambda: VideoJob.objects.filter(prompt=prompt).first(), timeout=10, message="the job row")


def test_the_operator_claims_a_new_server_with_the_setup_code(live_server, page, django_user_model):
    page.goto("/")
    page.wait_for_url("**/setup/")
    # What the operator reads off the server (console, log, or DATA_DIR/setup-code).
    code = firstrun.code_path().read_text().strip()
    page.get_by_label("Setup code").fill("WRNG-CODE-2345")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password:", exact=True).fill("a long pass phrase 9")
    page.get_by_label("Password confirmation").fill("a long pass phrase 9")
    page.get_by_role("button", name="Create account and sign in").click()
    assert page.get_by_text("This is not the setup code").is_visible()
    screenshot(page, "setup-wrong-code")
    assert not django_user_model.objects.exists()

    page.get_by_label("Setup code").fill(code.lower())
    page.get_by_label("Password:", exact=True).fill("a long pass phrase 9")
    page.get_by_label("Password confirmation").fill("a long pass phrase 9")
    page.get_by_role("button", name="Create account and sign in").click()
    page.wait_for_url(live_server.url + "/")

    assert django_user_model.objects.get().is_superuser
    screenshot(page, "first-run")
    assert page.console_errors == []


def test_a_creator_watches_a_job_become_a_video_that_plays_and_seeks(studio, page, alice):
    sign_in(page, "alice", "alice-password-1")
    create_video(page, "A paper boat drifting down a rainy street, cinematic")
    screenshot(page, "form")
    page.get_by_role("button", name="Generate video").click()
    page.wait_for_url("**/")
    job = newest_job("A paper boat drifting down a rainy street, cinematic")
    card = page.locator(f"#job-{job.pk}")
    assert card.get_attribute("data-status") in VideoJob.ACTIVE
    page.evaluate("window.stillTheSamePage = true")

    page.wait_for_selector(f"#job-{job.pk}[data-status=succeeded]", timeout=90_000)

    assert page.evaluate("window.stillTheSamePage") is True, "the gallery reloaded"
    screenshot(page, "gallery")
    card.get_by_role("link").first.click()  # The viewer opens over the gallery and plays it.
    video = page.locator("#viewer video")
    video.evaluate(
        "v => new Promise(done => v.readyState >= 1 ? done() : v.addEventListener('loadedmetadata', done))"
    )
    assert video.evaluate("v => v.duration") == pytest.approx(4, abs=0.5)
    video.evaluate("v => { v.muted = true; return v.play(); }")
    wait_for(lambda: video.evaluate("v => v.currentTime") > 0.2, timeout=15, message="the video to play")
    seeked = video.evaluate(
        "v => new Promise(done => { v.addEventListener('seeked', () => done(v.currentTime), {once: true});"
        " v.currentTime = 3; })"
    )
    assert seeked == pytest.approx(3, abs=0.2)
    screenshot(page, "video")
    assert page.console_errors == []


def test_a_reference_image_is_fitted_and_the_job_succeeds(studio, page, alice, tmp_path):
    square = tmp_path / "square.png"
    square.write_bytes(image_bytes(1000, 1000))
    sign_in(page, "alice", "alice-password-1")
    create_video(page, "The same square, as a wide shot", orientation="Landscape")
    page.get_by_label("Reference image").set_input_files(str(square))
    page.get_by_role("button", name="Generate video").click()
    page.wait_for_url("**/")
    job = newest_job("The same square, as a wide shot")

    page.wait_for_selector(f"#job-{job.pk}[data-status=succeeded]", timeout=90_000)

    job.refresh_from_db()
    assert "1000x1000" in job.reference_note and "1280x720" in job.reference_note
    page.goto(f"/jobs/{job.pk}/")
    assert "1280x720" in page.content()
    assert page.console_errors == []


def test_a_form_error_keeps_the_prompt(live_server, page, alice, tmp_path):
    fake = tmp_path / "holiday.png"
    fake.write_text("this is not an image")
    sign_in(page, "alice", "alice-password-1")
    create_video(page, "Fireworks over a harbour, slow motion")
    page.get_by_label("Reference image").set_input_files(str(fake))

    page.get_by_role("button", name="Generate video").click()

    assert page.get_by_label("Prompt").input_value() == "Fireworks over a harbour, slow motion"
    assert page.locator(".errorlist, .field-error, [role=alert]").first.is_visible()
    screenshot(page, "form-error")
    assert not VideoJob.objects.exists()
