"""Pages stay light: images at the sizes shown, static files cached for good, a description for each page."""

import re
from io import BytesIO

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.templatetags.static import static
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from jobs import media
from jobs.models import VideoJob
from tests.factories import image_bytes, make_job

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]
Status = VideoJob.Status


def stored_job(owner, poster=(640, 1138), reference=(720, 1280)):
    job = make_job(owner, status=Status.SUCCEEDED, aspect_ratio="9:16", completed_at=timezone.now())
    job.poster.save("job.jpg", ContentFile(image_bytes(*poster, "JPEG")), save=False)
    job.reference_image.save("ref.jpg", ContentFile(image_bytes(*reference, "JPEG")), save=False)
    job.save()
    return job


def served_width(client, url):
    response = client.get(url)
    assert response.status_code == 200, url
    return Image.open(BytesIO(b"".join(response.streaming_content))).width


def test_posters_and_reference_images_are_served_at_the_width_asked(client, alice):
    job = stored_job(alice)
    media.make_image_sizes(job)
    client.force_login(alice)
    poster, reference = reverse("jobs:poster", args=[job.pk]), reverse("jobs:reference_image", args=[job.pk])

    assert [served_width(client, f"{poster}?w={w}") for w in (160, 320)] == [160, 320]
    assert served_width(client, poster) == 640
    assert served_width(client, f"{reference}?w=160") == 160


@pytest.mark.parametrize("width", ["abc", "-1", "320.0", "1e3", "٣٢٠", "99999999999", "9" * 5000, "", "640"])
def test_an_odd_width_gets_the_whole_poster(client, alice, width):
    job = stored_job(alice)
    media.make_image_sizes(job)
    client.force_login(alice)

    assert served_width(client, reverse("jobs:poster", args=[job.pk]) + f"?w={width}") == 640


def test_videos_stored_before_small_copies_get_them_from_the_backfill(client, alice):
    job = stored_job(alice)
    client.force_login(alice)
    poster = reverse("jobs:poster", args=[job.pk]) + "?w=160"
    assert served_width(client, poster) == 640  # Until the backfill, the whole poster.

    call_command("make_thumbnails")

    assert served_width(client, poster) == 160


def test_the_backfill_skips_a_job_whose_file_is_gone_and_carries_on(alice, capsys):
    fine, broken = stored_job(alice), stored_job(alice)
    broken.poster.storage.delete(broken.poster.name)

    call_command("make_thumbnails")

    assert fine.poster.storage.exists(media.sized_name(fine.poster.name, 160))
    assert f"job {broken.pk}:" in capsys.readouterr().err


def test_small_copies_keep_the_images_shape(alice):
    job = stored_job(alice)
    media.make_image_sizes(job)
    with job.poster.storage.open(media.sized_name(job.poster.name, 320)) as copy:
        assert Image.open(copy).size == (320, 569)


def test_deleting_a_job_deletes_its_small_copies(alice):
    job = stored_job(alice)
    media.make_image_sizes(job)
    storage, names = job.poster.storage, [media.sized_name(job.poster.name, w) for w in media.IMAGE_WIDTHS]

    media.delete_files(job)

    assert not any(storage.exists(name) for name in names)


def test_the_gallery_offers_posters_by_width_and_loads_only_the_first_row_at_once(client, alice):
    jobs = [stored_job(alice) for _ in range(6)]
    client.force_login(alice)
    page = client.get("/").content.decode()

    images = re.findall(r"<img [^>]+>", page)
    assert len(images) == 6
    assert all("?w=160 160w" in image and "sizes=" in image for image in images)
    assert ["lazy" in image for image in images] == [False] * 4 + [True] * 2
    assert f'src="/jobs/{jobs[-1].pk}/poster.jpg?w=320"' in images[0]


def test_the_video_page_shows_a_small_reference_thumbnail(client, alice):
    job = stored_job(alice)
    client.force_login(alice)
    page = client.get(reverse("jobs:detail", args=[job.pk])).content.decode()
    assert f'src="/jobs/{job.pk}/reference.jpg?w=160"' in page


def test_every_page_has_a_meta_description(client, alice):
    job = stored_job(alice, reference=(720, 1280))
    pages = ["/accounts/login/", "/", "/new/", reverse("jobs:detail", args=[job.pk])]
    descriptions = []
    for url in pages:
        page = client.get(url).content.decode()
        descriptions.append(re.search(r'<meta name="description" content="([^"]{20,})">', page)[1])
        client.force_login(alice)
    assert len(set(descriptions)) == len(pages)


def test_collected_static_files_get_hashed_names_and_a_long_cache(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path / "static"
    call_command("collectstatic", interactive=False, verbosity=0)

    url = static("css/app.css")
    response = Client().get(url)

    assert re.fullmatch(r"/static/css/app\.[0-9a-f]{12}\.css", url)
    assert response.status_code == 200
    assert "immutable" in response["Cache-Control"]
    assert int(re.search(r"max-age=(\d+)", response["Cache-Control"])[1]) >= 365 * 24 * 3600


def test_without_collectstatic_pages_still_name_static_files_plainly(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path / "empty"
    assert static("css/app.css") == "/static/css/app.css"
