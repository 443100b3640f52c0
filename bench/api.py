"""The JSON API at 100,000 jobs: the list beside the gallery's first page, and a create."""

import itertools
import json

from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from api.models import ApiToken
from bench.measure import interleaved_ms, median_ms, queries_of
from bench.web import RUNS, SUBMISSIONS, signed_in_client
from jobs.models import VideoJob
from soraweb.celery import app

CREATE_PROMPT = "Bench API create"


def api(results, viewer):
    """Run after the table has grown to 100,000 rows (bench.run's order)."""
    list_vs_gallery(results, viewer)
    create(results)


def token_client(user, name):
    client = Client(HTTP_HOST="localhost")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {ApiToken.issue(user, name)[1]}"
    return client


def list_vs_gallery(results, viewer):
    """GET /api/v1/jobs (24 jobs, as a gallery page) against the gallery's first page, interleaved."""
    client, browser = token_client(viewer, "bench list"), signed_in_client(viewer)
    jobs_url, gallery_url = reverse("api-v1:jobs_list"), reverse("jobs:gallery")

    def listed():
        response = client.get(jobs_url, {"limit": 24})
        assert response.status_code == 200 and len(response.json()["items"]) == 24, response.content[:500]

    def gallery():
        assert browser.get(gallery_url).status_code == 200

    p50 = interleaved_ms({"api": listed, "gallery": gallery}, RUNS)
    queries = queries_of(listed)
    results.add(
        "api", "list", f"API list, 24 of {VideoJob.objects.count():,} jobs, vs the gallery's first page",
        f"{p50['api']:.1f} vs {p50['gallery']:.1f} ms p50; {len(queries)} queries",
        "<= the gallery's first page", p50["api"] <= p50["gallery"],
        p50_ms=p50["api"], gallery_p50_ms=p50["gallery"], queries=queries,
    )  # fmt: skip


def create(results):
    """POST /api/v1/jobs with an Idempotency-Key until its 201; the submit message goes to the real broker."""
    user = get_user_model().objects.create_user("api-bench", password="api-bench-password")
    client = token_client(user, "bench create")
    url, numbers = reverse("api-v1:jobs"), itertools.count()

    def post():
        n = next(numbers)
        body = {"prompt": f"{CREATE_PROMPT} {n}: a paper boat", "duration": 4}
        response = client.post(
            url, json.dumps(body), content_type="application/json", headers={"Idempotency-Key": f"bench-{n}"}
        )
        assert response.status_code == 201, response.content[:2000]

    p50 = median_ms(post, SUBMISSIONS, warmup=10)
    queries = queries_of(post)
    made = VideoJob.objects.filter(prompt__startswith=CREATE_PROMPT)
    posted = made.count()
    made.delete()
    enqueued = app.control.purge()  # Keeps them from reaching the workers started later.
    assert enqueued == posted, f"{posted} jobs saved but {enqueued} submit messages enqueued"
    results.add(
        "api", "create", f"API create with Idempotency-Key ({SUBMISSIONS} creates)",
        f"{p50:.1f} ms p50; {len(queries)} queries; no gateway call, real enqueue ({enqueued} messages)",
        "<= 30 ms", p50 <= 30, p50_ms=p50, queries=queries, creates=SUBMISSIONS, enqueued=enqueued,
    )  # fmt: skip
