"""The gateway simulator, driven over real HTTP exactly as soraweb's client drives it."""

import io
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import imageio_ffmpeg
import pytest
import requests
from PIL import Image

from simulator import Simulator
from simulator import server as simulator_module

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
GENERATION = 0.5
HANG = 1.0
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def video_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("sim-videos"))


@pytest.fixture
def sim(video_cache):
    simulator = Simulator(
        api_key=KEY, generation_seconds=GENERATION, hang_seconds=HANG, cache_dir=video_cache
    ).start()
    yield simulator
    simulator.stop()


def _png(width, height):
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "teal").save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def images():
    """A tiny web server holding reference images, as soraweb would publish them."""
    files = {
        "/landscape.png": _png(1280, 720),
        "/portrait.png": _png(720, 1280),
        "/square.png": _png(1000, 1000),
        "/not-an-image.png": b"<html>surprise</html>",
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def create(sim, path="/v1/sora/videos", headers=AUTH, timeout=10, **fields):
    body = {"model": "openAiSora2Plus", "prompt": "a lighthouse at dusk, cinematic"} | fields
    return requests.post(sim.url + path, json=body, headers=headers, timeout=timeout)


def created_id(sim, **fields):
    response = create(sim, **fields)
    assert response.status_code == 200, response.text
    return response.json()["id"]


def result(sim, task_id, headers=AUTH):
    return requests.get(f"{sim.url}/v1/result/{quote(task_id, safe='')}", headers=headers, timeout=10)


def finished(sim, task_id):
    time.sleep(GENERATION + 0.1)
    response = result(sim, task_id)
    assert response.status_code == 200
    return response.json()


def video_url(sim, **fields):
    data = finished(sim, created_id(sim, **fields))
    assert data["status"] == "completed"
    return data["video_url"]


def video_dimensions(content, tmp_path):
    path = tmp_path / "video.mp4"
    path.write_bytes(content)
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(path)], capture_output=True, text=True)
    return re.search(r"Video: .*?, (\d+x\d+)", probe.stderr).group(1)


# --- The happy path -------------------------------------------------------------


def test_a_task_goes_queued_processing_completed_with_a_real_mp4(sim):
    sim.configure(generation_seconds=1.0)
    response = create(sim)
    assert response.status_code == 200
    created = response.json()
    assert ":" in created["id"]
    assert created["object"] == "video.generation"
    assert created["model"] == "openAiSora2Plus"
    assert created["status"] == "queued"
    assert abs(created["created"] - time.time()) < 5

    assert result(sim, created["id"]).json()["status"] == "queued"
    time.sleep(0.5)
    assert result(sim, created["id"]).json()["status"] == "processing"
    time.sleep(0.6)
    done = result(sim, created["id"]).json()
    assert done["status"] == "completed"
    assert done["id"] == created["id"]
    assert done["actualDuration"] == 4
    assert done["amount"] == 0.2
    assert done["video_url"] == f"{sim.url}/_sim/videos/{quote(created['id'], safe='')}.mp4"

    video = requests.get(done["video_url"], timeout=30)
    assert video.status_code == 200
    assert video.headers["Content-Type"] == "video/mp4"
    assert int(video.headers["Content-Length"]) == len(video.content)
    assert video.content[4:8] == b"ftyp"


def test_it_accepts_the_create_path_without_v1(sim):
    response = create(sim, path="/sora/videos")
    assert response.status_code == 200
    assert result(sim, response.json()["id"]).status_code == 200


def test_cost_and_duration_follow_model_and_seconds(sim):
    data = finished(sim, created_id(sim, model="openAiSora2Pro", duration=12))
    assert data["actualDuration"] == 12
    assert data["amount"] == 1.8


def test_landscape_videos_are_1280x720_and_portrait_720x1280(sim, tmp_path):
    landscape = requests.get(video_url(sim, aspect_ratio="16:9"), timeout=30).content
    portrait = requests.get(video_url(sim, size="720x1280"), timeout=30).content
    assert video_dimensions(landscape, tmp_path) == "1280x720"
    assert video_dimensions(portrait, tmp_path) == "720x1280"


def test_status_variants_use_other_spellings(sim):
    sim.configure(status_variants=True, generation_seconds=1.0)
    response = create(sim)
    assert response.json()["status"] == "pending"
    task_id = response.json()["id"]
    time.sleep(0.5)
    assert result(sim, task_id).json()["status"] == "in_progress"
    time.sleep(0.6)
    assert result(sim, task_id).json()["status"] == "succeeded"


def test_a_task_keeps_the_generation_time_it_was_created_with(sim):
    task_id = created_id(sim)
    sim.configure(generation_seconds=60)
    assert finished(sim, task_id)["status"] == "completed"


def test_a_video_cannot_be_downloaded_before_completion(sim):
    task_id = created_id(sim)
    early = requests.get(f"{sim.url}/_sim/videos/{quote(task_id, safe='')}.mp4", timeout=10)
    assert early.status_code == 404


def test_it_serves_byte_ranges(sim):
    url = video_url(sim)
    size = int(requests.get(url, timeout=30).headers["Content-Length"])
    part = requests.get(url, headers={"Range": "bytes=0-99"}, timeout=10)
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 0-99/{size}"
    assert len(part.content) == 100
    tail = requests.get(url, headers={"Range": "bytes=-10"}, timeout=10)
    assert tail.status_code == 206
    assert len(tail.content) == 10
    beyond = requests.get(url, headers={"Range": f"bytes={size}-"}, timeout=10)
    assert beyond.status_code == 416


class CountingCache(simulator_module.VideoCache):
    def __init__(self, directory):
        super().__init__(directory)
        self.generated = 0

    def _generate(self, *args):
        self.generated += 1
        super()._generate(*args)


def test_concurrent_downloads_generate_the_video_once(sim, tmp_path):
    sim.videos = CountingCache(str(tmp_path))
    url = video_url(sim)
    with ThreadPoolExecutor(4) as pool:
        bodies = list(pool.map(lambda _: requests.get(url, timeout=60).content, range(4)))
    assert sim.videos.generated == 1
    assert len(set(bodies)) == 1
    assert [path.suffixes for path in tmp_path.iterdir()] == [[".mp4"]]


# --- Validation -----------------------------------------------------------------

DROP = object()


@pytest.mark.parametrize(
    ("fields", "mentioned"),
    [
        ({"prompt": DROP}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": 42}, "prompt"),
        ({"model": DROP}, "model"),
        ({"model": "sora-2"}, "model"),
        ({"size": "1024x1024"}, "size"),
        ({"aspect_ratio": "1:1"}, "aspect_ratio"),
        ({"size": "1280x720", "aspect_ratio": "16:9"}, "mutually exclusive"),
        ({"seconds": 5}, "seconds"),
        ({"seconds": "8"}, "seconds"),
        ({"seconds": True}, "seconds"),
        ({"seconds": 8.0}, "seconds"),
        ({"duration": 10}, "duration"),
        ({"seconds": 8, "duration": 8}, "mutually exclusive"),
        ({"input_reference": ["http://x/a.png"], "image_urls": ["http://x/a.png"]}, "mutually exclusive"),
        ({"input_reference": "http://x/a.png"}, "array"),
        ({"image_urls": [7]}, "array"),
        ({"input_reference": ["http://x/a.png", "http://x/b.png"]}, "at most one"),
        ({"prompt": "a cat [sim:explode]"}, "directive"),
    ],
    ids=[
        "missing-prompt",
        "blank-prompt",
        "prompt-not-text",
        "missing-model",
        "unknown-model",
        "unknown-size",
        "unknown-aspect-ratio",
        "size-and-aspect-ratio",
        "seconds-not-allowed",
        "seconds-as-string",
        "seconds-as-bool",
        "seconds-as-float",
        "duration-not-allowed",
        "two-duration-fields",
        "two-reference-fields",
        "reference-not-a-list",
        "reference-not-strings",
        "two-references",
        "unknown-directive",
    ],
)
def test_it_rejects_an_invalid_create_body(sim, fields, mentioned):
    body = {"model": "openAiSora2Plus", "prompt": "a lighthouse at dusk"} | fields
    body = {name: value for name, value in body.items() if value is not DROP}
    response = requests.post(sim.url + "/v1/sora/videos", json=body, headers=AUTH, timeout=10)
    assert response.status_code == 400
    assert mentioned in response.json()["error"]
    assert sim.create_calls()[0]["task_id"] is None


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b""], ids=["garbage", "array", "empty"])
def test_it_rejects_a_body_that_is_not_a_json_object(sim, body):
    response = requests.post(sim.url + "/v1/sora/videos", data=body, headers=AUTH, timeout=10)
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)


@pytest.mark.parametrize(
    ("fields", "image"),
    [
        ({"aspect_ratio": "16:9", "input_reference": True}, "landscape"),
        ({"size": "1280x720", "image_urls": True}, "landscape"),
        ({"input_reference": True}, "portrait"),
        ({"aspect_ratio": "9:16", "image_urls": True}, "portrait"),
    ],
    ids=["landscape-aspect", "landscape-size", "portrait-default", "portrait-aspect"],
)
def test_it_accepts_a_reference_image_of_the_right_size(sim, images, fields, image):
    fields = {name: [f"{images}/{image}.png"] if value is True else value for name, value in fields.items()}
    assert create(sim, **fields).status_code == 200


@pytest.mark.parametrize(
    ("fields", "image", "mentioned"),
    [
        ({"aspect_ratio": "16:9"}, "/square.png", "exactly 1280x720"),
        ({}, "/landscape.png", "exactly 720x1280"),
        ({"size": "1280x720"}, "/portrait.png", "exactly 1280x720"),
        ({}, "/missing.png", "HTTP 404"),
        ({}, "/not-an-image.png", "not a readable image"),
    ],
    ids=["square", "landscape-for-portrait", "portrait-for-landscape", "missing", "not-an-image"],
)
def test_it_refuses_a_reference_image_that_does_not_fit(sim, images, fields, image, mentioned):
    response = create(sim, input_reference=[images + image], **fields)
    assert response.status_code == 400
    assert mentioned in response.json()["error"]


def test_it_refuses_a_reference_image_it_cannot_reach(sim):
    closed = Simulator(port=0)
    unreachable = closed.url + "/image.png"
    closed.stop()
    response = create(sim, image_urls=[unreachable])
    assert response.status_code == 400
    assert "could not be fetched" in response.json()["error"]


# --- Authentication and unknown things -----------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer "}, {"Authorization": KEY}],
    ids=["missing", "wrong", "empty", "no-scheme"],
)
def test_it_answers_401_to_a_bad_key(sim, headers):
    response = create(sim, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    task_id = created_id(sim)
    assert result(sim, task_id, headers=headers).status_code == 401


def test_without_a_configured_key_any_bearer_token_is_accepted(video_cache):
    simulator = Simulator(cache_dir=video_cache).start()
    try:
        assert create(simulator, headers={"Authorization": "Bearer anything"}).status_code == 200
        assert create(simulator, headers={}).status_code == 401
    finally:
        simulator.stop()


def test_an_unknown_task_is_404(sim):
    response = result(sim, "sora-2:task_nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_an_unknown_route_is_404(sim):
    assert requests.get(sim.url + "/v2/whatever", headers=AUTH, timeout=10).status_code == 404


# --- Prompt directives ------------------------------------------------------------


def test_moderation_directive_fails_with_an_error_object_at_completion(sim):
    task_id = created_id(sim, prompt="a cat [sim:moderation]")
    assert result(sim, task_id).json()["status"] != "failed"
    data = finished(sim, task_id)
    assert data["status"] == "failed"
    assert data["error"]["code"] == "moderation_blocked"
    assert "safety system" in data["error"]["message"]
    assert "video_url" not in data


def test_fail_directive_fails_with_a_plain_string_error(sim):
    data = finished(sim, created_id(sim, prompt="a cat [sim:fail]"))
    assert data["status"] == "failed"
    assert data["error"] == "Internal generation error"


def test_stuck_directive_never_finishes_processing(sim):
    data = finished(sim, created_id(sim, prompt="a cat [sim:stuck]"))
    assert data["status"] == "processing"


def test_unknown_status_directive_answers_a_status_nobody_knows(sim):
    task_id = created_id(sim, prompt="a cat [sim:unknown-status]")
    assert result(sim, task_id).json()["status"] == "mystery_state"
    assert finished(sim, task_id)["status"] == "mystery_state"


def test_no_id_directive_answers_200_without_an_id_and_creates_nothing(sim):
    response = create(sim, prompt="a cat [sim:no-id]")
    assert response.status_code == 200
    assert response.json() == {"message": "insufficient credits for this model"}
    assert sim.create_calls()[0]["task_id"] is None


def test_dead_link_directive_completes_with_a_url_that_is_404(sim):
    url = video_url(sim, prompt="a cat [sim:dead-link]")
    assert requests.get(url, timeout=10).status_code == 404


def assert_truncated(url):
    response = requests.get(url, stream=True, timeout=10)
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) > 0
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="IncompleteRead"):
        _ = response.content


def assert_not_mp4(url):
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.content.startswith(b"<html>")


def assert_slow(url):
    with requests.get(url, stream=True, timeout=10) as response:
        assert response.status_code == 200
        started = time.monotonic()
        received = 0
        for chunk in response.iter_content(simulator_module.SLOW_CHUNK_BYTES):
            received += len(chunk)
            if received >= 2 * simulator_module.SLOW_CHUNK_BYTES:
                break
        assert time.monotonic() - started >= 0.8
        assert received < int(response.headers["Content-Length"])


DOWNLOAD_CHECKS = {"truncated": assert_truncated, "not-mp4": assert_not_mp4, "slow": assert_slow}


@pytest.mark.parametrize("kind", DOWNLOAD_CHECKS)
def test_download_directives_spoil_the_download(sim, kind):
    DOWNLOAD_CHECKS[kind](video_url(sim, prompt=f"a cat [sim:{kind}]"))


def test_directives_only_touch_their_own_task(sim):
    doomed = created_id(sim, prompt="a cat [sim:fail]")
    fine = created_id(sim)
    assert finished(sim, doomed)["status"] == "failed"
    assert result(sim, fine).json()["status"] == "completed"


# --- One-shot faults --------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "creates_task"),
    [
        ("429", 429, False),
        ("503", 503, False),
        ("404", 404, False),
        ("500", 500, True),
        ("502", 502, True),
        ("html", 502, True),
        ("malformed", 200, True),
    ],
)
def test_create_faults_answer_once_then_things_are_normal(sim, fault, status, creates_task):
    sim.set_faults(create=[fault])
    response = create(sim)
    assert response.status_code == status
    task_id = sim.create_calls()[0]["task_id"]
    assert (task_id is not None) is creates_task
    if creates_task:
        assert result(sim, task_id).status_code == 200
    assert create(sim).status_code == 200
    assert [call["status"] for call in sim.create_calls()] == [status, 200]


def test_fault_bodies_look_like_what_proxies_send(sim):
    sim.set_faults(create=["429", "html", "malformed", "500"])
    limited = create(sim)
    assert limited.headers["Retry-After"] == "2"
    assert limited.json() == {"error": "rate limited"}
    html = create(sim)
    assert html.headers["Content-Type"].startswith("text/html")
    assert b"502 Bad Gateway" in html.content
    assert create(sim).content == b'{"id": '
    assert isinstance(create(sim).json()["error"], str)


def test_create_timeout_fault_accepts_the_task_then_hangs(sim):
    started = time.monotonic()
    sim.set_faults(create=["timeout"])
    with pytest.raises(requests.exceptions.ReadTimeout):
        create(sim, timeout=(5, 0.3))
    assert time.monotonic() - started < HANG
    task_id = sim.create_calls()[0]["task_id"]
    assert result(sim, task_id).status_code == 200


@pytest.mark.parametrize(
    ("fault", "status"),
    [("429", 429), ("500", 500), ("502", 502), ("503", 503), ("404", 404), ("html", 502), ("malformed", 200)],
)
def test_result_faults_answer_once_then_things_are_normal(sim, fault, status):
    task_id = created_id(sim)
    sim.set_faults(result=[fault])
    assert result(sim, task_id).status_code == status
    assert result(sim, task_id).json()["status"] in ("queued", "processing")


def test_result_unknown_status_fault_answers_a_strange_status_once(sim):
    task_id = created_id(sim)
    sim.set_faults(result=["unknown-status"])
    assert result(sim, task_id).json()["status"] == "mystery_state"
    assert result(sim, task_id).json()["status"] in ("queued", "processing")


def test_result_timeout_fault_hangs_then_answers(sim):
    task_id = created_id(sim)
    sim.set_faults(result=["timeout"])
    started = time.monotonic()
    response = result(sim, task_id)
    assert time.monotonic() - started >= HANG
    assert response.json()["id"] == task_id


@pytest.mark.parametrize(
    ("fault", "status"), [("404", 404), ("429", 429), ("500", 500), ("502", 502), ("503", 503), ("html", 502)]
)
def test_download_faults_answer_an_error_once(sim, fault, status):
    url = video_url(sim)
    sim.set_faults(download=[fault])
    assert requests.get(url, timeout=10).status_code == status
    assert requests.get(url, timeout=30).status_code == 200


@pytest.mark.parametrize("kind", DOWNLOAD_CHECKS)
def test_download_faults_spoil_one_download(sim, kind):
    url = video_url(sim)
    sim.set_faults(download=[kind])
    DOWNLOAD_CHECKS[kind](url)
    assert requests.get(url, timeout=30).content[4:8] == b"ftyp"


def test_download_timeout_fault_hangs_then_serves(sim):
    url = video_url(sim)
    sim.set_faults(download=["timeout"])
    started = time.monotonic()
    response = requests.get(url, timeout=30)
    assert time.monotonic() - started >= HANG
    assert response.content[4:8] == b"ftyp"


def test_faults_are_consumed_in_order(sim):
    sim.set_faults(create=["503"])
    sim.set_faults(create=["429"])
    assert [create(sim).status_code for _ in range(3)] == [503, 429, 200]


def test_unknown_fault_names_are_refused(sim):
    with pytest.raises(ValueError, match="truncated"):
        sim.set_faults(create=["truncated"])


# --- The request log and the control routes ---------------------------------------


def test_the_log_records_every_gateway_request_with_its_answer(sim):
    task_id = created_id(sim, prompt="count my polls")
    sim.set_faults(result=["503"])
    for _ in range(3):
        result(sim, task_id)
    create(sim, headers={})
    requests.get(sim.url + "/_sim/requests", timeout=10)

    log = sim.requests_log()
    assert [(entry["method"], entry["status"]) for entry in log] == [
        ("POST", 200),
        ("GET", 503),
        ("GET", 200),
        ("GET", 200),
        ("POST", 401),
    ]
    assert log[0]["prompt"] == "count my polls"
    assert log[0]["body"] == {"model": "openAiSora2Plus", "prompt": "count my polls"}
    polls = [entry for entry in log if entry["task_id"] == task_id and entry["method"] == "GET"]
    assert len(polls) == 3
    assert all(later["time"] >= earlier["time"] for earlier, later in zip(log, log[1:], strict=False))
    assert [call["status"] for call in sim.create_calls()] == [200, 401]


def test_the_log_is_a_copy(sim):
    created_id(sim)
    sim.requests_log()[0]["body"]["prompt"] = "changed"
    assert sim.requests_log()[0]["prompt"] != "changed"
    assert sim.requests_log()[0]["body"]["prompt"] != "changed"


def test_control_routes_expose_the_log_and_the_creates(sim):
    task_id = created_id(sim)
    result(sim, task_id)
    assert requests.get(sim.url + "/_sim/requests", timeout=10).json() == sim.requests_log()
    creates = requests.get(sim.url + "/_sim/creates", timeout=10).json()
    assert [call["task_id"] for call in creates] == [task_id]


def test_control_route_queues_faults(sim):
    response = requests.post(
        sim.url + "/_sim/faults", json={"create": ["429"], "result": ["500"]}, timeout=10
    )
    assert response.json() == {"create": ["429"], "result": ["500"], "download": []}
    assert create(sim).status_code == 429
    refused = requests.post(sim.url + "/_sim/faults", json={"create": ["explode"]}, timeout=10)
    assert refused.status_code == 400
    assert "explode" in refused.json()["error"]


def test_control_route_resets_tasks_log_and_faults(sim):
    task_id = created_id(sim)
    sim.set_faults(create=["500"])
    assert requests.post(sim.url + "/_sim/reset", timeout=10).status_code == 200
    assert sim.requests_log() == []
    assert sim.pending_faults() == {"create": [], "result": [], "download": []}
    assert result(sim, task_id).status_code == 404


def test_control_route_changes_the_configuration(sim):
    response = requests.post(
        sim.url + "/_sim/config", json={"generation_seconds": 2.0, "status_variants": True}, timeout=10
    )
    assert response.json() == {"generation_seconds": 2.0, "hang_seconds": HANG, "status_variants": True}
    assert create(sim).json()["status"] == "pending"
    refused = requests.post(sim.url + "/_sim/config", json={"speed": "fast"}, timeout=10)
    assert refused.status_code == 400


# --- The command (python -m simulator) ---------------------------------------------------------


def test_the_command_serves_until_sigterm_then_exits_cleanly(tmp_path):
    arguments = ["--port", "0", "--api-key", KEY, "--generation-seconds", "1", "--cache-dir", str(tmp_path)]
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", *arguments], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        line = process.stdout.readline()
        url = re.fullmatch(r"Simulator listening on (http://127\.0\.0\.1:\d+)\n", line).group(1)
        body = {"model": "openAiSora2Plus", "prompt": "a cat"}
        assert requests.post(url + "/v1/sora/videos", json=body, headers=AUTH, timeout=10).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert "Simulator stopped." in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()
