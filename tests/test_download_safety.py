"""Downloads never reach into soraweb's own network: private addresses, redirects,
DNS rebinding and TLS with a pinned address. Unit tests of jobs/upstream.py against
tiny in-process servers; the same checks through the whole pipeline are in test_faults.py.
"""

import re
import socket
import subprocess

import pytest

from jobs import upstream
from tests.fakes import Listener, LocalServer, mp4_body


@pytest.fixture
def listener():
    listener = Listener()
    yield listener
    listener.close()


@pytest.fixture
def connections(monkeypatch):
    """The address of every connect() any socket makes from here on; they go ahead as usual."""
    made = []
    connect = socket.socket.connect

    def recording(sock, address):
        made.append(address[:2])
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", recording)
    return made


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://10.0.0.8/v.mp4", "private network address"),
        ("http://169.254.169.254/latest/meta-data/", "private network address"),
        ("http://127.0.0.1:{listener}/v.mp4", "private network address"),
        ("http://localhost:{listener}/v.mp4", "private network address"),
        ("http://[::1]:{listener}/v.mp4", "private network address"),
        ("http://[::ffff:127.0.0.1]:{listener}/v.mp4", "private network address"),
        ("http://0.0.0.0:{listener}/v.mp4", "private network address"),
        ("http://224.0.0.1/v.mp4", "private network address"),
        ("file:///etc/passwd", "not an http(s) address"),
        ("ftp://cdn.example.test/v.mp4", "not an http(s) address"),
        ("http://[::1/v.mp4", "not a valid address"),
        ("http://cdn.example.test:99999/v.mp4", "not a valid address"),
    ],
)
def test_a_link_to_a_private_address_is_refused_before_any_connection(url, words, listener, connections):
    with pytest.raises(upstream.UnsafeURL, match=re.escape(words)):
        upstream.open_video(url.format(listener=listener.port))

    assert connections == []
    assert listener.accepted == []


@pytest.mark.parametrize(
    ("location", "words"),
    [
        ("http://127.0.0.1:{listener}/v.mp4", "private network address"),
        ("http://10.0.0.8/v.mp4", "private network address"),
        ("http://169.254.169.254/latest/meta-data/iam/", "private network address"),
        ("file:///etc/passwd", "not an http(s) address"),
        ("ftp://cdn.example.test/v.mp4", "not an http(s) address"),
        ("/again", "redirected more than 5 times"),
    ],
)
def test_every_redirect_is_checked_again(location, words, settings, listener, connections):
    redirector = LocalServer()
    redirector.routes["/v.mp4"] = (302, {"Location": location.format(listener=listener.port)}, b"")
    redirector.routes["/again"] = (302, {"Location": "/again"}, b"")
    settings.SORA_TRUSTED_PRIVATE_HOSTS = [redirector.hostport]
    try:
        with pytest.raises(upstream.UnsafeURL, match=re.escape(words)):
            upstream.open_video(redirector.url("/v.mp4"))
    finally:
        redirector.close()

    assert set(connections) == {("127.0.0.1", redirector.port)}
    assert listener.accepted == []


PUBLIC = "93.184.216.34"


def reroute(monkeypatch, server):
    """Pretend PUBLIC is the test server: connections to it go to 127.0.0.1; returns what was dialled."""
    import urllib3.util.connection

    dialled = []

    def create_connection(address, timeout=None, *args, **kwargs):
        dialled.append(address)
        assert address[0] == PUBLIC, address
        sock = socket.socket()
        sock.settimeout(timeout if isinstance(timeout, int | float) else None)
        sock.connect(("127.0.0.1", server.port))
        return sock

    monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)
    return dialled


def test_the_connection_goes_to_the_address_that_was_checked(monkeypatch):
    """DNS rebinding: a second answer for the host (a private address) is never asked for nor used."""
    server = LocalServer({"/v.mp4": (200, {"Content-Type": "video/mp4"}, mp4_body(1000))})
    answers = iter([PUBLIC, "127.0.0.1"])
    lookups = []

    def getaddrinfo(host, port, *args, **kwargs):
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    dialled = reroute(monkeypatch, server)
    try:
        with upstream.open_video(f"http://cdn.example.test:{server.port}/v.mp4") as response:
            body = response.raw.read()
    finally:
        server.close()

    assert body[4:8] == b"ftyp"
    assert lookups == ["cdn.example.test"]
    assert dialled == [(PUBLIC, server.port)]
    assert server.requests == [{"path": "/v.mp4", "host": f"cdn.example.test:{server.port}"}]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for cdn.example.test (openssl, as Debian ships it)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=cdn.example.test",
         "-addext", "subjectAltName=DNS:cdn.example.test"],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


def test_https_is_pinned_yet_checks_the_certificate_of_the_named_host(monkeypatch, certificate):
    import requests.adapters

    server = LocalServer({"/v.mp4": (200, {}, mp4_body(1000))}, certificate=certificate)
    monkeypatch.setattr(
        socket, "getaddrinfo", lambda host, port, *a, **kw: [(socket.AF_INET, 1, 6, "", (PUBLIC, port))]
    )
    dialled = reroute(monkeypatch, server)
    monkeypatch.setattr(requests.adapters, "DEFAULT_CA_BUNDLE_PATH", certificate[0])
    try:
        with upstream.open_video(f"https://cdn.example.test:{server.port}/v.mp4") as response:
            body = response.raw.read()
        # The certificate does not prove another name: pinning the address is no way around TLS.
        with pytest.raises(upstream.Transient, match="SSLError"):
            upstream.open_video(f"https://other.example.test:{server.port}/v.mp4")
    finally:
        server.close()

    assert body[4:8] == b"ftyp"
    assert dialled == [(PUBLIC, server.port)] * 2
    assert server.server_names == ["cdn.example.test", "other.example.test"]
