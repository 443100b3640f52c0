"""Loaded by pytest (-p) before Django: each run gets a fresh DATA_DIR of its own.

So the suite never touches ./data (a running `make run`) and, on the embedded
defaults, starts its own Redis, stopped again when the run ends. This runs at
import time because pytest-django reads the settings before any configure hook.

Under pytest-xdist each worker is a process of its own that imports this too,
with the controller's environment: it moves into a DATA_DIR of its own below the
run's (so its own SQLite files, media and embedded Redis), and on a shared Redis
(REDIS_URL set) onto a database number of its own. The processes the tests start
inherit both through conftest's service_env(). pytest-django gives each worker
its own test database (test-db.sqlite3_gw0, test_soraweb_gw0).
"""

import os
import shutil
import tempfile
from urllib.parse import urlsplit

_own_data_dir = None
if not os.environ.get("DATA_DIR"):
    _own_data_dir = tempfile.mkdtemp(prefix="soraweb-test-")
    os.environ["DATA_DIR"] = _own_data_dir
# Tests never talk to the real gateway, whatever the shell has set: a key of their own,
# and an address nothing listens on (integration tests point processes at the simulator).
os.environ.pop("SORA_API_KEY_FILE", None)
os.environ.update(
    SORA_API_KEY="test-gateway-key",
    SORA_API_BASE_URL="http://127.0.0.1:9",
    PUBLIC_BASE_URL="http://127.0.0.1:8000",
)
os.environ.pop("SORA_DEMO_MODE", None)
# On PostgreSQL and a shared Redis (CI) the settings refuse to make up a key per machine;
# the suite and the processes it starts are one machine, so one key of the run's own.
if os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL") and not os.environ.get("SECRET_KEY"):
    import secrets

    os.environ["SECRET_KEY"] = secrets.token_urlsafe(50)


def worker_redis_url(url, worker, count):
    """The shared Redis URL moved to its database number + N for xdist worker gwN."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or parts.query:
        raise RuntimeError(f"cannot give each xdist worker its own database of REDIS_URL={url}; use -n 0")
    first = int(parts.path.strip("/") or 0)
    if first + count - 1 > 15:  # Redis has 16 databases unless configured otherwise.
        raise RuntimeError(f"REDIS_URL={url} leaves too few databases for {count} xdist workers")
    return parts._replace(path=f"/{first + int(worker.removeprefix('gw'))}").geturl()


_worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ...; xdist sets it before loading plugins.
if _worker:
    _worker_dir = os.path.join(os.environ["DATA_DIR"], _worker)
    os.makedirs(_worker_dir, exist_ok=True)
    os.environ["DATA_DIR"] = _worker_dir
    if os.environ.get("REDIS_URL"):
        count = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
        os.environ["REDIS_URL"] = worker_redis_url(os.environ["REDIS_URL"], _worker, count)


def pytest_configure(config):
    if os.environ.get("REDIS_URL"):
        return
    if not _worker and getattr(config.option, "numprocesses", None):
        return  # The xdist controller runs no test: only its workers need a broker.
    # The embedded Redis of this process's DATA_DIR, for the test client's enqueues and
    # the workers it starts.
    from soraweb import embedded_redis

    embedded_redis.ensure_running(os.environ["DATA_DIR"])


def pytest_unconfigure(config):
    if not os.environ.get("REDIS_URL"):
        from soraweb import embedded_redis

        embedded_redis.stop(os.environ["DATA_DIR"])
    if _own_data_dir:
        shutil.rmtree(_own_data_dir, ignore_errors=True)
