"""`make run`'s process set, started as a newcomer would: empty DATA_DIR, nothing set.

However it is stopped (SIGTERM to make's process group, a double Ctrl-C, kill -9 of
runstack itself), nothing of the stack outlives it and the next start works. A child
that dies by itself (a crashed worker) is started again and work goes on.
"""

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from jobs.management.commands.runstack import BACKOFF_CAP, restart_delay
from tests.helpers import ROOT, free_port, wait_for


class Stack:
    """One `manage.py runstack` on its own DATA_DIR and ports."""

    def __init__(self, data_dir, port, simulator_port, generation_seconds=60):
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
            [sys.executable, "manage.py", "runstack", f"--generation-seconds={generation_seconds}"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
        # Read by a thread: a test waiting for a line that never comes fails instead of hanging.
        self.output = []
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()
        wait_for(
            lambda: "Ctrl-C" in self.text or self.proc.poll() is not None,
            timeout=180,
            message="runstack to print its URL",
        )
        if not (match := re.search(r"running at (http://\S+)", self.text)):
            pytest.fail("runstack ended without printing its URL:\n" + self.text)
        self.url = match[1]

    def read(self):
        for line in self.proc.stdout:
            self.output.append(line)

    @property
    def text(self):
        return "".join(self.output)

    @property
    def setup_code(self):
        return re.search(r"setup code (\S+)", self.text)[1]

    def pids(self, name):
        """The pids of the processes runstack said it started as name, oldest first."""
        return [int(pid) for pid in re.findall(rf"started {name} \(pid (\d+)\)", self.text)]

    def finish(self, timeout=60):
        self.proc.wait(timeout=timeout)
        self.reader.join(timeout=timeout)  # The watcher shares the pipe: it ends when the watcher does.
        return self.text


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


def live_processes():
    """{pid: process group} of every process that is not a zombie."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, _ppid, group = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
        except OSError:
            continue  # Gone meanwhile.
        if state != "Z":
            found[int(entry.name)] = int(group)
    return found


def redis_answers(data_dir):
    with socket.socket(socket.AF_UNIX) as sock:
        return sock.connect_ex(str(data_dir / "redis.sock")) == 0


def claim(stack):
    """Claim the server with the printed setup code; the signed-in session."""
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
    return session


def ask_for_video(stack, session, prompt):
    session.post(
        stack.url + "new/",
        data={
            "prompt": prompt, "model": "openAiSora2Plus", "aspect_ratio": "16:9", "duration": "4",
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": stack.url + "new/"},
        timeout=30,
    )  # fmt: skip


def statuses(stack):
    """{prompt: status} of every job, read from the stack's own database."""
    with sqlite3.connect(stack.data_dir / "db.sqlite3") as db:
        return dict(db.execute("SELECT prompt, status FROM jobs_videojob"))


def put_jobs_in_flight(stack, count=3):
    """Claim the server, then ask for videos (they render for a minute) and see them reach the simulator."""
    session = claim(stack)
    for i in range(count):
        ask_for_video(stack, session, f"a paper boat, take {i}")

    def in_flight():
        return sum(status in ("queued", "processing") for status in statuses(stack).values())

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


@pytest.mark.integration
@pytest.mark.parametrize("stop", [sigterm_to_makes_group, double_ctrl_c, kill_runstack])
def test_however_it_is_stopped_nothing_of_the_stack_outlives_it(tmp_path, stop):
    data_dir = tmp_path / "data"
    ports = free_port(), free_port()
    stack = Stack(data_dir, *ports)
    put_jobs_in_flight(stack)
    children = [int(pid) for pid in re.findall(r"started \w+ \(pid (\d+)\)", stack.text)]
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


@pytest.mark.integration
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


def test_restarts_wait_longer_after_each_quick_crash_then_every_half_minute():
    assert [restart_delay(n) for n in range(1, 9)] == [1, 2, 4, 8] + [BACKOFF_CAP] * 4


@pytest.mark.integration
def test_a_killed_worker_is_started_again_and_a_job_asked_for_afterwards_finishes(tmp_path):
    data_dir = tmp_path / "data"
    stack = Stack(data_dir, free_port(), free_port(), generation_seconds=2)
    try:
        session = claim(stack)
        [crashed] = stack.pids("worker")
        assert list(live_processes().values()).count(crashed) > 1  # Celery's pool shares its group.

        os.kill(crashed, signal.SIGKILL)  # The worker alone, as a crash would end it.

        wait_for(lambda: len(stack.pids("worker")) == 2, timeout=60, message="a new worker")
        assert "worker exited with code -9; restarting in 1 s" in stack.text
        restarted = stack.pids("worker")[1]
        assert b"worker" in Path(f"/proc/{restarted}/cmdline").read_bytes()
        # The crashed worker's pool went with it: nothing of it holds tasks the new one should run.
        wait_for(lambda: crashed not in live_processes().values(), timeout=30, message="the old pool to go")

        ask_for_video(stack, session, "a paper boat after the crash")
        wait_for(
            lambda: statuses(stack).get("a paper boat after the crash") == "succeeded",
            timeout=180,
            message=f"the job to finish: {statuses(stack)}",
        )
    finally:
        sigterm_to_makes_group(stack)
        output = stack.finish()
    assert stack.proc.returncode == 0, output
    assert "soraweb stopped." in output
    assert output.count(" exited with code ") == 1, output  # Nothing was restarted while stopping.
    wait_for(lambda: not stack_pids(data_dir), timeout=60, message=f"the stack to go: {stack_pids(data_dir)}")
    assert not redis_answers(data_dir), "the embedded Redis still runs"


@pytest.mark.integration
def test_the_watcher_spares_a_group_runstack_has_cleared_up():
    # A process that now has the number of a child that crashed and that runstack cleared up.
    stranger = subprocess.Popen(["sleep", "600"], start_new_session=True)
    child = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        watcher = subprocess.Popen([sys.executable, "-m", "jobs.stackwatch"], cwd=ROOT, stdin=subprocess.PIPE)
        # Then end of input without "done": runstack died without stopping its children.
        watcher.communicate(f"{stranger.pid}\n{child.pid}\n-{stranger.pid}\n".encode(), timeout=60)

        assert child.wait(timeout=30) == -signal.SIGTERM
        assert stranger.poll() is None
    finally:
        stranger.kill()
        child.kill()
