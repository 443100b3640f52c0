"""The spend and audit pages in chromium: the chart drawn, axe clean, a keyboard reaches everything."""

import re
from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.utils import timezone

import audit
from jobs.models import Usage, VideoJob
from spend import budget
from tests.factories import make_job
from tests.helpers import screenshot, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.usefixtures("media")]
Status = VideoJob.Status
PROMPTS = ("A paper boat drifting down a rainy street", "A red fox at dawn in deep snow", "A jazz trio")
# (model, seconds, cost) a job of each kind costs at the gateway, roughly as resellers price them.
PRICES = [("openAiSora2Plus", 4, "0.40"), ("openAiSora2Plus", 8, "0.80"), ("openAiSora2Pro", 12, "3.60")]


def assert_no_axe_violations(page):
    """axe-core's default rules (WCAG 2 A/AA and best practices) on the page as it is now."""
    violations = Axe().run(page).response["violations"]
    report = [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]} {v['help']}" for v in violations
    ]
    assert not violations, f"{page.url}:\n" + "\n".join(report)


def demo_month(people):
    """A month of a small team's work: mostly videos, some paid failures, some unknown costs, one deleted."""
    first = budget.month_of(timezone.now())[0]
    days = (timezone.localdate() - first).days + 1
    zone = timezone.get_current_timezone()
    for n in range(60):
        owner = people[n % len(people)]
        model, seconds, cost = PRICES[n * 7 % len(PRICES)]
        day = first + timedelta(days=n * 5 % days)
        status = Status.FAILED if n % 11 == 3 else Status.CANCELLED if n % 17 == 5 else Status.SUCCEEDED
        created = datetime.combine(day, time(10 + n % 8), tzinfo=zone)
        job = make_job(
            owner, prompt=f"{PROMPTS[n % 3]} (take {n})", model=model, duration=seconds, status=status,
            cost=None if n % 13 == 6 else Decimal(cost), created_at=created,
            actual_duration=seconds if status == Status.SUCCEEDED else None,
        )  # fmt: skip
        Usage.objects.create(user=owner, job=job, created_at=created)
    # Last month, so the month picker has somewhere to go.
    earlier = datetime.combine(first - timedelta(days=3), time(12), tzinfo=zone)
    old = make_job(people[0], status=Status.SUCCEEDED, cost=Decimal("0.80"), created_at=earlier, duration=8)
    Usage.objects.create(user=people[0], job=old, created_at=earlier)
    VideoJob.objects.filter(status=Status.FAILED).first().delete()
    return first


def tab_to(page, predicate, limit=40):
    """Press Tab until the focused element matches predicate (JS, given the element)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"(el => {predicate})(document.activeElement)"):
            return
    raise AssertionError(f"Tab never reached {predicate}")


def test_the_spend_page_draws_the_month_passes_axe_and_works_with_a_keyboard(
    live_server, page, staff, alice, bob, django_user_model
):
    carol = django_user_model.objects.create_user("carol", password="carol-password-1")
    first = demo_month([alice, bob, carol, staff])
    sign_in(page, "staff", "staff-password-1")

    page.goto("/spend/")

    chart = page.get_by_role("img", name=re.compile("Known cost per day"))
    assert chart.is_visible()
    assert page.locator("svg[data-chart=daily] rect.chart__bar").count() >= 1
    assert page.get_by_role("row", name=re.compile("^carol")).is_visible()
    screenshot(page, "spend")
    assert_no_axe_violations(page)

    tab_to(page, "el.tagName === 'SUMMARY'")
    page.keyboard.press("Enter")
    assert page.get_by_role("table", name=re.compile("Per day")).is_visible()
    page.goto("/spend/")
    tab_to(page, "el.id === 'month'")
    page.keyboard.press("ArrowDown")
    tab_to(page, "el.type === 'submit' && el.textContent.trim() === 'Show'")
    page.keyboard.press("Enter")
    previous = first - timedelta(days=1)
    page.wait_for_url(f"**/spend/?month={previous:%Y-%m}")
    assert page.get_by_role("heading", level=1).inner_text().endswith(f"{previous:%B %Y}")
    assert_no_axe_violations(page)
    assert page.console_errors == []


def test_the_audit_page_passes_axe_and_filters_with_a_keyboard(live_server, page, staff, alice):
    demo_month([alice, staff])
    for made in VideoJob.objects.filter(owner=alice)[:3]:
        audit.record(alice, "cancelled", made)
    audit.record(staff, "budget_changed", target="team monthly budget", before="none", after="500.00")
    sign_in(page, "staff", "staff-password-1")

    page.goto("/audit/")
    assert page.get_by_role("cell", name="Changed the team budget").is_visible()
    assert_no_axe_violations(page)
    tab_to(page, "el.id === 'id_action'")
    page.keyboard.press("ArrowDown")  # Submitted a job
    page.keyboard.press("ArrowDown")  # Retried a job
    page.keyboard.press("ArrowDown")  # Cancelled a job
    tab_to(page, "el.type === 'submit' && el.textContent.trim() === 'Show'")
    page.keyboard.press("Enter")
    page.wait_for_url("**/audit/?action=cancelled*")

    assert page.get_by_role("row").count() == 4  # The header and three cancels.
    screenshot(page, "audit")
    assert_no_axe_violations(page)
    assert page.console_errors == []
