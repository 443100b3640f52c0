"""A faithful fake of the Sora 2 gateway (docs/gateway.md), served over real HTTP.

It is what the demo runs on and what integration tests run against; production
code never imports it. It needs no Django settings: stdlib, requests, Pillow,
imageio_ffmpeg and the Range parser of jobs.files, so soraweb and its fake
answer Range requests the same way.

Beyond the contract it understands:

- prompt directives such as ``[sim:moderation]`` (see DIRECTIVES), so one job
  in a concurrent run can be made to misbehave; an unknown ``[sim:...]`` is a
  400, so a typo in a test fails loudly instead of silently doing nothing;
- one-shot fault queues (``set_faults`` or ``POST /_sim/faults``): each create,
  result or download request pops the next fault of its queue, a create only
  once it passed authentication and validation and a result once it passed
  authentication, so a refused request never uses up a fault;
- control routes under ``/_sim/`` that need no key, for tests in other processes.

Choices where the contract is silent: ``seconds`` defaults to 4 (OpenAI's
default for Sora 2); a task keeps the generation time that was configured when
it was created; ``video_url`` is built from the request's Host header (falling
back to ``url``) so it is reachable the way the client reached the simulator;
videos can only be downloaded once their task has completed.
"""

import copy
import functools
import hmac
import io
import json
import logging
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote, urlsplit

import imageio_ffmpeg
import requests
from PIL import Image

from jobs import files

log = logging.getLogger(__name__)

CREATE_PATHS = ("/v1/sora/videos", "/sora/videos")
RESULT_PREFIX = "/v1/result/"
VIDEO_PREFIX = "/_sim/videos/"
MODELS = {"openAiSora2Plus": 0.05, "openAiSora2Pro": 0.15}  # price per second of video
SIZES = {"720x1280": (720, 1280), "1280x720": (1280, 720)}
ASPECT_RATIOS = {"9:16": "720x1280", "16:9": "1280x720"}
DEFAULT_SIZE = "720x1280"
DURATIONS = (4, 8, 12)
DEFAULT_SECONDS = 4
QUEUED_FRACTION = 0.25
STATUS_VARIANTS = {"queued": "pending", "processing": "in_progress", "completed": "succeeded"}
UNKNOWN_STATUS = "mystery_state"

TASK_DIRECTIVES = {"moderation", "fail", "stuck", "no-id", "unknown-status"}
DOWNLOAD_DIRECTIVES = {"dead-link", "truncated", "not-mp4", "slow"}
DIRECTIVES = TASK_DIRECTIVES | DOWNLOAD_DIRECTIVES
DIRECTIVE_PATTERN = re.compile(r"\[sim:([^\]]*)\]")

REPLY_FAULTS = {"404", "429", "500", "502", "503", "html", "malformed"}
FAULTS = {
    "create": REPLY_FAULTS | {"timeout"},
    "result": REPLY_FAULTS | {"timeout", "unknown-status"},
    "download": REPLY_FAULTS - {"malformed"} | {"timeout", "truncated", "not-mp4", "slow"},
}
# Answered before the gateway did any work, so no task exists afterwards.
REFUSING_CREATE_FAULTS = {"404", "429", "503"}

CHUNK_BYTES = 64 * 1024
SLOW_CHUNK_BYTES = 16 * 1024
SLOW_PAUSE_SECONDS = 1.0
HTML_502 = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
HTML_NOT_VIDEO = b"<html><body><h1>Download expired</h1><p>Please log in.</p></body></html>"
NOT_FOUND = {"error": {"message": "task not found", "code": "not_found"}}
BAD_KEY = {"error": {"message": "Invalid API key", "code": "invalid_api_key"}}
MODERATION_ERROR = {
    "message": "Your request was rejected by the safety system: content policy violation",
    "code": "moderation_blocked",
}
CONTROL_PATHS = {"/_sim/requests", "/_sim/creates", "/_sim/faults", "/_sim/reset", "/_sim/config"}


class BadRequest(Exception):
    """A create body the gateway would refuse; str() is the 400's message."""


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)


def json_reply(status, payload, **headers):
    return Reply(status, json.dumps(payload).encode(), headers=headers)


def fault_reply(fault):
    if fault == "429":
        return json_reply(429, {"error": "rate limited"}, **{"Retry-After": "2"})
    if fault == "404":
        return json_reply(404, NOT_FOUND)
    if fault == "html":
        return Reply(502, HTML_502, "text/html; charset=utf-8")
    if fault == "malformed":
        return Reply(200, b'{"id": ')
    status = HTTPStatus(int(fault))
    return json_reply(status, {"error": status.phrase})


@dataclass(frozen=True)
class Task:
    id: str
    model: str
    seconds: int
    size: str
    created: float
    generation_seconds: float
    directives: frozenset


class Simulator:
    def __init__(
        self,
        host="127.0.0.1",
        port=0,
        api_key=None,
        generation_seconds=6.0,
        cache_dir=None,
        hang_seconds=5.0,
        status_variants=False,
    ):
        self.api_key = api_key
        self.generation_seconds = generation_seconds
        self.hang_seconds = hang_seconds
        self.status_variants = status_variants
        self.videos = VideoCache(cache_dir or os.path.join(tempfile.gettempdir(), "soraweb-sim-cache"))
        self._lock = threading.Lock()
        self._tasks = {}
        self._log = []
        self._faults = {queue: deque() for queue in FAULTS}
        self._server = _Server((host, port), _Handler)
        self._server.simulator = self
        self._thread = None

    @property
    def url(self):
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="sora-simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self):
        if self._thread:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def serve_forever(self):
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    def requests_log(self):
        with self._lock:
            return copy.deepcopy(self._log)

    def create_calls(self):
        """Every create request, whatever it was answered; those with a task_id created (and billed) one."""
        return [entry for entry in self.requests_log() if entry["path"] in CREATE_PATHS]

    def set_faults(self, create=(), result=(), download=()):
        """Append one-shot faults to the queues (as POST /_sim/faults does); ValueError on unknown names."""
        wanted = {"create": list(create), "result": list(result), "download": list(download)}
        for queue, faults in wanted.items():
            unknown = [fault for fault in faults if fault not in FAULTS[queue]]
            if unknown:
                raise ValueError(f"unknown {queue} faults {unknown}; known: {sorted(FAULTS[queue])}")
        with self._lock:
            for queue, faults in wanted.items():
                self._faults[queue].extend(faults)

    def pending_faults(self):
        with self._lock:
            return {queue: list(faults) for queue, faults in self._faults.items()}

    def reset(self):
        with self._lock:
            self._tasks.clear()
            self._log.clear()
            for faults in self._faults.values():
                faults.clear()

    def configure(self, generation_seconds=None, hang_seconds=None, status_variants=None):
        if generation_seconds is not None:
            self.generation_seconds = float(generation_seconds)
        if hang_seconds is not None:
            self.hang_seconds = float(hang_seconds)
        if status_variants is not None:
            self.status_variants = bool(status_variants)
        return self.config()

    def config(self):
        return {
            "generation_seconds": self.generation_seconds,
            "hang_seconds": self.hang_seconds,
            "status_variants": self.status_variants,
        }

    # --- Used by the request handler -------------------------------------------

    def log_request(self, method, path):
        entry = {
            "time": time.time(),
            "method": method,
            "path": path,
            "status": None,
            "task_id": None,
            "prompt": None,
            "body": None,
        }
        with self._lock:
            self._log.append(entry)
        return entry

    def update_entry(self, entry, **fields):
        with self._lock:
            entry.update(fields)

    def pop_fault(self, queue):
        with self._lock:
            faults = self._faults[queue]
            return faults.popleft() if faults else None

    def task(self, task_id):
        with self._lock:
            return self._tasks.get(task_id)

    def authorized(self, header):
        scheme, _, token = (header or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        return self.api_key is None or hmac.compare_digest(token.encode(), self.api_key.encode())

    def create(self, authorization, raw_body, entry):
        body = _parse_json(raw_body)
        if isinstance(body, dict):
            prompt = body.get("prompt")
            self.update_entry(entry, body=body, prompt=prompt if isinstance(prompt, str) else None)
        if not self.authorized(authorization):
            return json_reply(401, BAD_KEY)
        if not isinstance(body, dict):
            return json_reply(400, {"error": "The request body must be a JSON object."})
        try:
            size, seconds, directives = self._validate(body)
        except BadRequest as exc:
            return json_reply(400, {"error": str(exc)})
        fault = self.pop_fault("create")
        if fault in REFUSING_CREATE_FAULTS:
            return fault_reply(fault)
        if "no-id" in directives:
            return json_reply(200, {"message": "insufficient credits for this model"})
        task = Task(
            id=f"sora-2:task_{secrets.token_hex(8)}",
            model=body["model"],
            seconds=seconds,
            size=size,
            created=time.time(),
            generation_seconds=self.generation_seconds,
            directives=directives,
        )
        with self._lock:
            self._tasks[task.id] = task
        self.update_entry(entry, task_id=task.id)
        if fault == "timeout":
            time.sleep(self.hang_seconds)
        elif fault:
            # The gateway accepted the task, then something between it and us failed.
            return fault_reply(fault)
        return json_reply(200, self._task_payload(task, "queued"))

    def result(self, authorization, task_id, base_url=None):
        if not self.authorized(authorization):
            return json_reply(401, BAD_KEY)
        fault = self.pop_fault("result")
        if fault in REPLY_FAULTS:
            return fault_reply(fault)
        if fault == "timeout":
            time.sleep(self.hang_seconds)
        task = self.task(task_id)
        if task is None:
            return json_reply(404, NOT_FOUND)
        state = UNKNOWN_STATUS if fault == "unknown-status" else self.state(task)
        payload = self._task_payload(task, state)
        if state == "completed":
            payload["video_url"] = f"{base_url or self.url}{VIDEO_PREFIX}{quote(task.id, safe='')}.mp4"
            payload["actualDuration"] = task.seconds
            payload["amount"] = round(MODELS[task.model] * task.seconds, 4)
        elif state == "failed":
            moderated = "moderation" in task.directives
            payload["error"] = MODERATION_ERROR if moderated else "Internal generation error"
        return json_reply(200, payload)

    def state(self, task):
        """Where the task is on its timeline: the gateway's canonical status spelling."""
        elapsed = time.time() - task.created
        if "unknown-status" in task.directives:
            return UNKNOWN_STATUS
        if elapsed < QUEUED_FRACTION * task.generation_seconds:
            return "queued"
        if elapsed < task.generation_seconds or "stuck" in task.directives:
            return "processing"
        if task.directives & {"moderation", "fail"}:
            return "failed"
        return "completed"

    def _task_payload(self, task, state):
        status = STATUS_VARIANTS.get(state, state) if self.status_variants else state
        return {
            "id": task.id,
            "object": "video.generation",
            "created": int(task.created),
            "model": task.model,
            "status": status,
        }

    def _validate(self, body):
        """The gateway's documented rules; returns (size, seconds, directives) or raises BadRequest."""
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise BadRequest("prompt is required and must be a non-empty string.")
        directives = frozenset(DIRECTIVE_PATTERN.findall(prompt))
        if directives - DIRECTIVES:
            raise BadRequest(f"Unknown simulator directive(s) {sorted(directives - DIRECTIVES)}.")
        if body.get("model") not in MODELS:
            raise BadRequest(f"model must be one of {', '.join(MODELS)}.")
        if "size" in body and "aspect_ratio" in body:
            raise BadRequest("size and aspect_ratio are mutually exclusive: send only one.")
        if "size" in body and body["size"] not in SIZES:
            raise BadRequest(f"size must be one of {', '.join(SIZES)}.")
        if "aspect_ratio" in body and body["aspect_ratio"] not in ASPECT_RATIOS:
            raise BadRequest(f"aspect_ratio must be one of {', '.join(ASPECT_RATIOS)}.")
        size = body.get("size") or ASPECT_RATIOS.get(body.get("aspect_ratio"), DEFAULT_SIZE)
        if "seconds" in body and "duration" in body:
            raise BadRequest("seconds and duration are mutually exclusive: send only one.")
        duration_field = "duration" if "duration" in body else "seconds"
        seconds = body.get(duration_field, DEFAULT_SECONDS)
        # bool is an int in Python but true is not a duration in JSON.
        if type(seconds) is not int or seconds not in DURATIONS:
            raise BadRequest(
                f"{duration_field} must be one of the integers {', '.join(map(str, DURATIONS))}."
            )
        if "input_reference" in body and "image_urls" in body:
            raise BadRequest("input_reference and image_urls are mutually exclusive: send only one.")
        for reference_field in ("input_reference", "image_urls"):
            if reference_field in body:
                self._check_reference(reference_field, body[reference_field], size)
        return size, seconds, directives

    def _check_reference(self, name, urls, size):
        if not isinstance(urls, list) or not all(isinstance(url, str) and url for url in urls):
            raise BadRequest(f"{name} must be an array of image URLs.")
        if len(urls) > 1:
            raise BadRequest(f"{name} accepts at most one image.")
        for url in urls:
            try:
                response = requests.get(url, timeout=10)
            except requests.RequestException as exc:
                raise BadRequest(
                    f"The reference image could not be fetched ({type(exc).__name__})."
                ) from None
            if response.status_code != 200:
                raise BadRequest(f"The reference image could not be fetched (HTTP {response.status_code}).")
            try:
                with Image.open(io.BytesIO(response.content)) as image:
                    image.verify()
                    dimensions = image.size
            except Exception:  # Pillow raises many kinds for a file that is not an image.
                raise BadRequest("The reference image is not a readable image.") from None
            if dimensions != SIZES[size]:
                raise BadRequest(
                    f"The reference image must be exactly {size} to match the requested orientation, "
                    f"not {dimensions[0]}x{dimensions[1]}."
                )


def _parse_json(raw):
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


class VideoCache:
    """Real MP4 files of each (size, seconds), made once with ffmpeg and kept on disk."""

    def __init__(self, directory):
        self.directory = directory
        self._locks = defaultdict(threading.Lock)
        self._locks_lock = threading.Lock()

    def path(self, size, seconds):
        codec = _video_codec()
        path = os.path.join(self.directory, f"testsrc2-{size}-{seconds}s-{codec}.mp4")
        with self._locks_lock:
            lock = self._locks[path]
        with lock:
            if not os.path.exists(path):
                self._generate(path, size, seconds, codec)
        return path

    def _generate(self, path, size, seconds, codec):
        os.makedirs(self.directory, exist_ok=True)
        # Another simulator process may share the directory: write aside, then rename atomically.
        fd, partial = tempfile.mkstemp(dir=self.directory, suffix=".partial.mp4")
        os.close(fd)
        source = f"testsrc2=size={size}:rate=24:duration={seconds}"
        speed = ["-preset", "ultrafast"] if codec == "libx264" else []
        command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
        command += ["-f", "lavfi", "-i", source, "-c:v", codec, *speed, "-pix_fmt", "yuv420p"]
        command += ["-movflags", "+faststart", "-f", "mp4", partial]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=300)
            os.replace(partial, path)
        finally:
            if os.path.exists(partial):
                os.remove(partial)


@functools.cache
def _video_codec():
    encoders = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-encoders"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return "libx264" if re.search(r"^\s*V\S*\s+libx264\s", encoders, re.MULTILINE) else "mpeg4"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    simulator = None

    def handle_error(self, request, client_address):
        # Clients hanging up mid-answer is part of the game (timeouts, aborted downloads).
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SoraGatewaySimulator/1.0"

    entry = None

    @property
    def sim(self):
        return self.server.simulator

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def log_message(self, format, *args):
        log.debug("%s %s", self.address_string(), format % args)

    def send_response(self, code, message=None):
        if self.entry is not None:
            self.sim.update_entry(self.entry, status=int(code))
        super().send_response(code, message)

    def _dispatch(self, method):
        path = urlsplit(self.path).path
        raw_body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.entry = None
        if path in CONTROL_PATHS:
            self._send(self._control(method, path, raw_body))
            return
        self.entry = self.sim.log_request(method, path)
        authorization = self.headers.get("Authorization")
        try:
            if method == "POST" and path in CREATE_PATHS:
                self._send(self.sim.create(authorization, raw_body, self.entry))
            elif method == "GET" and path.startswith(RESULT_PREFIX):
                task_id = unquote(path[len(RESULT_PREFIX) :])
                self.sim.update_entry(self.entry, task_id=task_id)
                host = self.headers.get("Host")
                self._send(self.sim.result(authorization, task_id, f"http://{host}" if host else None))
            elif method == "GET" and path.startswith(VIDEO_PREFIX) and path.endswith(".mp4"):
                task_id = unquote(path[len(VIDEO_PREFIX) : -len(".mp4")])
                self.sim.update_entry(self.entry, task_id=task_id)
                self._download(task_id)
            else:
                self._send(json_reply(404, {"error": {"message": "no such route", "code": "not_found"}}))
        except (ConnectionError, TimeoutError):
            raise  # The client hung up: there is no one left to answer (see _Server.handle_error).
        except Exception:
            log.exception("simulator failed on %s %s", method, path)
            self._send(json_reply(500, {"error": "simulator error"}))

    def _control(self, method, path, raw_body):
        if method == "GET" and path == "/_sim/requests":
            return json_reply(200, self.sim.requests_log())
        if method == "GET" and path == "/_sim/creates":
            return json_reply(200, self.sim.create_calls())
        if method == "POST" and path == "/_sim/reset":
            self.sim.reset()
            return json_reply(200, {"ok": True})
        body = _parse_json(raw_body)
        if method != "POST" or not isinstance(body, dict):
            return json_reply(400, {"error": f"{path} takes a POST with a JSON object"})
        try:
            if path == "/_sim/faults":
                self.sim.set_faults(**body)
                return json_reply(200, self.sim.pending_faults())
            return json_reply(200, self.sim.configure(**body))
        except (TypeError, ValueError) as exc:
            return json_reply(400, {"error": str(exc)})

    def _download(self, task_id):
        sim = self.sim
        fault = sim.pop_fault("download")
        if fault in REPLY_FAULTS:
            self._send(fault_reply(fault))
            return
        task = sim.task(task_id)
        if task is None or sim.state(task) != "completed" or "dead-link" in task.directives:
            self._send(json_reply(404, NOT_FOUND))
            return
        mode = fault or min(task.directives & DOWNLOAD_DIRECTIVES, default=None)
        if mode == "not-mp4":
            self._send(Reply(200, HTML_NOT_VIDEO, "text/html; charset=utf-8"))
            return
        if mode == "timeout":
            time.sleep(sim.hang_seconds)
        path = sim.videos.path(task.size, task.seconds)
        size = os.path.getsize(path)
        try:
            byte_range = files.byte_range(self.headers.get("Range"), size)
        except ValueError:
            self._send(
                json_reply(416, {"error": "range not satisfiable"}, **{"Content-Range": f"bytes */{size}"})
            )
            return
        start, end = byte_range or (0, size - 1)
        length = end - start + 1
        self.send_response(206 if byte_range else 200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        if byte_range:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        if mode == "truncated":
            self.send_header("Connection", "close")
            self.close_connection = True
            length //= 2  # Promise everything, send half, hang up.
        self.end_headers()
        chunk, pause = (SLOW_CHUNK_BYTES, SLOW_PAUSE_SECONDS) if mode == "slow" else (CHUNK_BYTES, 0)
        with open(path, "rb") as video:
            video.seek(start)
            while length > 0:
                data = video.read(min(chunk, length))
                if not data:
                    break
                self.wfile.write(data)
                length -= len(data)
                if pause and length:
                    self.wfile.flush()
                    time.sleep(pause)

    def _send(self, reply):
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)
