"""Reference images: what is accepted, what is refused, and what is done to fit the gateway."""

from io import BytesIO

import pytest
from PIL import Image

from jobs import images
from tests.factories import image_bytes, upload


def opened(content_file):
    return Image.open(BytesIO(content_file.read()))


def test_it_keeps_an_exact_landscape_jpeg_without_a_note():
    stored, note = images.normalise(upload(image_bytes(1280, 720, "JPEG"), "a.jpg"), "16:9")
    assert note == ""
    picture = opened(stored)
    assert (picture.format, picture.size, picture.mode) == ("JPEG", (1280, 720), "RGB")


def test_it_names_the_stored_file_freshly_whatever_the_upload_was_called():
    stored, _ = images.normalise(upload(image_bytes(1280, 720), "../../etc/passwd.png"), "16:9")
    assert stored.name.endswith(".jpg")
    assert len(stored.name) == len("0123456789abcdef0123456789abcdef.jpg")


def test_it_crops_and_resizes_a_square_png_for_landscape_and_says_so():
    stored, note = images.normalise(upload(image_bytes(1000, 1000)), "16:9")
    assert opened(stored).size == (1280, 720)
    assert note == "Cropped and resized from 1000x1000 to 1280x720 to match landscape."


def test_it_crops_and_resizes_a_square_png_for_portrait():
    stored, note = images.normalise(upload(image_bytes(1000, 1000)), "9:16")
    assert opened(stored).size == (720, 1280)
    assert note == "Cropped and resized from 1000x1000 to 720x1280 to match portrait."


def test_it_only_resizes_an_image_of_the_right_shape():
    _, note = images.normalise(upload(image_bytes(2560, 1440)), "16:9")
    assert note == "Resized from 2560x1440 to 1280x720 to match landscape."


def test_it_crops_a_landscape_image_from_the_center_for_portrait():
    picture = Image.new("RGB", (1600, 900), (255, 0, 0))
    picture.paste((0, 0, 255), (600, 0, 1000, 900))  # a blue band in the middle
    data = BytesIO()
    picture.save(data, format="PNG")
    stored, _ = images.normalise(upload(data.getvalue()), "9:16")
    red, green, blue = opened(stored).getpixel((360, 640))
    assert blue > 200 and red < 50


def test_it_turns_a_sideways_phone_photo_upright_before_fitting():
    exif = Image.Exif()
    exif[images.EXIF_ORIENTATION] = 6  # stored sideways, shown rotated 90 degrees
    content = image_bytes(1280, 720, "JPEG", exif=exif.tobytes())
    stored, note = images.normalise(upload(content, "phone.jpg", "image/jpeg"), "9:16")
    assert opened(stored).size == (720, 1280)
    assert note == "Turned upright from 1280x720 to 720x1280 to match portrait."


def test_it_flattens_transparency_onto_white():
    content = image_bytes(1280, 720, mode="RGBA", color=(0, 0, 0, 0))
    stored, _ = images.normalise(upload(content), "16:9")
    assert opened(stored).getpixel((10, 10)) >= (250, 250, 250)


def test_it_accepts_webp():
    stored, _ = images.normalise(upload(image_bytes(640, 360, "WEBP"), "a.webp", "image/webp"), "16:9")
    assert opened(stored).size == (1280, 720)


def test_it_re_encodes_so_nothing_appended_to_the_upload_survives():
    polyglot = image_bytes(1280, 720) + b"<html><script>alert(1)</script></html>"
    stored, _ = images.normalise(upload(polyglot, "x.png"), "16:9")
    assert b"<script" not in stored.read()


@pytest.mark.parametrize(
    "content, name",
    [
        (b"just some text, not a picture", "notes.png"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "x.svg"),
        (image_bytes(64, 64, "GIF"), "anim.gif"),
        (image_bytes(64, 64, "BMP"), "old.bmp"),
    ],
)
def test_it_refuses_files_that_are_not_jpeg_png_or_webp(content, name):
    with pytest.raises(images.ImageRejected, match="not a JPEG, PNG or WebP image"):
        images.normalise(upload(content, name), "16:9")


def test_it_refuses_a_damaged_image():
    truncated = image_bytes(800, 600, "JPEG")[:600]
    with pytest.raises(images.ImageRejected, match="damaged or cannot be read"):
        images.normalise(upload(truncated, "broken.jpg", "image/jpeg"), "16:9")


def test_it_refuses_an_upload_over_five_megabytes_before_opening_it():
    huge = upload(b"\0" * (images.MAX_UPLOAD_BYTES + 1), "huge.png")
    with pytest.raises(images.ImageRejected, match="the limit is 5 MB"):
        images.normalise(huge, "16:9")


def test_it_refuses_an_image_with_too_many_pixels(monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    with pytest.raises(images.ImageRejected, match="too many pixels"):
        images.normalise(upload(image_bytes(100, 100)), "16:9")


def test_it_refuses_what_pillow_itself_calls_a_decompression_bomb(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(images.ImageRejected, match="too many pixels"):
        images.normalise(upload(image_bytes(40, 40)), "16:9")


def test_every_refusal_tells_people_to_choose_the_file_again():
    with pytest.raises(images.ImageRejected, match="Choose the image again"):
        images.normalise(upload(b"nope"), "16:9")
