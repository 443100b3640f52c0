"""Plain helpers for making rows and files in tests."""

import functools
import subprocess
import tempfile
from io import BytesIO
from pathlib import Path

import imageio_ffmpeg
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from jobs.models import VideoJob


def make_job(owner=None, **overrides):
    if owner is None:
        owner, _ = get_user_model().objects.get_or_create(username="alice")
    fields = {"prompt": "a paper boat on a stream", "model": "openAiSora2Plus", "aspect_ratio": "16:9"}
    fields.update(overrides)
    return VideoJob.objects.create(owner=owner, **fields)


def image_bytes(width, height, fmt="PNG", mode="RGB", color=(200, 60, 40), **save_options):
    """A real image file of the given size and format, as bytes."""
    output = BytesIO()
    Image.new(mode, (width, height), color).save(output, format=fmt, **save_options)
    return output.getvalue()


def upload(content, name="picture.png", content_type="image/png"):
    return SimpleUploadedFile(name, content, content_type=content_type)


@functools.cache
def tiny_mp4():
    """A real one-second 128x72 H.264 MP4, made once per test run."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tiny.mp4"
        subprocess.run(
            [
                imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
                "-f", "lavfi", "-i", "testsrc2=size=128x72:rate=10:duration=1",
                "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path),
            ],
            check=True,
            timeout=60,
        )  # fmt: skip
        return path.read_bytes()
