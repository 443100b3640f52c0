"""Settings compute values and start nothing: a management command leaves no process behind."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from soraweb import embedded_redis
from tests.helpers import ROOT

# It runs manage.py in a process of its own.
pytestmark = [pytest.mark.integration]


def processes_mentioning(text):
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                found.append(cmdline.parent.name)
        except OSError:
            continue  # The process ended while we looked.
    return found


def test_a_management_command_on_the_embedded_default_starts_no_redis(tmp_path):
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env["DATA_DIR"] = str(data_dir)

    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    assert not embedded_redis.socket_path(data_dir).exists()
    assert processes_mentioning(str(data_dir)) == []
