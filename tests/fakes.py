"""Fakes: answers from the gateway's HTTP chokepoint for unit tests, and small local servers
standing in for video hosts."""

import contextlib
import io
import json as jsonlib
import os
import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests


def answer(status=200, json=None, text=None, headers=None):
    response = requests.Response()
    response.status_code = status
    response._content = (jsonlib.dumps(json) if json is not None else text or "").encode()
    response.raw = io.BytesIO(response._content)
    response.headers.update(headers or {})
    return response


class FakeGateway:
    """Stands in for requests.request in jobs.upstream: answers or raises in order."""

    def __init__(self, monkeypatch):
        self.calls = []
        self.replies = []
        monkeypatch.setattr("jobs.upstream.requests.request", self)

    def reply(self, *replies):
        self.replies.extend(replies)
        return self

    def __call__(self, method, url, **kwargs):
        self.calls.append({"method": method, "url": url, **kwargs})
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


# --- Local servers standing in for video hosts (download safety and faults) ---


class LocalServer:
    """A tiny HTTP server on 127.0.0.1: path -> (status, headers, body); body may be an iterable."""

    def __init__(self, routes=None, certificate=None):
        self.routes = routes or {}
        self.requests = []
        self.server_names = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append({"path": self.path, "host": self.headers.get("Host")})
                status, headers, body = server.routes.get(self.path, (404, {}, b"not here"))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if isinstance(body, bytes):
                    self.send_header("Content-Length", str(len(body)))
                    body = [body]
                self.end_headers()
                with contextlib.suppress(ConnectionError):
                    for chunk in body:
                        self.wfile.write(chunk)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if certificate:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*certificate)
            context.sni_callback = lambda sock, name, ctx: self.server_names.append(name)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def port(self):
        return self.httpd.server_address[1]

    @property
    def hostport(self):
        return f"127.0.0.1:{self.port}"

    def url(self, path):
        return f"http://{self.hostport}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Listener:
    """A TCP port that accepts connections, holds them open and counts them."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.accepted = []
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def port(self):
        return self.sock.getsockname()[1]

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def _accept(self):
        while not self.closing:
            with contextlib.suppress(TimeoutError, OSError):
                self.accepted.append(self.sock.accept()[0])

    def close(self):
        self.closing = True
        for conn in self.accepted:
            conn.close()
        self.sock.close()


def mp4_body(size):
    """Bytes that start like an MP4 file."""
    return b"\x00\x00\x00\x18ftypmp42" + b"\x00" * (size - 12)


# --- 1. A worker killed (kill -9) at each step -------------------------------------


class PrivatePostgres:
    """A PostgreSQL server of the caller's own: Debian's binaries, a temp data folder, a free
    port. Never the machine's shared server: stopping that would hit everyone using it.

    PostgreSQL refuses to run as root, so as root it runs as the `postgres` user.
    """

    def __init__(self):
        import glob
        import tempfile

        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        self.missing = None if found else "no PostgreSQL server binaries under /usr/lib/postgresql"
        self.bin = os.path.dirname(found[-1]) if found else ""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.folder = tempfile.mkdtemp(prefix="soraweb-pg-")
        self.data = os.path.join(self.folder, "data")
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)

    def _run(self, program, *args, check=True):
        command = [os.path.join(self.bin, program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120)

    def url(self, database="postgres"):
        return f"postgres://soraweb@127.0.0.1:{self.port}/{database}"

    def start(self):
        if not os.path.exists(self.data):
            self._run("initdb", "-D", self.data, "-A", "trust", "-U", "soraweb", "-E", "UTF8", "--no-sync")
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off"
        )
        log = os.path.join(self.folder, "server.log")
        self._run("pg_ctl", "-D", self.data, "-l", log, "-o", options, "-w", "-t", "60", "start")
        return self

    def stop(self, mode="fast"):
        """fast: connections are cut, as in a restart; immediate: as if the machine died."""
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop", check=False)

    def restart(self):
        self.stop()
        self.start()

    def create_database(self, name):
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def query(self, database, sql, params=()):
        import psycopg

        with psycopg.connect(self.url(database), connect_timeout=5) as conn:
            return conn.execute(sql, params).fetchall()

    def close(self):
        import shutil

        if self.bin and os.path.exists(self.data):
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
