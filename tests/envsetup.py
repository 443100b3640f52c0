"""Loaded by pytest (-p) before Django: each run gets a fresh DATA_DIR of its own.

So the suite never touches ./data (a running `make run`) and, on the embedded
defaults, starts its own Redis, stopped again when the run ends. This runs at
import time because pytest-django reads the settings before any configure hook.
"""

import os
import shutil
import tempfile

_own_data_dir = None
if not os.environ.get("DATA_DIR"):
    _own_data_dir = tempfile.mkdtemp(prefix="soraweb-test-")
    os.environ["DATA_DIR"] = _own_data_dir
if not os.environ.get("REDIS_URL"):
    # The suite's own embedded Redis, for the test client's enqueues and the workers it starts.
    from soraweb import embedded_redis

    embedded_redis.ensure_running(os.environ["DATA_DIR"])
# Tests never talk to the real gateway, whatever the shell has set: a key of their own,
# and an address nothing listens on (integration tests point processes at the simulator).
os.environ.pop("SORA_API_KEY_FILE", None)
os.environ.update(
    SORA_API_KEY="test-gateway-key",
    SORA_API_BASE_URL="http://127.0.0.1:9",
    PUBLIC_BASE_URL="http://127.0.0.1:8000",
)
os.environ.pop("SORA_DEMO_MODE", None)


def pytest_unconfigure(config):
    if not os.environ.get("REDIS_URL"):
        from soraweb import embedded_redis

        embedded_redis.stop(os.environ["DATA_DIR"])
    if _own_data_dir:
        shutil.rmtree(_own_data_dir, ignore_errors=True)
