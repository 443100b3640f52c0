"""The gateway client, against a faked HTTP chokepoint."""

import itertools
from decimal import Decimal

import pytest
import requests
from urllib3.exceptions import NewConnectionError

from jobs import upstream
from jobs.models import VideoJob
from tests.fakes import FakeGateway, answer

CREATED = {"id": "sora-2:task_1", "object": "video.generation", "created": 1, "status": "queued"}


@pytest.fixture
def gateway(monkeypatch, settings):
    settings.SORA_API_BASE_URL = "https://gateway.test/api"
    settings.SORA_API_KEY = "sk-live-secret"
    return FakeGateway(monkeypatch)


def job(**fields):
    return VideoJob(prompt="a cat in the rain", **fields)


@pytest.mark.parametrize(
    ("model", "ratio", "seconds"),
    list(itertools.product(VideoJob.Model.values, VideoJob.AspectRatio.values, VideoJob.Duration.values)),
)
def test_the_body_has_one_field_of_each_exclusive_pair(model, ratio, seconds):
    body = upstream.create_body(job(model=model, aspect_ratio=ratio, duration=seconds))

    assert body == {"model": model, "prompt": "a cat in the rain", "aspect_ratio": ratio, "seconds": seconds}


def test_a_reference_image_goes_as_one_input_reference_url():
    body = upstream.create_body(job(aspect_ratio="9:16"), image_url="https://soraweb.test/r/abc/")

    assert body["input_reference"] == ["https://soraweb.test/r/abc/"]
    assert "image_urls" not in body and "size" not in body and "duration" not in body


def test_create_posts_with_the_key_and_timeouts(gateway, settings):
    gateway.reply(answer(json=CREATED))

    created = upstream.create_video(job())

    assert created == upstream.CreateResult(id="sora-2:task_1", status="queued", raw_status="queued")
    [call] = gateway.calls
    assert call["method"] == "POST"
    assert call["url"] == "https://gateway.test/api/v1/sora/videos"
    assert call["headers"]["Authorization"] == "Bearer sk-live-secret"
    assert call["timeout"] == (settings.SORA_CONNECT_TIMEOUT, settings.SORA_READ_TIMEOUT)
    assert call["allow_redirects"] is False


def test_the_result_url_encodes_the_id(gateway):
    gateway.reply(answer(json={"id": "sora-2:task/1", "status": "queued"}))

    upstream.fetch_result("sora-2:task/1")

    assert gateway.calls[0]["url"] == "https://gateway.test/api/v1/result/sora-2%3Atask%2F1"


def test_paths_are_settings(gateway, settings):
    settings.SORA_CREATE_PATH = "/sora/videos"
    gateway.reply(answer(json=CREATED))

    upstream.create_video(job())

    assert gateway.calls[0]["url"] == "https://gateway.test/api/sora/videos"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("queued", "queued"), ("pending", "queued"), ("processing", "processing"),
        ("in_progress", "processing"), ("running", "processing"), ("completed", "completed"),
        ("succeeded", "completed"), ("success", "completed"), ("failed", "failed"),
        ("cancelled", "cancelled"), ("SUCCEEDED", "completed"), ("mystery_state", "unknown"), ("", "unknown"),
    ],
)  # fmt: skip
def test_every_status_spelling_is_mapped(raw, status):
    assert upstream.map_status(raw) == status


def test_a_completed_answer_is_parsed(gateway):
    gateway.reply(
        answer(
            json={
                "id": "t1", "status": "completed", "video_url": "https://cdn.test/v.mp4",
                "actualDuration": 8.04, "amount": "0.40",
            }
        )
    )  # fmt: skip

    result = upstream.fetch_result("t1")

    assert result.status == "completed"
    assert result.video_url == "https://cdn.test/v.mp4"
    assert result.actual_duration == 8.04
    assert result.cost == Decimal("0.40")


@pytest.mark.parametrize(
    "error",
    ["content policy violation", {"message": "content policy violation", "code": "moderation_blocked"}],
)
def test_an_error_may_be_a_string_or_an_object(gateway, error):
    gateway.reply(answer(json={"id": "t1", "status": "failed", "error": error}))

    assert upstream.fetch_result("t1").error == "content policy violation"


def test_an_error_object_with_only_a_code_still_says_something(gateway):
    gateway.reply(answer(json={"id": "t1", "status": "failed", "error": {"code": "quota"}}))

    assert upstream.fetch_result("t1").error == "quota"


def test_missing_optional_fields_are_none(gateway):
    gateway.reply(answer(json={"id": "t1", "status": "completed", "video_url": "u", "amount": "n/a"}))

    result = upstream.fetch_result("t1")

    assert (result.actual_duration, result.cost) == (None, None)


def test_a_create_answer_without_an_id_is_a_failure_with_its_message(gateway):
    gateway.reply(answer(json={"message": "insufficient credits for this model"}))

    with pytest.raises(upstream.Permanent, match="insufficient credits"):
        upstream.create_video(job())


def test_a_create_answer_that_failed_at_once_carries_the_error(gateway):
    gateway.reply(answer(json={"id": "t1", "status": "failed", "error": "bad prompt"}))

    created = upstream.create_video(job())

    assert (created.status, created.error) == ("failed", "bad prompt")


@pytest.mark.parametrize(
    ("reply", "error", "kind"),
    [
        (answer(401, json={"error": "invalid key"}), upstream.Permanent, "account"),
        (answer(403, text="<html>Forbidden</html>"), upstream.Permanent, "account"),
        (answer(402, json={"error": "no balance"}), upstream.Permanent, "account"),
        (answer(400, json={"error": "bad size"}), upstream.Permanent, "rejected"),
        (answer(429, json={"error": "slow down"}, headers={"Retry-After": "7"}), upstream.Transient, None),
        (answer(503, text="<html>busy</html>"), upstream.Transient, None),
        (answer(500, json={"error": "boom"}), upstream.OutcomeUnknown, None),
        (answer(502, text="<html><h1>Bad Gateway</h1></html>"), upstream.OutcomeUnknown, None),
        (answer(200, text="<html>proxy page</html>"), upstream.OutcomeUnknown, None),
        (answer(200, text=""), upstream.OutcomeUnknown, None),
        (answer(200, json=["not", "an", "object"]), upstream.OutcomeUnknown, None),
        (requests.ReadTimeout(), upstream.OutcomeUnknown, None),
        (requests.ConnectTimeout(), upstream.Transient, None),
        (requests.ConnectionError(NewConnectionError(None, "refused")), upstream.Transient, None),
        (requests.ConnectionError("Connection aborted."), upstream.OutcomeUnknown, None),
    ],
)
def test_create_failures_are_classified(gateway, reply, error, kind):
    gateway.reply(reply)

    with pytest.raises(error) as raised:
        upstream.create_video(job())

    if kind:
        assert raised.value.kind == kind
    message = str(raised.value)
    assert "sk-live-secret" not in message and "<html" not in message and "<h1" not in message


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (answer(404, json={"error": "task not found"}), upstream.Permanent),
        (answer(401, json={"error": "bad key"}), upstream.Permanent),
        (answer(500, json={"error": "boom"}), upstream.Transient),
        (answer(502, text="<html>Bad Gateway</html>"), upstream.Transient),
        (answer(200, text='{"id": '), upstream.Transient),
        (requests.ReadTimeout(), upstream.Transient),
        (requests.ConnectionError("Connection aborted."), upstream.Transient),
    ],
)
def test_poll_failures_are_permanent_or_worth_another_try(gateway, reply, error):
    gateway.reply(reply)

    with pytest.raises(error):
        upstream.fetch_result("t1")


def test_retry_after_is_read_from_a_429(gateway):
    gateway.reply(answer(429, headers={"Retry-After": "42"}))

    with pytest.raises(upstream.Transient) as raised:
        upstream.fetch_result("t1")

    assert raised.value.retry_after == 42


def test_a_json_error_detail_reaches_the_message(gateway):
    gateway.reply(answer(400, json={"error": {"message": "image must be 1280x720"}}))

    with pytest.raises(upstream.Permanent, match="image must be 1280x720"):
        upstream.create_video(job())


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://cdn.test/v.mp4", "http://127.0.0.1/v.mp4", "http://10.0.0.8/v.mp4",
     "http://169.254.169.254/latest/", "http://[::1]/v.mp4", "http://localhost:8000/v.mp4"],
)  # fmt: skip
def test_video_links_to_private_addresses_or_other_schemes_are_refused(url):
    with pytest.raises(upstream.UnsafeURL):
        upstream.check_fetchable(url)


def test_a_trusted_private_host_is_let_through(settings):
    settings.SORA_TRUSTED_PRIVATE_HOSTS = ["127.0.0.1:8765"]

    upstream.check_fetchable("http://127.0.0.1:8765/v.mp4")
    with pytest.raises(upstream.UnsafeURL):
        upstream.check_fetchable("http://127.0.0.1:8766/v.mp4")
