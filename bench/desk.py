"""Issue 13's figures for the desk and the "ready" notifications, on the 100,000 rows."""

from django.contrib.auth import get_user_model
from django.urls import reverse

from bench.web import page, signed_in_client

MAX_NOTIFY_QUERIES = 3  # session, user, the keyset query
MAX_DESK_QUERIES = 12


def notify_and_desk(results, person):
    """The endpoint every open tab polls (every 10-30 s), and the staff desk."""
    client = signed_in_client(person)
    url = reverse("jobs:finished")
    cursor = client.get(url).json()["cursor"]
    ms, queries, _ = page(client, url, {"since": cursor})
    results.add(
        "notify", "finished_poll", "notifications poll (/me/finished/), 100,000 jobs",
        f"{ms:.1f} ms p50; {len(queries)} queries",
        f"queries <= {MAX_NOTIFY_QUERIES}", len(queries) <= MAX_NOTIFY_QUERIES,
        p50_ms=ms, queries=queries,
    )  # fmt: skip

    staff, _ = get_user_model().objects.get_or_create(username="bench-staff", defaults={"is_staff": True})
    desk_client = signed_in_client(staff)
    ms, queries, _ = page(desk_client, reverse("jobs:desk"))
    results.add(
        "notify", "desk", "staff desk (/desk/), 100,000 jobs",
        f"{ms:.1f} ms p50; {len(queries)} queries",
        f"queries <= {MAX_DESK_QUERIES}", len(queries) <= MAX_DESK_QUERIES,
        p50_ms=ms, queries=queries,
    )  # fmt: skip
