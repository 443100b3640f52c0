"""Server time of the pages, in-process through Django's test Client: the view, its
middleware, its queries and its templates, without a network or an HTTP server."""

import html
import itertools
import re
from urllib.parse import parse_qs, urlsplit

from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from bench.measure import interleaved_ms, median_ms, queries_of
from jobs import views
from jobs.models import VideoJob
from soraweb.celery import app

RUNS = 50
SUBMISSIONS = 200
DEEP_PAGE = 500
MAX_GALLERY_QUERIES = 6
SMALL_PARTIAL_BYTES = 1024
SUBMIT_PROMPT = "Bench submission"


def signed_in_client(user):
    # Outside the test runner ALLOWED_HOSTS has no "testserver": arrive as localhost.
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


def getter(client, url, params=None, ok=(200,), **headers):
    """A function that GETs url and returns the response, checked to answer one of `ok`."""

    def get():
        response = client.get(url, params, headers=headers)
        assert response.status_code in ok, (url, response.status_code)
        return response

    return get


def page(client, url, params=None, ok=(200,), **headers):
    """(p50 ms, SQL statements, a response) of GET url."""
    get = getter(client, url, params, ok, **headers)
    return median_ms(get, RUNS), queries_of(get), get()


def gallery(results, client, grow):
    """The gallery with 100 rows, then grow() to 100,000: first page, a deep page, the live partial."""
    url = reverse("jobs:gallery")
    small_ms, small_queries, _ = page(client, url)
    grow()
    large_ms, large_queries, response = page(client, url)
    ratio = large_ms / small_ms
    results.add(
        "gallery", "first_page", "gallery first page, 100 vs 100,000 jobs",
        f"{small_ms:.1f} vs {large_ms:.1f} ms p50 (x{ratio:.2f}); {len(small_queries)} vs "
        f"{len(large_queries)} queries",
        f"ratio <= 1.3; queries constant, <= {MAX_GALLERY_QUERIES}",
        ratio <= 1.3 and len(small_queries) == len(large_queries) <= MAX_GALLERY_QUERIES,
        p50_ms_100=small_ms, p50_ms_100000=large_ms, ratio=ratio,
        queries_100=small_queries, queries_100000=large_queries,
    )  # fmt: skip
    deep_page(results, client, url)
    live_partial(results, client, response.content)


def deep_page(results, client, url):
    cursor, first_pk = _cursor_for_page(DEEP_PAGE)
    first, deep = getter(client, url), getter(client, url, {"before": cursor})
    assert _card_pks(deep().content)[0] == first_pk, f"the cursor did not land on page {DEEP_PAGE}"
    p50 = interleaved_ms({"first": first, "deep": deep}, RUNS)
    queries = queries_of(deep)
    ratio = p50["deep"] / p50["first"]
    results.add(
        "gallery", "deep_page", f"gallery page {DEEP_PAGE} of 100,000 jobs",
        f"{p50['deep']:.1f} vs {p50['first']:.1f} ms p50 for the first page (x{ratio:.2f}); "
        f"{len(queries)} queries",
        "<= 1.5x the first page", ratio <= 1.5,
        p50_ms=p50["deep"], first_page_p50_ms=p50["first"], ratio=ratio, queries=queries,
    )  # fmt: skip


def _cursor_for_page(number):
    """The view's own `before` cursor for page `number`, and the pk its first card must show."""
    skipped = (number - 1) * views.PAGE_SIZE
    newest = VideoJob.objects.order_by("-created_at", "-id")
    last_skipped, first_shown = newest[skipped - 1], newest[skipped]
    return views._cursor_value(last_skipped), first_shown.pk


def _card_pks(body):
    return [int(pk) for pk in re.findall(rb'<article class="card[^"]*" id="job-(\d+)"', body)]


def live_partial(results, client, gallery_body):
    """What the gallery's poller asks every few seconds, at a moment when nothing changed."""
    url = _poller_url(gallery_body)
    # As htmx does: an answer with cards carries the next poller (out of band), whose URL
    # is the one asked from then on; an empty answer leaves the poller as it was.
    url = _poller_url(client.get(url, headers={"HX-Request": "true"}).content) or url
    live = parse_qs(urlsplit(url).query)["ids"][0].split(",")
    p50, queries, response = page(client, url, ok=(200, 204), HX_Request="true")
    size = len(response.content)
    results.add(
        "gallery", "live_partial", f"live-update partial, nothing changed ({len(live)} live cards)",
        f"{p50:.2f} ms p50; HTTP {response.status_code}, {size:,} bytes; {len(queries)} queries",
        f"<= 5 ms p50, small (<= {SMALL_PARTIAL_BYTES} bytes)", p50 <= 5 and size <= SMALL_PARTIAL_BYTES,
        p50_ms=p50, status=response.status_code, bytes=size, live_cards=len(live), url=url, queries=queries,
    )  # fmt: skip


def _poller_url(body):
    match = re.search(rb'id="live-cards"[^>]*? hx-get="([^"]+)"', body)
    return html.unescape(match[1].decode()) if match else None


def submit(results):
    """POST the create form until its redirect; the submit message goes to the real broker."""
    # Someone with no jobs in flight yet, as most people are when they press the button.
    client = signed_in_client(get_user_model().objects.create_user("sam", password="sam-bench-password"))
    url = reverse("jobs:create")
    numbers = itertools.count()

    def post():
        form = {"prompt": f"{SUBMIT_PROMPT} {next(numbers)}: a paper boat", "model": "openAiSora2Plus"}
        response = client.post(url, {**form, "aspect_ratio": "16:9", "duration": 4})
        assert response.status_code == 302, response.content[:2000]

    def read_message():
        # A browser shows the flash message on the page it is sent to; without that the
        # cookie grows past its limit and every later POST would also write the session.
        client.cookies.pop("messages", None)

    p50 = median_ms(post, SUBMISSIONS, warmup=10, setup=read_message)
    queries = queries_of(post, setup=read_message)
    made = VideoJob.objects.filter(prompt__startswith=SUBMIT_PROMPT)
    posted = made.count()
    made.delete()
    enqueued = app.control.purge()  # Also keeps these from reaching the workers started later.
    assert enqueued == posted, f"{posted} jobs saved but {enqueued} submit messages enqueued"
    results.add(
        "submit", "form_to_redirect", f"form submit to redirect ({SUBMISSIONS} submissions)",
        f"{p50:.1f} ms p50; {len(queries)} queries; real enqueue ({enqueued} messages)", "<= 30 ms",
        p50 <= 30, p50_ms=p50, queries=queries, submissions=SUBMISSIONS, enqueued=enqueued,
    )  # fmt: skip
