"""/healthz for the public: the worker ping is shared for a few seconds and says how old it is."""

import re

import pytest
from django.test import Client

from jobs import health


@pytest.fixture
def pings(monkeypatch):
    """Counts worker pings; each answers what `answer` holds."""
    calls = []
    answer = {"value": "1 answering"}

    def ping():
        calls.append(1)
        if isinstance(answer["value"], Exception):
            raise answer["value"]
        return answer["value"]

    monkeypatch.setattr(health, "_ping_workers", ping)
    monkeypatch.setattr(health, "_worker_checked", None)
    return calls, answer


def worker_check():
    response = Client().get("/healthz")
    return response.json()["checks"]["worker"]


def test_a_flood_of_health_checks_pings_the_workers_once(db, pings):
    calls, _ = pings
    for _ in range(20):
        worker_check()
    assert len(calls) == 1


def test_a_shared_answer_says_how_old_it_is(db, pings):
    check = worker_check()
    assert check["ok"] and re.fullmatch(r"1 answering \(checked \d+ s ago\)", check["detail"])


def test_a_failing_ping_is_reported_as_failing_while_it_is_shared(db, pings):
    calls, answer = pings
    answer["value"] = RuntimeError("no Celery worker answered")
    first, second = worker_check(), worker_check()
    assert not first["ok"] and not second["ok"]
    assert "no Celery worker answered" in second["detail"]
    assert len(calls) == 1


def test_an_answer_older_than_its_lifetime_is_not_reused(db, pings, monkeypatch):
    calls, _ = pings
    worker_check()
    checked_at, answer = health._worker_checked
    monkeypatch.setattr(health, "_worker_checked", (checked_at - health.WORKER_CHECK_TTL - 1, answer))
    worker_check()
    assert len(calls) == 2
