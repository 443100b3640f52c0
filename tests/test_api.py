"""The JSON API (/api/v1/): tokens, the studio's permissions through JSON, idempotent creates."""

import json
import logging
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from io import StringIO

import jsonschema
import pytest
import requests
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.utils import timezone
from openapi_spec_validator import validate

from api.models import IDEMPOTENCY_TTL, ApiToken, IdempotencyKey
from jobs.models import UserLimits, VideoJob
from tests.factories import image_bytes, make_job, tiny_mp4, upload
from tests.helpers import sign_in, wait_for

pytestmark = pytest.mark.django_db

JOBS = "/api/v1/jobs"


def bearer(user, name="script"):
    return {"HTTP_AUTHORIZATION": f"Bearer {ApiToken.issue(user, name)[1]}"}


def post_json(client, auth, body, path=JOBS, **headers):
    return client.post(path, json.dumps(body), content_type="application/json", headers=headers, **auth)


def error_code(response):
    return response.json()["error"]["code"]


@pytest.fixture
def as_alice(alice):
    return bearer(alice)


# --- Tokens ---------------------------------------------------------------------------


def test_a_request_without_a_token_gets_json_401_not_the_sign_in_page(client):
    response = client.get(JOBS)

    assert response.status_code == 401
    assert error_code(response) == "unauthenticated"


def test_a_revoked_token_is_refused_at_once(client, alice):
    token, secret = ApiToken.issue(alice, "bot")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    assert client.get(JOBS, **auth).status_code == 200

    token.revoke()

    assert client.get(JOBS, **auth).status_code == 401


def test_only_the_hash_of_a_token_is_stored_and_its_use_is_recorded(client, alice):
    token, secret = ApiToken.issue(alice, "bot")

    client.get(JOBS, HTTP_AUTHORIZATION=f"Bearer {secret}")

    token.refresh_from_db()
    assert secret not in (token.hashed, token.prefix) and secret.startswith(token.prefix)
    assert token.last_used_at is not None


def test_the_tokens_page_shows_a_new_token_once_and_never_again(client, alice):
    client.force_login(alice)

    created = client.post("/account/tokens/", {"name": "nightly batch"})
    secret = ApiToken.objects.get(user=alice)
    shown = created.content.decode()
    listed = client.get("/account/tokens/").content.decode()

    token = shown.split("data-new-token>")[1].split("<")[0]
    assert ApiToken.authenticate(token) == secret
    assert token not in listed and "nightly batch" in listed


def test_a_person_revokes_their_own_token_but_not_someone_elses(client, alice, bob):
    mine, _ = ApiToken.issue(alice, "mine")
    theirs, _ = ApiToken.issue(bob, "theirs")
    client.force_login(alice)

    client.post(f"/account/tokens/{mine.pk}/revoke/")
    refused = client.post(f"/account/tokens/{theirs.pk}/revoke/")

    mine.refresh_from_db(), theirs.refresh_from_db()
    assert mine.is_revoked and not theirs.is_revoked and refused.status_code == 404


def test_the_command_prints_a_working_token(client, alice):
    out = StringIO()

    call_command("create_api_token", "alice", "--name", "server", stdout=out)

    assert client.get(JOBS, HTTP_AUTHORIZATION=f"Bearer {out.getvalue().strip()}").status_code == 200


def test_tokens_never_reach_the_logs(client, alice, caplog, submitted):
    _, secret = ApiToken.issue(alice, "bot")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    with caplog.at_level(logging.DEBUG):
        post_json(client, auth, {"prompt": "a boat"})
        client.get(JOBS, **auth)
        client.get(f"{JOBS}/999999", **auth)

    assert caplog.records and secret not in caplog.text


def test_a_session_request_needs_the_csrf_token_and_a_token_request_does_not(alice, submitted):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)

    by_session = post_json(browser, {}, {"prompt": "a boat"})
    by_token = post_json(Client(enforce_csrf_checks=True), bearer(alice), {"prompt": "a boat"})

    assert by_session.status_code == 403 and error_code(by_session) == "forbidden"
    assert by_token.status_code == 201


def test_the_rate_limit_answers_429_with_retry_after(client, alice, settings):
    settings.SORAWEB_API_RATE_LIMIT = 3
    auth = bearer(alice)

    answers = [client.get(JOBS, **auth) for _ in range(4)]

    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert error_code(answers[-1]) == "rate_limited" and 1 <= int(answers[-1]["Retry-After"]) <= 60


# --- Creating ---------------------------------------------------------------------------


def test_a_json_create_makes_one_pending_job_and_rings_the_doorbell_once(
    client, alice, as_alice, submitted, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(
            client, as_alice, {"prompt": "a paper boat", "model": "openAiSora2Pro", "duration": 4}
        )

    assert response.status_code == 201
    [job] = response.json()["jobs"]
    row = VideoJob.objects.get(pk=job["id"])
    assert (row.owner, row.model, row.duration, row.status) == (alice, "openAiSora2Pro", 4, "pending")
    assert job["eta"] is None and job["aspect_ratio"] == "16:9"
    submitted.assert_called_once_with(row.pk)


def test_variants_make_that_many_jobs(client, as_alice, submitted, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(client, as_alice, {"prompt": "a paper boat", "variants": 3})

    assert response.status_code == 201 and len(response.json()["jobs"]) == 3
    assert VideoJob.objects.count() == 3 and submitted.call_count == 3


def test_the_form_s_rules_apply_to_the_api(client, as_alice, submitted):
    response = post_json(client, as_alice, {"prompt": "", "duration": 5})

    assert response.status_code == 422 and error_code(response) == "invalid"
    assert set(response.json()["error"]["fields"]) == {"prompt", "duration"}
    assert not VideoJob.objects.exists() and not submitted.called


def test_an_unknown_field_is_refused_rather_than_ignored(client, as_alice, submitted):
    response = post_json(client, as_alice, {"prompt": "a boat", "seconds": 8})

    assert response.status_code == 422 and "seconds" in response.json()["error"]["fields"]


def test_a_multipart_create_stores_the_reference_image_fitted_to_the_orientation(
    client, as_alice, media, submitted
):
    picture = upload(image_bytes(900, 1600), "portrait.png")

    response = client.post(
        JOBS, {"prompt": "a boat", "aspect_ratio": "9:16", "reference_image": picture}, **as_alice
    )

    assert response.status_code == 201
    job = VideoJob.objects.get()
    assert job.reference_image and response.json()["jobs"][0]["has_reference_image"]


def test_reference_from_reuses_a_visible_job_s_stored_image(client, alice, as_alice, media, submitted):
    source = make_job(alice, aspect_ratio="16:9")
    source.reference_image.save("ref.jpg", ContentFile(image_bytes(1280, 720, "JPEG")))

    response = post_json(client, as_alice, {"prompt": "again", "reference_from": source.pk})

    assert response.status_code == 201
    job = VideoJob.objects.get(pk=response.json()["jobs"][0]["id"])
    assert job.reference_image.name == source.reference_image.name


def test_reference_from_a_job_with_another_orientation_is_refused(client, alice, as_alice, media, submitted):
    source = make_job(alice, aspect_ratio="16:9")
    source.reference_image.save("ref.jpg", ContentFile(image_bytes(1280, 720, "JPEG")))

    response = post_json(
        client, as_alice, {"prompt": "again", "aspect_ratio": "9:16", "reference_from": source.pk}
    )

    assert response.status_code == 422 and "reference_from" in response.json()["error"]["fields"]


def test_a_limit_refusal_is_429_with_the_reason(client, alice, as_alice, submitted):
    UserLimits.objects.create(user=alice, active_jobs=1)
    make_job(alice)

    response = post_json(client, as_alice, {"prompt": "one more"})

    assert response.status_code == 429 and error_code(response) == "limit_reached"
    assert "in progress" in response.json()["error"]["message"]
    assert VideoJob.objects.count() == 1 and not submitted.called


# --- Idempotency-Key ----------------------------------------------------------------------


def test_the_same_key_and_body_replays_the_first_answer_and_creates_nothing(
    client, as_alice, submitted, django_capture_on_commit_callbacks
):
    body = {"prompt": "a paper boat", "duration": 4}

    with django_capture_on_commit_callbacks(execute=True):
        first = post_json(client, as_alice, body, **{"Idempotency-Key": "batch-1-shot-1"})
        again = post_json(client, as_alice, body, **{"Idempotency-Key": "batch-1-shot-1"})

    assert first.status_code == again.status_code == 201
    assert first.content == again.content and again["Idempotent-Replayed"] == "true"
    assert VideoJob.objects.count() == 1 and submitted.call_count == 1


def test_the_same_key_with_another_body_is_422(client, as_alice, submitted):
    post_json(client, as_alice, {"prompt": "a paper boat"}, **{"Idempotency-Key": "k"})

    response = post_json(client, as_alice, {"prompt": "a different boat"}, **{"Idempotency-Key": "k"})

    assert response.status_code == 422 and error_code(response) == "idempotency_key_reused"
    assert VideoJob.objects.count() == 1


def test_keys_belong_to_one_person(client, as_alice, bob, submitted):
    post_json(client, as_alice, {"prompt": "a paper boat"}, **{"Idempotency-Key": "k"})

    response = post_json(client, bearer(bob), {"prompt": "a paper boat"}, **{"Idempotency-Key": "k"})

    assert response.status_code == 201 and response["Idempotent-Replayed"] == "false"
    assert VideoJob.objects.count() == 2


def test_a_refused_create_keeps_no_key_so_it_can_be_repeated(client, alice, as_alice, submitted):
    UserLimits.objects.create(user=alice, active_jobs=1)
    blocker = make_job(alice)
    refused = post_json(client, as_alice, {"prompt": "a paper boat"}, **{"Idempotency-Key": "k"})
    blocker.cancel()

    accepted = post_json(client, as_alice, {"prompt": "a paper boat"}, **{"Idempotency-Key": "k"})

    assert (refused.status_code, accepted.status_code) == (429, 201)


def test_a_key_older_than_a_day_no_longer_replays(client, as_alice, submitted):
    post_json(client, as_alice, {"prompt": "a paper boat"}, **{"Idempotency-Key": "k"})
    IdempotencyKey.objects.update(created_at=timezone.now() - IDEMPOTENCY_TTL - timedelta(minutes=1))

    response = post_json(client, as_alice, {"prompt": "a paper boat"}, **{"Idempotency-Key": "k"})

    assert response["Idempotent-Replayed"] == "false" and VideoJob.objects.count() == 2


def test_the_sweep_forgets_keys_older_than_a_day(client, as_alice, submitted):
    for key in ("old", "new"):
        post_json(client, as_alice, {"prompt": key}, **{"Idempotency-Key": key})
    IdempotencyKey.objects.filter(key="old").update(created_at=timezone.now() - IDEMPOTENCY_TTL)

    forgotten = IdempotencyKey.forget_expired()

    assert forgotten == 1 and list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]


# --- Reading, with the studio's scope ---------------------------------------------------------


def test_the_list_filters_and_pages_newest_first(client, alice, bob, as_alice):
    for n in range(5):
        make_job(alice, prompt=f"boat {n}", status="succeeded")
    make_job(bob, prompt="a kite", status="failed")

    first = client.get(JOBS, {"status": "succeeded", "limit": 3}, **as_alice).json()
    second = client.get(
        JOBS, {"status": "succeeded", "limit": 3, "cursor": first["next_cursor"]}, **as_alice
    ).json()
    by_owner = client.get(JOBS, {"owner": "bob"}, **as_alice).json()
    searched = client.get(JOBS, {"q": "KITE", "status": "failed"}, **as_alice).json()

    prompts = [job["prompt"] for job in first["items"] + second["items"]]
    assert prompts == ["boat 4", "boat 3", "boat 2", "boat 1", "boat 0"] and second["next_cursor"] is None
    assert [job["owner"] for job in by_owner["items"]] == ["bob"]
    assert [job["prompt"] for job in searched["items"]] == ["a kite"]


def test_the_list_filters_by_settings_and_time(client, alice, as_alice):
    now = timezone.now()
    old = make_job(alice, prompt="old", created_at=now - timedelta(days=3))
    pro = make_job(alice, prompt="pro portrait", model="openAiSora2Pro", aspect_ratio="9:16", duration=12)
    make_job(alice, prompt="plus landscape", duration=4)

    def prompts(**params):
        return [job["prompt"] for job in client.get(JOBS, params, **as_alice).json()["items"]]

    assert prompts(model="openAiSora2Pro", aspect_ratio="9:16", duration=12) == [pro.prompt]
    assert prompts(created_before=(now - timedelta(days=1)).isoformat()) == [old.prompt]
    assert old.prompt not in prompts(created_after=(now - timedelta(days=1)).isoformat())
    assert prompts(status="pending", duration=4) == ["plus landscape"]


def test_an_unknown_status_filter_is_422(client, as_alice):
    response = client.get(JOBS, {"status": "sleeping"}, **as_alice)

    assert response.status_code == 422 and error_code(response) == "invalid"


def test_under_scope_own_a_token_sees_only_its_owner_s_jobs(client, alice, bob, settings):
    settings.SORAWEB_GALLERY_SCOPE = "own"
    theirs = make_job(bob)
    make_job(alice)
    auth = bearer(alice)

    listed = client.get(JOBS, **auth).json()["items"]

    assert [job["owner"] for job in listed] == ["alice"]
    assert client.get(f"{JOBS}/{theirs.pk}", **auth).status_code == 404
    assert client.get(f"{JOBS}/{theirs.pk}/poster", **auth).status_code == 404


def test_one_job_shows_its_timings_cost_and_reason(client, alice, as_alice):
    job = make_job(alice, upstream_id="task-1", cost="0.4000")
    job.mark_failed("moderation", "Refused by the provider's safety system.")

    data = client.get(f"{JOBS}/{job.pk}", **as_alice).json()

    assert (data["upstream_id"], data["cost"], data["failure_kind"]) == ("task-1", "0.4000", "moderation")
    assert data["reason"] == "Refused by the provider's safety system." and data["completed_at"]


# --- Acting on a job -------------------------------------------------------------------------


def test_cancel_a_finished_job_is_409_and_a_running_one_is_cancelled(client, alice, as_alice):
    running, finished = make_job(alice), make_job(alice, status="succeeded")

    assert client.post(f"{JOBS}/{running.pk}/cancel", **as_alice).json()["status"] == "cancelled"
    response = client.post(f"{JOBS}/{finished.pk}/cancel", **as_alice)
    assert response.status_code == 409 and error_code(response) == "job_finished"


def test_deleting_a_running_job_is_409_and_a_finished_one_goes(client, alice, as_alice, media):
    running, finished = make_job(alice), make_job(alice, status="failed")

    assert error_code(client.delete(f"{JOBS}/{running.pk}", **as_alice)) == "job_in_progress"
    assert client.delete(f"{JOBS}/{finished.pk}", **as_alice).status_code == 204
    assert list(VideoJob.objects.values_list("pk", flat=True)) == [running.pk]


def test_a_teammate_may_see_but_not_cancel_or_delete(client, alice, bob):
    job = make_job(alice)
    auth = bearer(bob)

    assert client.get(f"{JOBS}/{job.pk}", **auth).status_code == 200
    assert client.post(f"{JOBS}/{job.pk}/cancel", **auth).status_code == 403
    assert error_code(client.delete(f"{JOBS}/{job.pk}", **auth)) == "forbidden"


def test_staff_may_cancel_anyone_s_job(client, alice, staff):
    job = make_job(alice)

    assert client.post(f"{JOBS}/{job.pk}/cancel", **bearer(staff)).status_code == 200


def test_retry_makes_a_new_job_of_the_caller_s_and_refuses_a_running_one(client, alice, bob, submitted):
    finished, running = make_job(alice, status="failed"), make_job(alice)
    auth = bearer(bob)

    response = client.post(f"{JOBS}/{finished.pk}/retry", **auth)
    refused = client.post(f"{JOBS}/{running.pk}/retry", **auth)

    new = VideoJob.objects.get(pk=response.json()["jobs"][0]["id"])
    assert response.status_code == 201 and (new.owner, new.retry_of_id) == (bob, finished.pk)
    assert refused.status_code == 409


def test_the_video_answers_a_range_request_with_206(client, alice, as_alice, media):
    job = make_job(alice, status="succeeded")
    job.video.save("v.mp4", ContentFile(tiny_mp4()))

    response = client.get(f"{JOBS}/{job.pk}/video", HTTP_RANGE="bytes=0-99", **as_alice)

    assert response.status_code == 206 and len(b"".join(response.streaming_content)) == 100


# --- The schema -----------------------------------------------------------------------


def test_the_schema_is_valid_openapi_3_and_names_the_paths_scripts_rely_on(client):
    schema = client.get("/api/v1/openapi.json").json()

    validate(schema)
    assert {"/api/v1/jobs", "/api/v1/jobs/{job_id}", "/api/v1/jobs/{job_id}/cancel"} <= set(schema["paths"])


def test_the_docs_page_loads_only_our_own_scripts_and_styles(client):
    response = client.get("/api/v1/docs")
    page = response.content.decode()

    assert response.status_code == 200
    assert "<style" not in page and "cdn" not in page.lower()
    scripts = [part.split(">")[0] for part in page.split("<script")[1:]]
    assert scripts and all("src=" in script for script in scripts)


def schema_checker(schema):
    """check(method, path template, status, body): the body matches the schema's answer for that status."""

    def check(method, path, status, body):
        answers = schema["paths"][path][method]["responses"]
        assert str(status) in answers, f"{method} {path} answered {status}, which the schema does not list"
        content = answers[str(status)].get("content", {}).get("application/json")
        if content is None:
            assert body is None, f"{method} {path} {status} has a body the schema does not describe"
            return
        resolver = {**content["schema"], "components": schema["components"]}
        jsonschema.validate(body, resolver)

    return check


# --- End to end over HTTP, nothing faked ----------------------------------------------------


@pytest.mark.integration
def test_a_script_drives_a_job_end_to_end_and_every_answer_matches_the_schema(
    studio, sim, alice, django_user_model, settings
):
    bob_user = django_user_model.objects.create_user("bob", password="bob-password-1")
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {ApiToken.issue(alice, 'e2e')[1]}"
    api = studio.url + "/api/v1"
    schema = http.get(f"{api}/openapi.json").json()
    check = schema_checker(schema)

    def call(method, path, template, expect, **kwargs):
        response = http.request(method, api + path, timeout=30, **kwargs)
        assert response.status_code == expect, response.text
        is_json = response.content and response.headers.get("Content-Type", "").startswith("application/json")
        check(
            method.lower(), "/api/v1" + template, response.status_code, response.json() if is_json else None
        )
        return response

    picture = ("ref.png", image_bytes(1600, 900), "image/png")
    created = call("POST", "/jobs", "/jobs", 201, data={"prompt": "a paper boat", "duration": "4"},
                   files={"reference_image": picture})  # fmt: skip
    job_id = created.json()["jobs"][0]["id"]

    def finished():
        data = call("GET", f"/jobs/{job_id}", "/jobs/{job_id}", 200).json()
        return data if data["is_final"] else None

    done = wait_for(finished, timeout=120, interval=1, message="the job to finish")
    assert done["status"] == "succeeded" and done["cost"], studio
    video = http.get(api + f"/jobs/{job_id}/video", headers={"Range": "bytes=0-1023"}, timeout=30)
    assert video.status_code == 206 and len(video.content) == 1024
    assert http.get(api + f"/jobs/{job_id}/poster", timeout=30).status_code == 200

    listed = call("GET", "/jobs?status=succeeded&duration=4&owner=alice", "/jobs", 200).json()
    assert [job["id"] for job in listed["items"]] == [job_id]
    call("POST", f"/jobs/{job_id}/cancel", "/jobs/{job_id}/cancel", 409)
    call("DELETE", f"/jobs/{job_id}", "/jobs/{job_id}", 204)
    call("GET", f"/jobs/{job_id}", "/jobs/{job_id}", 404)

    other = call("POST", "/jobs", "/jobs", 201, json={"prompt": "a kite", "duration": 4}).json()["jobs"][0]
    call("DELETE", f"/jobs/{other['id']}", "/jobs/{job_id}", 409)
    call("POST", f"/jobs/{other['id']}/retry", "/jobs/{job_id}/retry", 409)
    call("POST", f"/jobs/{other['id']}/cancel", "/jobs/{job_id}/cancel", 200)
    retried = call("POST", f"/jobs/{other['id']}/retry", "/jobs/{job_id}/retry", 201).json()["jobs"][0]
    assert retried["retry_of"] == other["id"]
    running = call("POST", "/jobs", "/jobs", 201, json={"prompt": "a lantern", "duration": 4}).json()["jobs"][
        0
    ]
    bob = {"Authorization": f"Bearer {ApiToken.issue(bob_user, 'e2e')[1]}"}
    call("POST", f"/jobs/{running['id']}/cancel", "/jobs/{job_id}/cancel", 403, headers=bob)
    call("POST", "/jobs", "/jobs", 422, json={"prompt": ""})
    call("GET", "/jobs?status=nope", "/jobs", 422)
    call("GET", "/jobs", "/jobs", 401, headers={"Authorization": "Bearer sw_not-a-token"})
    settings.SORAWEB_API_RATE_LIMIT = 1  # This minute's calls are far past it.
    limited = call("GET", "/jobs", "/jobs", 429)
    assert 1 <= int(limited.headers["Retry-After"]) <= 60


@pytest.mark.integration
def test_ten_concurrent_identical_creates_make_one_job_and_one_create_call(
    processes, sim, live_server, alice
):
    processes.worker(concurrency=2)
    secret = ApiToken.issue(alice, "burst")[1]
    body = json.dumps({"prompt": "one boat, asked for ten times", "duration": 4})
    start = threading.Barrier(10)

    def create(_):
        start.wait()
        response = requests.post(
            f"{live_server.url}{JOBS}",
            data=body,
            headers={
                "Authorization": f"Bearer {secret}",
                "Content-Type": "application/json",
                "Idempotency-Key": "burst-1",
            },
            timeout=60,
        )
        return response.status_code, response.text

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(create, range(10)))

    assert Counter(status for status, _ in answers) == {201: 10}, answers
    assert len({text for _, text in answers}) == 1
    assert VideoJob.objects.count() == 1
    wait_for(lambda: len(sim.create_calls()) >= 1, timeout=60, message="the create call")
    assert len(sim.create_calls()) == 1, processes.logs()


@pytest.mark.integration
@pytest.mark.browser
def test_the_docs_page_runs_under_the_strict_csp_and_tries_a_call_with_the_session(page, alice):
    violations = []
    page.on(
        "console",
        lambda message: "Content Security Policy" in message.text and violations.append(message.text),
    )
    sign_in(page, "alice", "alice-password-1")

    page.goto("/api/v1/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    listed = page.evaluate(
        "fetch('/api/v1/jobs', {credentials: 'same-origin'}).then(answer => answer.status)"
    )

    assert not violations and not page.console_errors, violations + page.console_errors
    assert page.locator(".swagger-ui .opblock-summary-path", has_text="/api/v1/jobs").count() >= 2
    assert listed == 200


def test_an_unknown_cursor_or_path_gets_a_json_answer(client, as_alice):
    bad_cursor = client.get(JOBS, {"cursor": "yesterday"}, **as_alice)
    no_path = client.get("/api/v1/videos", **as_alice)

    assert (bad_cursor.status_code, error_code(bad_cursor)) == (422, "invalid")
    assert (no_path.status_code, error_code(no_path)) == (404, "not_found")


def test_staff_revoke_anyone_s_token_in_the_admin(client, alice, staff):
    token, secret = ApiToken.issue(alice, "bot")
    client.force_login(staff)

    client.post("/admin/api/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})

    assert client.get(JOBS, HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401
