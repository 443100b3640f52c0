"""Outgrowing one machine, the parts that need no service: which settings make machines
share services, and what media on a bucket changes for forms and the sweep."""

from datetime import timedelta

import pytest

from jobs.forms import VideoJobForm
from jobs.media import abort_stale_uploads
from soraweb.settings import shares_services


@pytest.mark.parametrize(
    ("database_url", "redis_url", "shared"),
    [
        ("postgres://db.internal/soraweb", "redis://redis.internal:6379/0", True),
        ("postgres://db.internal/soraweb", "", False),  # The embedded Redis: this machine's own.
        ("sqlite:////data/db.sqlite3", "redis://redis.internal:6379/0", False),
        ("", "", False),  # make run.
    ],
)
def test_only_a_database_server_and_a_redis_server_make_a_shared_setup(database_url, redis_url, shared):
    assert shares_services(database_url, redis_url) is shared


def test_with_media_on_a_bucket_reference_images_need_no_public_address(settings):
    settings.PUBLIC_BASE_URL, settings.S3_BUCKET = "", "team-media"

    assert VideoJobForm().references_allowed


def test_without_a_bucket_or_a_public_address_reference_images_are_refused(settings):
    settings.PUBLIC_BASE_URL, settings.S3_BUCKET = "", ""

    assert not VideoJobForm().references_allowed


def test_on_local_disk_there_are_no_unfinished_uploads_to_abort(media):
    assert abort_stale_uploads(older_than=timedelta(0)) == 0
