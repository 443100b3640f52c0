"""Plain helpers shared by test modules (fixtures live in conftest.py)."""

import socket
import time
from pathlib import Path

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
