"""Variants: one submission makes a group; the group page keeps one and deletes the rest;
an earlier reference image is reused without a second copy."""

import re
import uuid
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from jobs import media
from jobs.models import VideoJob
from tests.factories import image_bytes, make_job, tiny_mp4, upload

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]
Status = VideoJob.Status


def signed_in(client, user):
    client.force_login(user)
    return client


def create_data(**overrides):
    return {
        "prompt": "a paper boat",
        "model": "openAiSora2Plus",
        "aspect_ratio": "16:9",
        "duration": "8",
    } | overrides


def finished(owner, group=None, **fields):
    job = make_job(owner, group=group, status=Status.SUCCEEDED, completed_at=timezone.now(), **fields)
    job.video.save("job.mp4", ContentFile(tiny_mp4()), save=False)
    job.poster.save("job.jpg", ContentFile(image_bytes(128, 72, "JPEG")), save=False)
    job.save()
    return job


def with_reference(owner, aspect_ratio="16:9"):
    job = make_job(owner, aspect_ratio=aspect_ratio, status=Status.SUCCEEDED, reference_note="Fitted.")
    size = VideoJob.SIZES[aspect_ratio]
    job.reference_image.save("ref.jpg", ContentFile(image_bytes(*size, "JPEG")), save=True)
    return job


def test_three_variants_make_three_jobs_in_one_group_each_sent_once(
    client, alice, submitted, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in(client, alice).post(reverse("jobs:create"), create_data(variants="3"))

    assert response.status_code == 302
    jobs = list(VideoJob.objects.all())
    assert len(jobs) == 3 and len({job.group for job in jobs}) == 1 and jobs[0].group is not None
    assert submitted.call_count == 3


def test_one_video_makes_no_group(client, alice, submitted):
    signed_in(client, alice).post(reverse("jobs:create"), create_data())

    assert VideoJob.objects.get().group is None


def test_a_group_over_the_limit_creates_nothing_and_says_by_how_much(client, alice, settings, submitted):
    settings.SORAWEB_LIMIT_ACTIVE_JOBS = 3
    make_job(alice)

    response = signed_in(client, alice).post(reverse("jobs:create"), create_data(variants="4"))

    assert response.status_code == 429
    assert "4 more would be 2 over" in response.content.decode()
    assert VideoJob.objects.count() == 1
    submitted.assert_not_called()


def test_variants_of_one_upload_share_one_stored_image(client, alice, submitted):
    data = create_data(variants="2", reference_image=upload(image_bytes(1280, 720)))
    signed_in(client, alice).post(reverse("jobs:create"), data)

    names = {job.reference_image.name for job in VideoJob.objects.all()}
    assert len(names) == 1 and default_storage.exists(names.pop())


def test_reusing_an_earlier_image_points_at_the_same_file(client, alice, bob, submitted):
    earlier = with_reference(bob)

    signed_in(client, alice).post(reverse("jobs:create"), create_data(reuse_reference=str(earlier.pk)))

    job = VideoJob.objects.exclude(pk=earlier.pk).get()
    assert job.reference_image.name == earlier.reference_image.name
    assert job.reference_note == "Fitted."


def test_an_image_fitted_for_the_other_orientation_is_refused(client, alice, submitted):
    earlier = with_reference(alice, aspect_ratio="9:16")

    response = signed_in(client, alice).post(
        reverse("jobs:create"), create_data(reuse_reference=str(earlier.pk))
    )

    assert "fitted for portrait" in response.content.decode()
    assert VideoJob.objects.count() == 1


def test_an_image_outside_the_gallery_scope_cannot_be_reused(client, alice, bob, settings, submitted):
    settings.SORAWEB_GALLERY_SCOPE = "own"
    earlier = with_reference(bob)

    signed_in(client, alice).post(reverse("jobs:create"), create_data(reuse_reference=str(earlier.pk)))

    assert VideoJob.objects.count() == 1


def test_the_form_offers_recent_images_with_their_orientation(client, alice, bob):
    with_reference(bob, aspect_ratio="9:16")

    page = signed_in(client, alice).get(reverse("jobs:create")).content.decode()

    assert 'name="reuse_reference"' in page and "bob&#x27;s portrait image" in page


def test_deleting_a_job_keeps_a_reference_image_another_job_uses(alice):
    earlier = with_reference(alice)
    reuser = make_job(alice, reference_image=earlier.reference_image.name)

    media.delete_files(earlier)
    earlier.delete()
    assert default_storage.exists(reuser.reference_image.name)

    name = reuser.reference_image.name
    media.delete_files(reuser)
    assert not default_storage.exists(name)


def test_the_gallery_stacks_a_group_with_each_variant_s_status(client, alice):
    group = uuid.uuid4()
    ready = finished(alice, group=group, prompt="one boat")
    running = make_job(alice, group=group, prompt="one boat", status=Status.PROCESSING)

    page = signed_in(client, alice).get(reverse("jobs:gallery")).content.decode()

    assert page.count(f'id="group-{group}"') == 1
    assert f'id="job-{ready.pk}"' in page and f'id="job-{running.pk}"' in page
    assert "2 variants" in page and "<progress" in page


def test_a_group_cut_by_the_page_end_is_shown_whole_on_one_page(client, alice):
    from jobs.views import PAGE_SIZE

    group = uuid.uuid4()
    older = [make_job(alice, prompt=f"older {n}") for n in range(3)]
    variants = [make_job(alice, group=group, prompt="one boat") for _ in range(4)]
    [make_job(alice, prompt=f"newer {n}") for n in range(PAGE_SIZE - 2)]  # the page ends mid-group
    client = signed_in(client, alice)

    first = client.get(reverse("jobs:gallery"))
    second = client.get(first.context["older_url"])

    assert [job.pk for job in first.context["entries"][-1]["members"]] == [job.pk for job in variants]
    shown = [job.pk for entry in second.context["entries"] for job in entry["members"]]
    assert shown == [job.pk for job in reversed(older)]


def test_the_live_cards_of_a_group_stay_variant_tiles(client, alice):
    running = make_job(alice, group=uuid.uuid4(), status=Status.PROCESSING)

    page = signed_in(client, alice).get(reverse("jobs:cards") + f"?ids={running.pk}").content.decode()

    assert f'class="variant variant--live" id="job-{running.pk}"' in page


def test_the_group_page_plays_every_finished_variant_with_one_control(client, alice, bob):
    group = uuid.uuid4()
    jobs = [finished(alice, group=group) for _ in range(3)]

    page = signed_in(client, bob).get(reverse("jobs:group", args=[group])).content.decode()

    assert page.count("data-variant") == 3 and "data-group-seek" in page
    assert all(reverse("jobs:video", args=[job.pk]) in page for job in jobs)
    # bob may see alice's variants but not star or delete them.
    assert "☆ Keep" not in page


def test_keep_one_then_delete_the_rest(client, alice):
    group = uuid.uuid4()
    keep, other = finished(alice, group=group), finished(alice, group=group)
    running = make_job(alice, group=group, status=Status.PROCESSING)
    client = signed_in(client, alice)

    client.post(reverse("jobs:keep", args=[keep.pk]))
    confirm = client.get(reverse("jobs:delete_rest", args=[group])).content.decode()
    client.post(reverse("jobs:delete_rest", args=[group]))

    assert "Delete 1 for good" in confirm
    assert set(VideoJob.objects.values_list("pk", flat=True)) == {keep.pk, running.pk}
    assert VideoJob.objects.get(pk=keep.pk).kept
    assert not default_storage.exists(other.video.name)


def test_nothing_is_deleted_before_one_is_kept(client, alice):
    group = uuid.uuid4()
    finished(alice, group=group)
    finished(alice, group=group)

    signed_in(client, alice).post(reverse("jobs:delete_rest", args=[group]))

    assert VideoJob.objects.count() == 2


def test_a_teammate_cannot_keep_or_delete_someone_else_s_variants(client, alice, bob):
    group = uuid.uuid4()
    job = finished(alice, group=group, kept=True)
    finished(alice, group=group)

    assert signed_in(client, bob).post(reverse("jobs:keep", args=[job.pk])).status_code == 403
    client.post(reverse("jobs:delete_rest", args=[group]))

    assert VideoJob.objects.count() == 2


def test_retrying_a_group_makes_a_new_group_of_as_many(client, alice, submitted):
    group = uuid.uuid4()
    for _ in range(3):
        finished(alice, group=group)

    response = signed_in(client, alice).post(reverse("jobs:retry_group", args=[group]))

    new = VideoJob.objects.exclude(group=group)
    assert new.count() == 3 and len({job.group for job in new}) == 1
    assert response.url == reverse("jobs:group", args=[new.first().group])


def test_use_these_settings_prefills_the_count(client, alice):
    job = make_job(alice, prompt="a kite over dunes")

    page = (
        signed_in(client, alice).get(reverse("jobs:create") + f"?from={job.pk}&variants=3").content.decode()
    )

    assert "a kite over dunes" in page
    assert re.search(r'<input[^>]*name="variants"[^>]*value="3"[^>]*checked', page)


def test_the_form_says_how_long_and_how_much_before_submitting(client, alice, settings):
    settings.SORAWEB_COST_UNIT = "credits"

    page = signed_in(client, alice).get(reverse("jobs:create")).content.decode()

    assert "in about 5 min" in page and "Expected cost: unknown yet." in page
    assert "data-estimates=" in page


def test_a_job_in_progress_shows_a_progress_bar_on_its_page(client, alice):
    job = make_job(alice, status=Status.PROCESSING, submitted_at=timezone.now())

    page = signed_in(client, alice).get(reverse("jobs:detail", args=[job.pk])).content.decode()

    assert "<progress" in page and "left" in page


def test_past_its_estimate_a_job_says_it_is_taking_longer_and_stops_at_95_percent(client, alice):
    late = make_job(alice, status=Status.PROCESSING, submitted_at=timezone.now() - timedelta(hours=1))

    page = signed_in(client, alice).get(reverse("jobs:detail", args=[late.pk])).content.decode()

    assert "Taking longer than usual" in page and 'value="95"' in page
