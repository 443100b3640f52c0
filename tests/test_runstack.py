"""`make run`'s process set, started as a newcomer would: empty DATA_DIR, nothing set."""

import os
import re
import signal
import socket
import subprocess
import sys

import pytest
import requests

from tests.helpers import ROOT, free_port

pytestmark = [pytest.mark.integration]


def test_runstack_serves_the_first_run_page_and_stops_everything_on_sigterm(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SORA_API_KEY")}
    env.update(DATA_DIR=str(tmp_path / "data"), PORT=str(free_port()), SORA_SIMULATOR_PORT=str(free_port()))
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runstack"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = []
    try:
        for line in proc.stdout:
            output.append(line)
            if match := re.search(r"running at (http://\S+)", line):
                break
        else:
            pytest.fail("runstack ended without printing its URL:\n" + "".join(output))

        page = requests.get(match[1], timeout=10)

        assert page.status_code == 200
        assert "/setup/" in page.url
        assert "Demo mode" in page.text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, "".join(output) + rest
    assert "soraweb stopped." in rest
    children = [int(pid) for pid in re.findall(r"started \w+ \(pid (\d+)\)", "".join(output))]
    assert len(children) == 4  # simulator, worker, beat, web
    assert not [pid for pid in children if alive(pid)]
    with socket.socket(socket.AF_UNIX) as sock:
        assert sock.connect_ex(str(tmp_path / "data" / "redis.sock")) != 0, "the embedded Redis still runs"


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
