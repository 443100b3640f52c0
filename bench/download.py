"""Worker memory while a 500 MB video is downloaded: it must stream, never hold the file."""

import json
import os
import struct
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VIDEO_BYTES = 500 * 2**20
LIMIT_MB = 30
# A valid MP4 `ftyp` box (what jobs.media checks the first bytes for), then padding.
FTYP = struct.pack(">I4s4sI4s4s", 24, b"ftyp", b"isom", 512, b"isom", b"mp41")
PADDING = bytes(2**20)


class _BigVideo(BaseHTTPRequestHandler):
    """Serves VIDEO_BYTES made on the fly, so the source costs neither disk nor memory."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(VIDEO_BYTES))
        self.end_headers()
        self.wfile.write(FTYP)
        remaining = VIDEO_BYTES - len(FTYP)
        while remaining:
            chunk = PADDING[: min(remaining, len(PADDING))]
            self.wfile.write(chunk)
            remaining -= len(chunk)

    def log_message(self, format, *args):
        pass


def download(results):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BigVideo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        report = _measure_in_child(f"http://127.0.0.1:{server.server_port}/video.mp4", server.server_port)
    finally:
        server.shutdown()
        server.server_close()
    growth = report["download_rss_growth_mb"]
    results.add(
        "download", "worker_rss", "worker memory downloading a 500 MB video",
        f"+{growth:.1f} MB peak RSS while streaming {report['bytes'] / 2**20:.0f} MB in "
        f"{report['download_seconds']:.1f} s; verify step +{report['verify_rss_growth_mb']:.1f} MB",
        f"<= {LIMIT_MB} MB", growth <= LIMIT_MB, **report,
    )  # fmt: skip


def _measure_in_child(url, port):
    """A fresh process, as a worker is: its RSS then shows what the download itself costs."""
    env = {**os.environ, "SORA_TRUSTED_PRIVATE_HOSTS": f"127.0.0.1:{port}", "SORA_DOWNLOAD_TIMEOUT": "300"}
    child = subprocess.run(
        [sys.executable, "-m", "bench.download_child", url],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=360,
    )  # fmt: skip
    if child.returncode:
        raise RuntimeError(f"the download child failed:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.splitlines()[-1])
