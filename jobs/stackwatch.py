"""Stops `make run`'s processes if runstack dies without stopping them (kill -9, a crash).

runstack starts this first, in a session of its own, with a pipe on stdin, and writes
each child's process group to it as it starts them ("-group" once such a child has
exited by itself and runstack has cleared up its group), then "done" once it has
stopped them itself. End of input without "done" means runstack is gone: every group
it named gets SIGTERM, then SIGKILL, and the embedded Redis is stopped through its pidfile.
Plain Python, no Django: it must work whatever state the project is in.
"""

import contextlib
import os
import signal
import sys
import time
from pathlib import Path


def kill_groups(groups, grace=10.0):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, sig)
        deadline = time.monotonic() + grace
        while sig == signal.SIGTERM and time.monotonic() < deadline and any(map(_group_alive, groups)):
            time.sleep(0.2)


def _group_alive(group):
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def stop_redis(pidfile):
    with contextlib.suppress(OSError, ValueError):
        pid = int(Path(pidfile).read_text().strip())
        os.kill(pid, signal.SIGTERM)


def main():
    # Signals meant for runstack's terminal or process group are not for the watcher.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    redis_pidfile = sys.argv[1] if len(sys.argv) > 1 else ""
    groups = set()
    for line in sys.stdin:
        line = line.strip()
        if line == "done":
            return
        if line.isdigit():
            groups.add(int(line))
        elif line.startswith("-") and line[1:].isdigit():
            # Gone: its number may be given to another process, which is none of ours.
            groups.discard(int(line[1:]))
    kill_groups(groups)
    if redis_pidfile:
        stop_redis(redis_pidfile)


if __name__ == "__main__":
    main()
