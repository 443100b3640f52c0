"""Webhooks: signed events for finished jobs, delivered at least once from the database."""

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from api import webhooks
from api.models import Webhook, WebhookDelivery
from api.tasks import send_delivery
from tests.factories import make_job
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db


def verify(secret, headers, body):
    """What docs/api.md tells a receiver to do, word for word."""
    timestamp = headers["X-Soraweb-Timestamp"]
    expected = (
        "sha256=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    )
    return hmac.compare_digest(expected, headers["X-Soraweb-Signature"])


class Receiver:
    """A webhook receiver on 127.0.0.1 that fails its first `failures` requests with HTTP 500."""

    def __init__(self, failures=0):
        self.failures = failures
        self.received = []  # (headers, body) of every request
        self.accepted = []  # the events it answered 200 to
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                failing = len(receiver.received) <= receiver.failures
                if not failing:
                    receiver.accepted.append(json.loads(body))
                self.send_response(500 if failing else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    made = []

    def start(failures=0):
        made.append(Receiver(failures))
        settings.SORA_TRUSTED_PRIVATE_HOSTS = [f"127.0.0.1:{made[-1].server.server_port}"]
        return made[-1]

    yield start
    for each in made:
        each.close()


@pytest.fixture(autouse=True)
def no_waiting(settings):
    settings.SORAWEB_WEBHOOK_BACKOFF = 0


def sweep():
    """What the beat's webhook_sweep does, in this process."""
    webhooks.queue_finished()
    for pk, token in WebhookDelivery.lease_due():
        send_delivery(pk, token)


def test_each_event_is_signed_with_the_webhook_s_secret(receiver, alice):
    catcher = receiver()
    hook = Webhook.objects.create(owner=alice, url=catcher.url)
    done, failed = make_job(alice), make_job(alice)
    done._move(done.ACTIVE, status="succeeded", completed_at=timezone.now())
    failed.mark_failed("provider", "The provider failed.")

    sweep()

    [(first_headers, first), (second_headers, second)] = catcher.received
    assert verify(hook.secret, first_headers, first) and verify(hook.secret, second_headers, second)
    assert not verify("another secret", first_headers, first)
    events = {json.loads(body)["job"]["id"]: json.loads(body)["event"] for body in (first, second)}
    assert events == {done.pk: "job.succeeded", failed.pk: "job.failed"}


def test_a_receiver_that_fails_twice_gets_the_event_once_after_three_attempts(receiver, alice):
    catcher = receiver(failures=2)
    hook = Webhook.objects.create(owner=alice, url=catcher.url)
    job = make_job(alice)
    job.cancel()

    for _ in range(5):
        sweep()

    delivery = WebhookDelivery.objects.get()
    assert [event["event"] for event in catcher.accepted] == ["job.cancelled"]
    assert delivery.attempts == 3 and [entry["status"] for entry in delivery.log] == [500, 500, 200]
    assert delivery.delivered_at and not Webhook.objects.get(pk=hook.pk).failing_since


def test_needs_attention_is_an_event_too(receiver, alice):
    catcher = receiver()
    Webhook.objects.create(owner=alice, url=catcher.url)
    job = make_job(alice, status="submitting")
    job.mark_unknown("The connection broke.")

    sweep()

    assert [event["event"] for event in catcher.accepted] == ["job.needs_attention"]


def test_an_event_is_queued_once_however_often_the_sweep_sees_the_job(receiver, alice):
    catcher = receiver()
    Webhook.objects.create(owner=alice, url=catcher.url)
    make_job(alice).cancel()

    for _ in range(3):
        sweep()

    assert WebhookDelivery.objects.count() == 1 and len(catcher.received) == 1


def test_a_webhook_hears_only_its_scope(receiver, alice, bob, staff):
    catcher = receiver()
    own = Webhook.objects.create(owner=alice, url=catcher.url)
    team = Webhook.objects.create(owner=staff, url=catcher.url, scope="team")
    make_job(alice).cancel()
    make_job(bob).cancel()

    webhooks.queue_finished()

    assert WebhookDelivery.objects.filter(webhook=own).count() == 1
    assert WebhookDelivery.objects.filter(webhook=team).count() == 2


def test_a_delivery_that_keeps_failing_gives_up_and_marks_the_webhook_failing(receiver, alice):
    catcher = receiver(failures=100)
    hook = Webhook.objects.create(owner=alice, url=catcher.url)
    make_job(alice).cancel()
    sweep()

    WebhookDelivery.objects.update(created_at=timezone.now() - timedelta(days=2))
    sweep()
    sweep()

    delivery = WebhookDelivery.objects.get()
    assert delivery.given_up_at and delivery.attempts == 2 and len(catcher.received) == 2
    assert Webhook.objects.get(pk=hook.pk).failing_since


def test_backoff_grows_between_attempts(receiver, alice, settings):
    settings.SORAWEB_WEBHOOK_BACKOFF = 30
    Webhook.objects.create(owner=alice, url=receiver(failures=100).url)
    make_job(alice).cancel()

    sweep()
    first_wait = WebhookDelivery.objects.get().next_attempt_at - timezone.now()
    sweep()  # not due yet: nothing sent

    delivery = WebhookDelivery.objects.get()
    assert delivery.attempts == 1 and timedelta(seconds=25) < first_wait <= timedelta(seconds=30)


@pytest.mark.parametrize(
    "url",
    ["https://10.0.0.5/hook", "https://127.0.0.1/hook", "https://[::1]/hook", "https://169.254.169.254/"],
)
def test_a_private_address_is_refused_when_registered(url):
    with pytest.raises(ValidationError, match="private network"):
        webhooks.check_url(url)


def test_plain_http_is_refused_unless_the_host_is_trusted(settings):
    settings.SORA_TRUSTED_PRIVATE_HOSTS = ["127.0.0.1:8123"]

    webhooks.check_url("http://127.0.0.1:8123/hook")
    with pytest.raises(ValidationError, match="https"):
        webhooks.check_url("http://example.com/hook")


def test_a_private_address_is_refused_when_delivering_too(alice):
    Webhook.objects.create(owner=alice, url="https://127.0.0.1:9/hook")
    make_job(alice).cancel()

    sweep()

    delivery = WebhookDelivery.objects.get()
    assert delivery.log[0]["status"] is None and "private network" in delivery.log[0]["error"]


def test_the_webhooks_page_registers_and_sends_a_test_event(
    client, alice, receiver, django_capture_on_commit_callbacks
):
    catcher = receiver()
    client.force_login(alice)
    client.post("/account/webhooks/", {"url": catcher.url, "scope": "own"})
    hook = Webhook.objects.get(owner=alice)

    with django_capture_on_commit_callbacks(execute=False):
        client.post(f"/account/webhooks/{hook.pk}/test/")
    sweep()

    page = client.get("/account/webhooks/").content.decode()
    assert [event["event"] for event in catcher.accepted] == ["test"]
    assert verify(hook.secret, *catcher.received[0]) and "HTTP 200" in page


def test_only_staff_may_register_a_team_webhook(client, alice, receiver):
    client.force_login(alice)

    client.post("/account/webhooks/", {"url": receiver().url, "scope": "team"})

    assert not Webhook.objects.exists()


@pytest.mark.integration
def test_beat_and_a_worker_deliver_through_two_failures_exactly_once(processes, receiver, alice):
    catcher = receiver(failures=2)
    processes.env.update(
        SORA_TRUSTED_PRIVATE_HOSTS=f"{processes.env['SORA_TRUSTED_PRIVATE_HOSTS']},127.0.0.1:{catcher.server.server_port}",
        SORAWEB_WEBHOOK_BACKOFF="1",
    )
    hook = Webhook.objects.create(owner=alice, url=catcher.url)
    processes.worker(concurrency=2)
    processes.beat()
    job = make_job(alice)
    job.cancel()

    wait_for(lambda: catcher.accepted, timeout=60, message="the event to get through")
    delivery = wait_for(
        lambda: WebhookDelivery.objects.filter(delivered_at__isnull=False).first(),
        timeout=30,
        message="the log",
    )

    assert [(event["event"], event["job"]["id"]) for event in catcher.accepted] == [("job.cancelled", job.pk)]
    assert [entry["status"] for entry in delivery.log] == [500, 500, 200], processes.logs()
    assert all(verify(hook.secret, headers, body) for headers, body in catcher.received)
