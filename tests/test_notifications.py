"""Notify me when my videos are ready: the endpoint the tabs poll, and chromium with permission granted."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from jobs.models import VideoJob
from tests.factories import make_job
from tests.helpers import screenshot, sign_in, wait_for

S = VideoJob.Status
FINISHED = reverse("jobs:finished")


def finish(job, status=S.SUCCEEDED, **fields):
    VideoJob.objects.filter(pk=job.pk).update(status=status, completed_at=timezone.now(), **fields)


# --- The endpoint ---------------------------------------------------------------------


@pytest.mark.django_db
def test_the_first_ask_only_gives_a_cursor_so_old_jobs_are_not_announced(client, alice):
    finish(make_job(alice))
    client.force_login(alice)

    data = client.get(FINISHED).json()

    assert data["jobs"] == [] and data["cursor"] != "0_0"
    assert data["poll"] == {"visible": 10, "hidden": 30}


@pytest.mark.django_db
def test_it_tells_of_my_jobs_that_finished_since_the_cursor_once(client, alice, bob):
    client.force_login(alice)
    ready, failed, cancelled = make_job(alice, prompt="a kite"), make_job(alice), make_job(alice)
    theirs = make_job(bob)
    cursor = client.get(FINISHED).json()["cursor"]
    finish(ready, poster="posters/kite.jpg")
    finish(failed, S.FAILED, error="Refused by moderation.")
    finish(cancelled, S.CANCELLED)
    finish(theirs)

    data = client.get(FINISHED, {"since": cursor}).json()

    assert [(job["id"], job["title"]) for job in data["jobs"]] == [
        (ready.pk, "Your video is ready"),
        (failed.pk, "Your video failed"),
    ]
    assert data["jobs"][0]["body"] == "a kite"
    assert data["jobs"][0]["icon"] == reverse("jobs:poster", args=[ready.pk])
    assert data["jobs"][0]["url"] == reverse("jobs:detail", args=[ready.pk])
    assert "Refused by moderation." in data["jobs"][1]["body"]
    assert client.get(FINISHED, {"since": data["cursor"]}).json()["jobs"] == []


@pytest.mark.django_db
def test_a_tab_back_after_hours_hears_only_of_the_last_hour(client, alice):
    client.force_login(alice)
    old_cursor = client.get(FINISHED).json()["cursor"]
    finish(make_job(alice, prompt="long ago"))
    VideoJob.objects.filter(prompt="long ago").update(completed_at=timezone.now() - timedelta(hours=3))
    finish(make_job(alice, prompt="just now"))

    data = client.get(FINISHED, {"since": old_cursor}).json()

    assert [job["body"] for job in data["jobs"]] == ["just now"]


@pytest.mark.django_db
def test_the_endpoint_is_for_signed_in_people(client):
    assert client.get(FINISHED).status_code == 302


# --- In chromium ------------------------------------------------------------------------

# Records every notification the page makes instead of showing it.
RECORD_NOTIFICATIONS = """
window.__notes = [];
(function () {
  var Real = window.Notification;
  function Recorded(title, options) {
    window.__notes.push({ title: title, options: options || {} });
    this.close = function () {};
    this.addEventListener = function () {};
  }
  Object.defineProperty(Recorded, "permission", { get: function () { return Real.permission; } });
  Recorded.requestPermission = function () { return Real.requestPermission.apply(Real, arguments); };
  window.Notification = Recorded;
})();
"""
# What the browser does when the person switches to another tab or window.
HIDE = """() => {
  Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
  Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
  document.dispatchEvent(new Event("visibilitychange"));
}"""
SHOW = """() => {
  Object.defineProperty(document, "hidden", { configurable: true, get: () => false });
  Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "visible" });
  document.dispatchEvent(new Event("visibilitychange"));
}"""
BUTTON = "Notify me when my videos are ready"


@pytest.fixture
def fast_polls(settings):
    settings.SORAWEB_NOTIFY_POLL_SECONDS = 1
    settings.SORAWEB_NOTIFY_HIDDEN_POLL_SECONDS = 1


def tab_to(page, name, presses=15):
    """Press Tab until the element named name has the focus (the keyboard path)."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == name:
            return
    raise AssertionError(f"{name!r} cannot be reached with the keyboard")


def axe_violations(page):
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return results.violations_count, results.generate_report()


@pytest.mark.integration
@pytest.mark.browser
def test_a_job_finishing_while_the_tabs_are_hidden_gives_exactly_one_notification(
    browser, live_server, alice, fast_polls
):
    context = browser.new_context(base_url=live_server.url, permissions=["notifications"])
    context.add_init_script(RECORD_NOTIFICATIONS)
    job = make_job(alice, prompt="A lighthouse in a storm, slow zoom", status=S.PROCESSING)
    try:
        first = context.new_page()
        first.set_default_timeout(15_000)
        sign_in(first, "alice", "alice-password-1")
        tab_to(first, BUTTON)
        first.keyboard.press("Enter")
        first.wait_for_selector("#notify-toggle[aria-pressed=true]")
        second = context.new_page()
        polls = {first: [], second: []}
        for tab in (first, second):
            tab.on("request", lambda request, tab=tab: FINISHED in request.url and polls[tab].append(request))
        second.goto("/")
        assert second.get_attribute("#notify-toggle", "aria-pressed") == "true"
        cursor = f"localStorage.getItem('soraweb.notify.{alice.pk}.cursor')"
        wait_for(lambda: first.evaluate(cursor), timeout=15, message="the first poll's cursor")
        first.evaluate(HIDE)
        second.evaluate(HIDE)

        finish(job, poster="posters/lighthouse.jpg")

        for tab in (first, second):
            wait_for(lambda tab=tab: tab.title().startswith("(1) "), timeout=15, message="(1) in the title")
        notes = first.evaluate("window.__notes") + second.evaluate("window.__notes")
        assert len(notes) == 1, notes
        assert notes[0]["title"] == "Your video is ready"
        assert notes[0]["options"]["body"] == job.prompt
        assert notes[0]["options"]["icon"] == reverse("jobs:poster", args=[job.pk])
        # One tab polls and notifies for all (the Web Lock); the other only shows the count.
        assert sorted(len(requests) > 0 for requests in polls.values()) == [False, True], polls
        screenshot(second, "notify-hidden-tab")

        second.evaluate(SHOW)  # Looking at a tab: the count is seen, in every tab.
        for tab in (first, second):
            wait_for(lambda tab=tab: not tab.title().startswith("("), timeout=15, message="the count reset")
        assert len(first.evaluate("window.__notes") + second.evaluate("window.__notes")) == 1
    finally:
        context.close()


@pytest.mark.integration
@pytest.mark.browser
def test_with_notifications_off_nothing_is_asked_or_polled(page, alice):
    asked = []
    page.on("request", lambda request: FINISHED in request.url and asked.append(request.url))
    sign_in(page, "alice", "alice-password-1")
    page.goto("/new/")
    page.goto("/")

    assert page.get_by_role("button", name=BUTTON).get_attribute("aria-pressed") == "false"
    assert page.evaluate("Notification.permission") == "default"
    assert asked == []
    assert page.console_errors == []


@pytest.mark.integration
@pytest.mark.browser
def test_the_desk_the_job_page_and_the_button_pass_axe(page, staff):
    job = make_job(staff, prompt="An uncertain create", status=S.UNKNOWN, error="The worker stopped.")
    done = make_job(staff, prompt="A recovered one", status=S.QUEUED)
    done.history = [
        {"at": timezone.now().isoformat(), "who": "staff", "what": "Attached the gateway's id x."}
    ]
    done.save(update_fields=["history"])
    sign_in(page, "staff", "staff-password-1")

    for path in ["/", reverse("jobs:desk"), reverse("jobs:detail", args=[job.pk]), f"/jobs/{done.pk}/"]:
        page.goto(path)
        count, report = axe_violations(page)
        assert count == 0, f"{path}: {report}"
    page.goto(reverse("jobs:desk"))
    screenshot(page, "desk")
    assert page.console_errors == []
