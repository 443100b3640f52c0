"""`make run`'s process set, started as a newcomer would: empty DATA_DIR, nothing set.

However it is stopped (SIGTERM to make's process group, a double Ctrl-C, kill -9 of
runstack itself), nothing of the stack outlives it and the next start works.
"""

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import ROOT, free_port, wait_for

pytestmark = [pytest.mark.integration]


class Stack:
    """One `manage.py runstack` on its own DATA_DIR and ports."""

    def __init__(self, data_dir, port, simulator_port):
        self.data_dir = data_dir
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SORA_API_KEY")}
        env.update(
            DATA_DIR=str(data_dir),
            PORT=str(port),
            SORA_SIMULATOR_PORT=str(simulator_port),
            PYTHONUNBUFFERED="1",
        )
        # Its own process group, as `make run` in a terminal is (make and runstack share it).
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "runstack", "--generation-seconds=60"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
        self.output = []
        for line in self.proc.stdout:
            self.output.append(line)
            if match := re.search(r"running at (http://\S+)", line):
                self.url = match[1]
                break
        else:
            pytest.fail("runstack ended without printing its URL:\n" + "".join(self.output))
        for line in self.proc.stdout:  # The lines after the URL, up to "Press Ctrl-C".
            self.output.append(line)
            if "Ctrl-C" in line:
                break

    @property
    def setup_code(self):
        return re.search(r"setup code (\S+)", "".join(self.output))[1]

    def finish(self, timeout=60):
        rest, _ = self.proc.communicate(timeout=timeout)
        return "".join(self.output) + rest


def stack_pids(data_dir):
    """Processes that belong to the stack on data_dir: its DATA_DIR in their environment or command."""
    mine = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == mine:
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # A zombie waits for its parent to read its exit status; it runs nothing.
            seen = (entry / "environ").read_bytes() + (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(data_dir).encode() in seen:
            found.append(int(entry.name))
    return found


def redis_answers(data_dir):
    with socket.socket(socket.AF_UNIX) as sock:
        return sock.connect_ex(str(data_dir / "redis.sock")) == 0


def put_jobs_in_flight(stack, count=3):
    """Claim the server with the printed setup code, then ask for videos (they render for a minute)."""
    session = requests.Session()
    setup = stack.url + "setup/"
    session.get(setup, timeout=30)
    password = "a long pass phrase 9"
    session.post(
        setup,
        data={
            "setup_code": stack.setup_code, "username": "ada", "password1": password, "password2": password,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": setup},
        timeout=30,
    )  # fmt: skip
    for i in range(count):
        session.post(
            stack.url + "new/",
            data={
                "prompt": f"a paper boat, take {i}", "model": "openAiSora2Plus", "aspect_ratio": "16:9",
                "duration": "4", "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            headers={"Referer": stack.url + "new/"},
            timeout=30,
        )  # fmt: skip

    def in_flight():
        with sqlite3.connect(stack.data_dir / "db.sqlite3") as db:
            return db.execute(
                "SELECT COUNT(*) FROM jobs_videojob WHERE status IN ('queued', 'processing')"
            ).fetchone()[0]

    wait_for(lambda: in_flight() == count, timeout=60, message="the jobs to reach the simulator")


def sigterm_to_makes_group(stack):
    os.killpg(stack.proc.pid, signal.SIGTERM)
    os.kill(stack.proc.pid, signal.SIGTERM)  # make passes its own SIGTERM on to runstack.


def double_ctrl_c(stack):
    os.killpg(stack.proc.pid, signal.SIGINT)
    time.sleep(0.2)  # A person pressing twice.
    os.killpg(stack.proc.pid, signal.SIGINT)


def kill_runstack(stack):
    os.kill(stack.proc.pid, signal.SIGKILL)


@pytest.mark.parametrize("stop", [sigterm_to_makes_group, double_ctrl_c, kill_runstack])
def test_however_it_is_stopped_nothing_of_the_stack_outlives_it(tmp_path, stop):
    data_dir = tmp_path / "data"
    ports = free_port(), free_port()
    stack = Stack(data_dir, *ports)
    put_jobs_in_flight(stack)
    children = [int(pid) for pid in re.findall(r"started \w+ \(pid (\d+)\)", "".join(stack.output))]
    assert len(children) == 4  # simulator, worker, beat, web
    assert len(stack_pids(data_dir)) > 5  # They, their own children and Redis.

    stop(stack)
    output = stack.finish()

    if stop is not kill_runstack:
        assert stack.proc.returncode == 0, output
        assert "soraweb stopped." in output
    wait_for(lambda: not stack_pids(data_dir), timeout=60, message=f"the stack to go: {stack_pids(data_dir)}")
    assert not redis_answers(data_dir), "the embedded Redis still runs"

    again = Stack(data_dir, *ports)  # The same ports: nothing holds them.
    assert requests.get(again.url, timeout=10).status_code == 200
    os.killpg(again.proc.pid, signal.SIGTERM)
    assert "soraweb stopped." in again.finish()
    wait_for(lambda: not stack_pids(data_dir), timeout=60, message="the second stack to go")


def test_the_first_run_page_asks_for_the_code_printed_beside_the_url(tmp_path):
    stack = Stack(tmp_path / "data", free_port(), free_port())
    try:
        page = requests.get(stack.url, timeout=10)
        assert "/setup/" in page.url and "Demo mode" in page.text
        assert re.fullmatch(r"[2-9A-Z]{4}-[2-9A-Z]{4}-[2-9A-Z]{4}", stack.setup_code)
        web_log = (tmp_path / "data" / "logs" / "web.log").read_text()
        assert stack.setup_code in web_log  # What gunicorn alone (docker compose logs web) shows.
    finally:
        os.killpg(stack.proc.pid, signal.SIGTERM)
        stack.finish()
