"""The gateway client: the only code in soraweb that speaks HTTP to the gateway.

Plain functions over one chokepoint (`_send`) with explicit timeouts and no
hidden retries. Answers become small typed objects; failures become one of a
few exceptions whose messages a person can read and which never carry the key
or a proxy's raw HTML. See docs/gateway.md for the contract and its gaps.
"""

import ipaddress
import logging
import socket
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

log = logging.getLogger(__name__)

STATUS_SPELLINGS = {
    "queued": "queued", "pending": "queued", "submitted": "queued", "waiting": "queued",
    "processing": "processing", "in_progress": "processing", "running": "processing",
    "generating": "processing",
    "completed": "completed", "succeeded": "completed", "success": "completed",
    "done": "completed", "finished": "completed",
    "failed": "failed", "failure": "failed", "error": "failed",
    "cancelled": "cancelled", "canceled": "cancelled",
}  # fmt: skip
MAX_REDIRECTS = 5


class UpstreamError(Exception):
    """A failure talking to the gateway; str() is fit to show a person."""

    retry_after = None

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Transient(UpstreamError):
    """Worth trying again later. For a create: it certainly never reached the gateway."""


class OutcomeUnknown(UpstreamError):
    """A create call may or may not have been accepted (and billed)."""


class Permanent(UpstreamError):
    """Trying again will not help; kind is one of VideoJob.FailureKind's values."""

    def __init__(self, message: str, kind: str = "provider") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class CreateResult:
    id: str
    status: str
    raw_status: str
    error: str = ""


@dataclass(frozen=True)
class TaskResult:
    id: str
    status: str  # queued, processing, completed, failed, cancelled or unknown
    raw_status: str
    video_url: str = ""
    actual_duration: float | None = None
    cost: Decimal | None = None
    error: str = ""


def create_body(job: Any, image_url: str | None = None) -> dict[str, Any]:
    """The create call's JSON: one field from each mutually exclusive pair, never both."""
    body: dict[str, Any] = {
        "model": job.model,
        "prompt": job.prompt,
        "aspect_ratio": job.aspect_ratio,
        "seconds": int(job.duration),
    }
    if image_url:
        body["input_reference"] = [image_url]
    return body


def create_video(job: Any, image_url: str | None = None) -> CreateResult:
    """POST the job; returns CreateResult. Raises Transient only when nothing was sent."""
    response = _send("POST", settings.SORA_CREATE_PATH, json=create_body(job, image_url), creating=True)
    data = _json(response, creating=True)
    task_id = data.get("id") or data.get("task_id")
    if not task_id:
        raise Permanent(
            f"The video service did not accept the job: {error_text(data) or 'its answer had no job id.'}"
        )
    raw = str(data.get("status") or "queued")
    return CreateResult(id=str(task_id), status=map_status(raw), raw_status=raw, error=error_text(data))


def fetch_result(upstream_id: str) -> TaskResult:
    response = _send("GET", settings.SORA_RESULT_PATH.replace("{id}", quote(upstream_id, safe="")))
    data = _json(response)
    raw = str(data.get("status") or "")
    return TaskResult(
        id=str(data.get("id") or upstream_id),
        status=map_status(raw),
        raw_status=raw,
        video_url=str(data.get("video_url") or data.get("url") or ""),
        actual_duration=_number(data.get("actualDuration"), float),
        cost=_number(data.get("amount"), Decimal),
        error=error_text(data),
    )


def map_status(raw: object) -> str:
    return STATUS_SPELLINGS.get(str(raw).strip().lower(), "unknown")


def error_text(data: object) -> str:
    """The gateway's error as a sentence: it may be a string or {message, code}."""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        error = error.get("message") or error.get("code")
    if not error and isinstance(data, dict) and not data.get("id"):
        error = data.get("message") or data.get("msg")
    return str(error or "").strip()[:500]


def _number(value, kind):
    try:
        return kind(str(value)) if value not in (None, "") else None
    except (ValueError, InvalidOperation):
        return None


def _send(method, path, *, json=None, creating=False):
    """The chokepoint: one request with explicit timeouts, errors classified."""
    if not settings.SORA_API_BASE_URL:
        raise Permanent("No gateway address is configured (SORA_API_BASE_URL).", kind="account")
    if not settings.SORA_API_KEY:
        raise Permanent("No API key is configured for the video service (SORA_API_KEY).", kind="account")
    key = settings.SORA_API_KEY
    try:
        response = requests.request(
            method,
            settings.SORA_API_BASE_URL + path,
            json=json,
            headers={"Authorization": f"Bearer {key}", "Accept": "application/json"},
            timeout=(settings.SORA_CONNECT_TIMEOUT, settings.SORA_READ_TIMEOUT),
            allow_redirects=False,
        )
    except (requests.ConnectTimeout, requests.exceptions.InvalidURL) as exc:
        raise Transient("The video service could not be reached (connection timed out).") from exc
    except requests.ReadTimeout as exc:
        if creating:
            raise OutcomeUnknown("The video service took too long to answer.") from exc
        raise Transient("The video service took too long to answer.") from exc
    except requests.ConnectionError as exc:
        if _never_connected(exc) or not creating:
            raise Transient("The video service could not be reached.") from exc
        raise OutcomeUnknown("The connection to the video service broke before it answered.") from exc
    _raise_for_status(response, creating)
    return response


def _never_connected(exc):
    """True when the connection failed before any byte of the request was sent."""
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    from urllib3.exceptions import NewConnectionError

    return isinstance(reason, NewConnectionError)


def _raise_for_status(response, creating):
    code = response.status_code
    if code < 400:
        return
    detail = _error_detail(response)
    if code in (401, 403):
        raise Permanent(f"The video service refused the API key (HTTP {code}).{detail}", kind="account")
    if code == 402:
        raise Permanent(f"The video service account has no balance left (HTTP 402).{detail}", kind="account")
    if code == 404 and not creating:
        raise Permanent(f"The video service does not know this job (HTTP 404).{detail}")
    if code in (429, 503):
        # Refused before any work was done, so even a create may be repeated.
        raise Transient(f"The video service is busy (HTTP {code}).{detail}", _retry_after(response))
    if 400 <= code < 500:
        kind = "moderation" if code == 451 else "rejected"
        raise Permanent(f"The video service rejected the request (HTTP {code}).{detail}", kind=kind)
    if creating:
        raise OutcomeUnknown(f"The video service failed while taking the job (HTTP {code}).{detail}")
    raise Transient(f"The video service had an error (HTTP {code}).{detail}")


def _error_detail(response):
    try:
        text = error_text(response.json())
    except ValueError:
        return ""  # An HTML page from a proxy says nothing a person should read.
    return f" {text}" if text else ""


def _retry_after(response):
    try:
        return max(1, min(3600, int(response.headers.get("Retry-After", ""))))
    except ValueError:
        return None


def _json(response, creating=False):
    try:
        data = response.json()
    except ValueError:
        message = "The video service gave an answer that was not JSON."
        raise (OutcomeUnknown if creating else Transient)(message) from None
    if not isinstance(data, dict):
        raise (OutcomeUnknown if creating else Transient)("The video service gave an unexpected answer.")
    return data


# --- Downloading the finished video --------------------------------------------
# The link comes from the gateway, so it is untrusted: it must not make soraweb
# reach into its own network (SSRF). Each hop is resolved once, every address it
# resolves to must be public, and the connection goes to that checked address,
# so a second DNS answer (rebinding) cannot swap in another.

NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeURL(Permanent):
    def __init__(self, message: str) -> None:
        super().__init__(message, kind="download")


def open_video(url: str) -> requests.Response:
    """GET a finished video as a stream, re-checking every redirect; caller closes it."""
    for _ in range(MAX_REDIRECTS + 1):
        address = check_fetchable(url)
        try:
            response = _get(url, address)
        except requests.RequestException as exc:
            raise Transient(f"the video link could not be reached ({type(exc).__name__})") from exc
        if response.is_redirect:
            response.close()
            url = urljoin(url, response.headers.get("Location", ""))
            continue
        if response.status_code in (403, 404, 410):
            response.close()
            raise Permanent(f"the link is dead or expired (HTTP {response.status_code})", kind="download")
        if response.status_code >= 400:
            response.close()
            raise Transient(f"the video host answered HTTP {response.status_code}")
        return response
    raise UnsafeURL(f"the video link redirected more than {MAX_REDIRECTS} times")


def check_fetchable(url: str) -> str | None:
    """Refuse links soraweb must not fetch; return the address to connect to (None: a trusted host)."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeURL("the video link is not a valid address") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURL("the video link is not an http(s) address")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if f"{host}:{port}" in {trusted.lower() for trusted in settings.SORA_TRUSTED_PRIVATE_HOSTS}:
        return None
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG)
    except (socket.gaierror, UnicodeError) as exc:
        raise Transient(f"the video host {parts.hostname} could not be resolved") from exc
    addresses = [str(info[4][0]) for info in infos]
    if not addresses or not all(_is_public(address) for address in addresses):
        raise UnsafeURL("the video link points to a private network address")
    return addresses[0]


def _is_public(address):
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address are judged by that address.
        if carried := ip.ipv4_mapped or ip.sixtofour:
            ip = carried
        elif ip in NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.is_global and not ip.is_multicast


def _get(url, address):
    """One GET, no redirect followed: a trusted host as named, any other only at the checked address."""
    timeout = (settings.SORA_CONNECT_TIMEOUT, settings.SORA_READ_TIMEOUT)
    # The size check counts the bytes of the file itself, not of a compressed body.
    headers = {"Accept-Encoding": "identity", "User-Agent": "soraweb"}
    if address is None:
        return requests.request(
            "GET", url, headers=headers, timeout=timeout, stream=True, allow_redirects=False
        )
    # The adapter alone, not a Session: no redirect is followed and no proxy from the
    # environment gets to make a connection of its own.
    headers["Host"] = urlsplit(url).netloc.rpartition("@")[2]
    request = requests.Request("GET", url, headers=headers).prepare()
    return PinnedAdapter(address).send(request, stream=True, timeout=timeout)


class PinnedAdapter(HTTPAdapter):
    """Connects to one given address, still speaking to the URL's host (Host header, TLS SNI, certificate)."""

    def __init__(self, address):
        self.address = address
        super().__init__(max_retries=0)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        hostname = host_params["host"]
        host_params["host"] = self.address
        if host_params["scheme"] == "https":
            # urllib3 takes both; requests' stub of the dict does not name them.
            pool_kwargs["server_hostname"] = hostname  # type: ignore[typeddict-unknown-key]
            pool_kwargs["assert_hostname"] = hostname  # type: ignore[typeddict-unknown-key]
        return host_params, pool_kwargs


def post_pinned(url: str, body: bytes, headers: dict[str, str], timeout: tuple[float, float]) -> int:
    """POST body to a URL a person gave us (a webhook receiver); returns the HTTP status.

    The same SSRF rules as downloads: private addresses only when trusted, the connection
    pinned to the checked address, no redirect followed. Raises UnsafeURL or
    requests.RequestException; the answer's body is never read.
    """
    address = check_fetchable(url)
    headers = {"User-Agent": "soraweb", "Content-Type": "application/json", **headers}
    if address is None:
        response = requests.request(
            "POST", url, data=body, headers=headers, timeout=timeout, stream=True, allow_redirects=False
        )
    else:
        headers["Host"] = urlsplit(url).netloc.rpartition("@")[2]
        request = requests.Request("POST", url, data=body, headers=headers).prepare()
        response = PinnedAdapter(address).send(request, stream=True, timeout=timeout)
    response.close()
    return response.status_code
