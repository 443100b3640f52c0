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
# Tests never talk to the real gateway, whatever the shell has set.
os.environ.pop("SORA_API_KEY", None)
os.environ.pop("SORA_API_KEY_FILE", None)


def pytest_unconfigure(config):
    if not os.environ.get("REDIS_URL"):
        from soraweb import embedded_redis

        embedded_redis.stop(os.environ["DATA_DIR"])
    if _own_data_dir:
        shutil.rmtree(_own_data_dir, ignore_errors=True)
