"""The create form: every way input can be wrong, and what a valid form makes."""

import pytest
from django.utils.datastructures import MultiValueDict
from PIL import Image

from jobs.forms import VideoJobForm
from tests.factories import image_bytes, make_job, upload

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]


def form(image=None, **overrides):
    data = {"prompt": "a paper boat on a rainy street, cinematic", "model": "openAiSora2Plus"}
    data |= {"aspect_ratio": "16:9", "duration": "8"} | overrides
    files = MultiValueDict({"reference_image": [image]}) if image else None
    return VideoJobForm(data, files)


def test_a_complete_form_is_valid():
    assert form().is_valid()


def test_it_trims_the_prompt():
    f = form(prompt="   a fox in the snow \n ")
    assert f.is_valid()
    assert f.cleaned_data["prompt"] == "a fox in the snow"


@pytest.mark.parametrize("prompt", ["", "   \n\t "])
def test_it_asks_for_a_prompt(prompt):
    f = form(prompt=prompt)
    assert f.errors["prompt"] == ["Describe the video you want."]


def test_it_refuses_a_prompt_over_4000_characters():
    f = form(prompt="x" * 4001)
    assert "under 4000 characters (it has 4001)" in f.errors["prompt"][0]


def test_it_accepts_a_prompt_of_exactly_4000_characters():
    assert form(prompt="x" * 4000).is_valid()


@pytest.mark.parametrize(
    "field, value",
    [
        ("model", "openAiSora3Ultra"),
        ("aspect_ratio", "4:3"),
        ("duration", "10"),
        ("duration", "eight"),
        ("model", ""),
    ],
)
def test_it_refuses_a_value_that_is_not_offered(field, value):
    f = form(**{field: value})
    assert not f.is_valid()
    assert list(f.errors) == [field]


@pytest.mark.parametrize(
    "image, message",
    [
        (upload(b"%PDF-1.7 not an image", "cv.pdf", "application/pdf"), "not a JPEG, PNG or WebP image"),
        (upload(image_bytes(800, 600, "JPEG")[:500], "cut.jpg", "image/jpeg"), "damaged or cannot be read"),
        (upload(b"\0" * (5 * 1024 * 1024 + 1), "big.png"), "the limit is 5 MB"),
    ],
)
def test_a_bad_image_is_a_field_error_that_says_to_choose_it_again(image, message):
    f = form(image)
    assert list(f.errors) == ["reference_image"]
    assert message in f.errors["reference_image"][0]
    assert "Choose the image again" in f.errors["reference_image"][0]


def test_a_wrong_sized_png_is_cropped_and_the_note_is_set(alice):
    f = form(upload(image_bytes(1000, 1000)), aspect_ratio="16:9")
    assert f.is_valid(), f.errors
    job = f.save(commit=False)
    job.owner = alice
    job.save()
    assert job.reference_note == "Cropped and resized from 1000x1000 to 1280x720 to match landscape."
    assert job.reference_image.name.startswith("references/") and job.reference_image.name.endswith(".jpg")
    with job.reference_image.open("rb") as stored:
        assert Image.open(stored).size == (1280, 720)


def test_the_image_is_fitted_to_the_orientation_chosen(alice):
    f = form(upload(image_bytes(1280, 720)), aspect_ratio="9:16")
    assert f.is_valid()
    job = f.save(commit=False)
    assert job.reference_note == "Cropped and resized from 1280x720 to 720x1280 to match portrait."


def test_with_a_real_key_and_no_public_address_an_image_is_refused(settings):
    settings.SORA_DEMO_MODE, settings.PUBLIC_BASE_URL = False, ""
    f = form(upload(image_bytes(1280, 720)))
    assert "PUBLIC_BASE_URL is not set" in f.errors["reference_image"][0]
    assert not f.references_allowed


def test_with_a_real_key_and_no_public_address_a_job_without_image_is_fine(settings):
    settings.SORA_DEMO_MODE, settings.PUBLIC_BASE_URL = False, ""
    assert form().is_valid()


def test_with_a_real_key_and_a_public_address_an_image_is_accepted(settings):
    settings.SORA_DEMO_MODE, settings.PUBLIC_BASE_URL = False, "https://studio.example.com"
    assert form(upload(image_bytes(1280, 720))).is_valid()


def test_settings_of_an_earlier_job_prefill_everything_and_the_count(alice):
    job = make_job(
        alice, prompt="a lighthouse at dawn", model="openAiSora2Pro", aspect_ratio="9:16", duration=12
    )
    assert VideoJobForm.initial_from(job, variants=3) == {
        "prompt": "a lighthouse at dawn",
        "model": "openAiSora2Pro",
        "aspect_ratio": "9:16",
        "duration": 12,
        "variants": 3,
    }


@pytest.mark.parametrize(
    "prompt", ["\u200b", "\ufeff", "\u200b\ufeff\u200d \u00a0", "\u3164\u2800", "\u0301"]
)
def test_a_prompt_with_nothing_visible_is_refused(prompt):
    f = form(prompt=prompt)
    assert not f.is_valid()
    assert "no visible characters" in f.errors["prompt"][0] or "Describe the video" in f.errors["prompt"][0]


@pytest.mark.parametrize("prompt", ["\u200ba fox", "\u96ea\u306e\u72d0", "\U0001f98a"])
def test_a_prompt_with_visible_characters_among_invisible_ones_is_kept(prompt):
    f = form(prompt=prompt)
    assert f.is_valid(), f.errors
    assert f.cleaned_data["prompt"] == prompt


def test_settings_of_an_earlier_job_with_an_image_pick_that_image_to_reuse(alice):
    job = make_job(alice, reference_image="references/2026/11/kept.jpg")
    assert VideoJobForm.initial_from(job)["reuse_reference"] == job.pk
