"""The first account: only whoever holds the setup code the server printed can claim it, once."""

import logging
import re
import stat
import threading

import pytest
import requests
from django.urls import reverse

from jobs import firstrun

PASSWORD = "a long pass phrase 9"


@pytest.fixture(autouse=True)
def fresh_code():
    firstrun.forget_code()
    yield
    firstrun.forget_code()


def first_account(code, username="ada"):
    return {"setup_code": code, "username": username, "password1": PASSWORD, "password2": PASSWORD}


def test_without_the_setup_code_no_account_is_made(client, django_user_model):
    firstrun.setup_code()
    response = client.post(reverse("jobs:setup"), first_account("ABCD-EFGH-JKMN"))
    assert response.status_code == 200
    assert "not the setup code" in response.content.decode()
    assert not django_user_model.objects.exists()


def test_an_empty_setup_code_is_refused(client, django_user_model):
    client.post(reverse("jobs:setup"), first_account(""))
    assert not django_user_model.objects.exists()


def test_the_code_is_accepted_as_a_person_types_it(client, django_user_model):
    code = firstrun.setup_code()
    client.post(reverse("jobs:setup"), first_account("  " + code.lower().replace("-", " ") + " "))
    assert django_user_model.objects.get().is_superuser


def test_the_code_dies_with_the_first_account(client, django_user_model, django_capture_on_commit_callbacks):
    code = firstrun.setup_code()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("jobs:setup"), first_account(code))
    assert not firstrun.code_path().exists()
    client.logout()
    client.post(reverse("jobs:setup"), first_account(code, "eve"))
    assert list(django_user_model.objects.values_list("username", flat=True)) == ["ada"]


def test_the_setup_page_says_where_to_find_the_code(client, db):
    page = client.get(reverse("jobs:setup")).content.decode()
    assert "docker compose logs web" in page and "logs/web.log" in page
    assert 'name="setup_code"' in page


def test_the_first_visit_makes_the_code_and_logs_it(client, db, caplog):
    with caplog.at_level(logging.WARNING, logger="jobs.firstrun"):
        logger = logging.getLogger("jobs.firstrun")
        logger.addHandler(caplog.handler)  # "jobs" does not propagate to the root logger.
        try:
            client.get(reverse("jobs:setup"))
        finally:
            logger.removeHandler(caplog.handler)
    assert firstrun.setup_code() in caplog.text


def test_the_code_file_is_readable_only_by_the_server():
    firstrun.setup_code()
    assert stat.S_IMODE(firstrun.code_path().stat().st_mode) == 0o600


def test_web_start_announces_the_code_only_while_nobody_exists(db, django_user_model):
    assert firstrun.announce() == firstrun.setup_code()
    django_user_model.objects.create_superuser("root", password=PASSWORD)
    assert firstrun.announce() is None
    assert not firstrun.code_path().exists()


# --- Under concurrency, against a real threaded server -----------------------------


def race(url, code, contenders=6):
    """contenders browsers load /setup/, then all post it at once; their final URLs."""
    sessions, tokens = [], []
    for _ in range(contenders):
        session = requests.Session()
        page = session.get(url, timeout=30).text
        tokens.append(re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1])
        sessions.append(session)
    start = threading.Barrier(contenders)
    results = [None] * contenders

    def post(i):
        start.wait()
        response = sessions[i].post(
            url,
            data={**first_account(code, f"user{i}"), "csrfmiddlewaretoken": tokens[i]},
            headers={"Referer": url},
            timeout=60,
        )
        results[i] = response.status_code

    threads = [threading.Thread(target=post, args=(i,)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.integration
def test_concurrent_posts_without_the_code_make_no_account(live_server, django_user_model):
    url = live_server.url + reverse("jobs:setup")

    results = race(url, "WRONG-CODE-0000")

    assert results == [200] * len(results)  # The form again, with its error.
    assert not django_user_model.objects.exists()


@pytest.mark.integration
def test_concurrent_posts_with_the_code_make_exactly_one_admin(live_server, django_user_model):
    url = live_server.url + reverse("jobs:setup")
    requests.get(url, timeout=30)  # The first visit makes the code; the operator reads it off the console.

    race(url, firstrun.setup_code())

    assert django_user_model.objects.count() == 1
    assert django_user_model.objects.get().is_superuser
    assert requests.get(url, timeout=30).url == live_server.url + reverse("login")
