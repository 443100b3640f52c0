"""What signed-in pages tell caches, and how a refused request is logged."""

import logging
import sys

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from jobs.logfilters import OneLineClientErrors
from jobs.models import VideoJob
from tests.factories import image_bytes, make_job


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def test_a_signed_in_page_is_not_stored_by_browsers_or_proxies(client, alice):
    client.force_login(alice)
    for url in (reverse("jobs:gallery"), reverse("jobs:create"), reverse("password_change")):
        assert client.get(url)["Cache-Control"] == "private, no-store"


def test_media_keeps_its_own_private_lifetime(client, alice):
    job = make_job(alice, status=VideoJob.Status.SUCCEEDED)
    job.poster.save("p.jpg", ContentFile(image_bytes(64, 36, "JPEG")))
    client.force_login(alice)
    assert client.get(reverse("jobs:poster", args=[job.pk]))["Cache-Control"] == "private, max-age=86400"


def test_the_admin_keeps_its_never_cache(admin_client):
    assert "no-store" in admin_client.get(reverse("admin:index"))["Cache-Control"]


def test_a_403_is_logged_as_one_line(client, alice, bob, settings):
    settings.SORAWEB_GALLERY_SCOPE = "team"
    job = make_job(alice, status=VideoJob.Status.QUEUED)
    client.force_login(bob)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    handler.addFilter(OneLineClientErrors())
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        assert client.post(reverse("jobs:cancel", args=[job.pk])).status_code == 403
    finally:
        logger.removeHandler(handler)
    [record] = records
    line = logging.Formatter("%(levelname)s %(name)s %(message)s").format(record)
    assert line == f"WARNING django.request Forbidden (Permission denied): /jobs/{job.pk}/cancel/"


def test_a_500_keeps_its_traceback():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("django.request", logging.ERROR, __file__, 1, "x", (), sys.exc_info())
    record.status_code = 500
    OneLineClientErrors().filter(record)
    assert record.exc_info
