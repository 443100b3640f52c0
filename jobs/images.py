"""Reference images: checked, turned upright, cropped to the gateway's exact size and re-encoded.

The gateway accepts only its exact sizes (VideoJob.SIZES: 1280x720 landscape, 720x1280
portrait). Re-encoding
every upload also means nothing a person uploads is stored as they sent it: a
polyglot file or a script renamed .jpg does not survive.
"""

import uuid
import warnings
from io import BytesIO

from django.core.files.base import ContentFile
from PIL import Image, ImageOps

from jobs.models import VideoJob

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
# Far above any photo a person would pick, far below what would exhaust memory.
MAX_PIXELS = 50_000_000
FORMATS = ["JPEG", "PNG", "WEBP"]
EXIF_ORIENTATION = 0x0112
SIZES = VideoJob.SIZES
ORIENTATION_NAMES = {"16:9": "landscape", "9:16": "portrait"}
CHOOSE_AGAIN = "Choose the image again: browsers do not keep a chosen file after an error."


class ImageRejected(ValueError):
    """The upload cannot be used; str() is fit to show a person."""


def normalise(upload, aspect_ratio):
    """Return (ContentFile named <uuid>.jpg, note) fitting aspect_ratio exactly, or raise ImageRejected."""
    if upload.size > MAX_UPLOAD_BYTES:
        raise ImageRejected(
            f"This image is {upload.size / 2**20:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB. "
            + CHOOSE_AGAIN
        )
    image = _open(upload)
    original = image.size
    changes = []
    if image.getexif().get(EXIF_ORIENTATION, 1) != 1:
        changes.append("turned upright")
    # Flattened before resizing: palette images would otherwise be resized without smoothing.
    image = _flatten(ImageOps.exif_transpose(image))
    target = SIZES[aspect_ratio]
    if image.size != target:
        same_shape = image.width * target[1] == image.height * target[0]
        changes.append("resized" if same_shape else "cropped and resized")
        image = ImageOps.fit(image, target, method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    output = BytesIO()
    image.save(output, format="JPEG", quality=90, optimize=True)
    note = ""
    if changes:
        what = " and ".join(changes)
        note = (
            f"{what[0].upper()}{what[1:]} from {original[0]}x{original[1]} to {target[0]}x{target[1]} "
            f"to match {ORIENTATION_NAMES[aspect_ratio]}."
        )
    return ContentFile(output.getvalue(), name=f"{uuid.uuid4().hex}.jpg"), note


def _open(upload):
    upload.seek(0)
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; refuse those too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(upload, formats=FORMATS)
            if image.width * image.height > MAX_PIXELS:
                raise Image.DecompressionBombError("too many pixels")
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected(
            f"This image has too many pixels to process safely (the limit is {MAX_PIXELS // 10**6} "
            "megapixels). " + CHOOSE_AGAIN
        ) from None
    except Image.UnidentifiedImageError:
        raise ImageRejected("This file is not a JPEG, PNG or WebP image. " + CHOOSE_AGAIN) from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise ImageRejected("This image is damaged or cannot be read. " + CHOOSE_AGAIN) from None
    return image


def _flatten(image):
    """RGB for JPEG; transparent areas become white rather than whatever colour hid under them."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
