"""/healthz: is every part that moves jobs alive? No sign-in; says nothing secret."""

import threading
import time

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from jobs import disk
from jobs.models import Heartbeat
from soraweb.celery import app


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "reachable"


def _broker():
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return "reachable"


# The ping waits up to a second for replies on a web thread, and /healthz needs no
# sign-in: one ping per process every WORKER_CHECK_TTL seconds, however many ask.
WORKER_CHECK_TTL = 5.0
_worker_lock = threading.Lock()
_worker_checked = None  # (monotonic time of the ping, answer or the exception)


def _ping_workers():
    replies = app.control.ping(timeout=1.0)
    if not replies:
        raise RuntimeError("no Celery worker answered")
    return f"{len(replies)} answering"


def _worker():
    """The latest ping's answer, with its age so a cached answer never passes for a fresh one."""
    global _worker_checked
    with _worker_lock:  # Callers arriving during a ping wait for its answer rather than ping too.
        if _worker_checked is None or time.monotonic() - _worker_checked[0] > WORKER_CHECK_TTL:
            try:
                answer = _ping_workers()
            except Exception as exc:
                answer = exc
            _worker_checked = (time.monotonic(), answer)
        checked_at, answer = _worker_checked
    age = f"checked {time.monotonic() - checked_at:.0f} s ago"
    if isinstance(answer, Exception):
        raise RuntimeError(f"{answer} ({age})")
    return f"{answer} ({age})"


def _sweep():
    age = Heartbeat.age("sweep")
    if age is None:
        raise RuntimeError("no sweep has run yet (is beat running?)")
    if age > 3 * settings.SORA_SWEEP_INTERVAL + 10:
        raise RuntimeError(f"the last sweep ran {age:.0f} s ago (is beat running?)")
    return f"{age:.0f} s ago"


def _storage():
    if shortage := disk.shortage():
        raise RuntimeError(shortage)
    return ", ".join(f"{mb} MB free" for mb in disk.free_mb().values())


CHECKS = {"database": _database, "broker": _broker, "worker": _worker, "sweep": _sweep, "storage": _storage}


def run_checks(names=None):
    results = {}
    for name in names or CHECKS:
        try:
            results[name] = {"ok": True, "detail": CHECKS[name]()}
        except Exception as exc:  # Any failure is the answer, not an error page.
            results[name] = {"ok": False, "detail": str(exc)[:200] or type(exc).__name__}
    return results


@login_not_required
@never_cache
@require_GET
def healthz(request):
    results = run_checks()
    healthy = all(result["ok"] for result in results.values())
    return JsonResponse({"ok": healthy, "checks": results}, status=200 if healthy else 503)
