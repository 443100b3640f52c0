"""Files: fetching and verifying finished videos, posters, and reference-image links."""

import logging
import mimetypes
import re
import subprocess
import time
import uuid
from contextlib import closing, suppress
from datetime import timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import requests
import urllib3
from django.conf import settings
from django.core import signing
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from django.db.models.fields.files import FieldFile
from django.urls import reverse
from PIL import Image, UnidentifiedImageError

from jobs import disk, params, upstream

logger = logging.getLogger(__name__)

CHUNK = 64 * 1024
# Posters and reference images are shown far smaller than they are stored (a gallery
# card, the video page's thumbnail): these narrower copies are made once, when the
# file is stored, and browsers pick one with srcset. Wider requests get the original.
IMAGE_WIDTHS = (160, 320)
REFERENCE_LINK_MAX_AGE = 24 * 3600
_SIGNER_SALT = "jobs.reference-image"


class StagedFile(File):
    """A finished temp file: FileSystemStorage moves it into place (an atomic rename)."""

    def temporary_file_path(self) -> str:
        assert self.file is not None
        return self.file.name


def fetch_video(job: Any) -> tuple[str, str, float]:
    """Download, verify and store the job's video and a poster; returns (video_name, poster_name, seconds)."""
    staging = Path(settings.DATA_DIR) / "staging"
    staging.mkdir(exist_ok=True)
    part = staging / f"job-{job.pk}-{uuid.uuid4().hex[:8]}.mp4"
    poster = part.with_suffix(".jpg")
    try:
        _download(job.result_url, part)
        info = probe(part)
        if not info.get("duration"):
            raise upstream.Permanent("the file is not a playable video", kind="download")
        make_poster(part, poster, info["duration"])
        video_name = _store(part, f"videos/{job.created_at:%Y/%m}/job-{job.pk}.mp4")
        poster_name = _store(poster, f"posters/{job.created_at:%Y/%m}/job-{job.pk}.jpg")
        with default_storage.open(poster_name) as stored:  # The staged poster was moved into place.
            store_sizes(stored, poster_name)
        if job.reference_image:
            # Made here rather than at submission so every stored video has them; a reference
            # that went missing from storage must not fail a video that arrived.
            with suppress(OSError, UnidentifiedImageError), job.reference_image.open("rb") as source:
                store_sizes(source, job.reference_image.name, job.reference_image.storage)
        return video_name, poster_name, info["duration"]
    except OSError as exc:
        if disk.is_full(exc):
            raise disk.StorageFull(f"the disk is full ({exc.strerror})") from exc
        raise
    finally:
        part.unlink(missing_ok=True)
        poster.unlink(missing_ok=True)


def _download(url: str, path: Path) -> None:
    """Stream url into path with constant memory, a size cap and a total deadline."""
    deadline = time.monotonic() + settings.SORA_DOWNLOAD_TIMEOUT
    limit = settings.SORA_MAX_VIDEO_BYTES
    too_big = upstream.Permanent(f"the video is larger than the {limit // 2**20} MB limit", kind="download")
    not_mp4 = upstream.Permanent("the link did not lead to an MP4 video", kind="download")
    with closing(upstream.open_video(url)) as response:
        declared = int(response.headers.get("Content-Length") or 0)
        if declared > limit:
            raise too_big
        size, head = 0, b""
        try:
            with open(path, "wb") as out:
                while True:
                    if time.monotonic() > deadline:
                        raise upstream.Transient(
                            f"the download took longer than {settings.SORA_DOWNLOAD_TIMEOUT} seconds"
                        )
                    # read1 returns whatever one read brings, so a slow drip cannot hold a
                    # whole chunk past the deadline: each read waits at most SORA_READ_TIMEOUT.
                    chunk = response.raw.read1(CHUNK)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > limit:
                        raise too_big
                    if len(head) < 8:
                        head = (head + chunk)[:8]
                        if len(head) == 8 and head[4:8] != b"ftyp":
                            raise not_mp4
                    out.write(chunk)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            if disk.is_full(exc):
                raise disk.StorageFull("the disk is full (no room for the video)") from exc
            raise upstream.Transient("the download broke off before the end") from exc
    if size == 0 or (declared and size != declared):
        raise upstream.Transient("the download broke off before the end")
    if len(head) < 8:
        raise not_mp4


def clean_staging(older_than: timedelta) -> None:
    """Remove what killed downloads left behind; younger files may still be being written."""
    cutoff = time.time() - older_than.total_seconds()
    for path in (Path(settings.DATA_DIR) / "staging").glob("job-*"):
        with suppress(OSError):
            if path.stat().st_mtime < cutoff:
                path.unlink()


# Parts of a multipart upload to object storage: memory stays near CHUNK x CONCURRENCY
# whatever the video's size (bench/s3_upload_child.py measures it).
S3_PART_BYTES = 8 * 2**20
S3_PART_CONCURRENCY = 2


def _store(path: Path, name: str) -> str:
    """Put a staged, verified file at name (or a free name beside it) and return where it went.

    On disk it is a rename. On object storage it is a managed upload from the file, in
    parts: S3 shows an object under its key only once the upload completes, so nobody
    ever sees half a video there either. A worker killed mid-upload leaves only parts
    of an unfinished upload, invisible under the key; the download is retried and
    abort_stale_uploads clears the parts.
    """
    if isinstance(default_storage, FileSystemStorage) or not hasattr(default_storage, "bucket"):
        with open(path, "rb") as handle:
            return default_storage.save(name, StagedFile(handle, name=str(path)))
    from boto3.s3.transfer import TransferConfig

    name = default_storage.get_available_name(name)
    default_storage.bucket.upload_file(
        str(path),
        name,
        ExtraArgs={"ContentType": mimetypes.guess_type(name)[0] or "application/octet-stream"},
        Config=TransferConfig(
            multipart_threshold=S3_PART_BYTES,
            multipart_chunksize=S3_PART_BYTES,
            max_concurrency=S3_PART_CONCURRENCY,
        ),
    )
    return name


_next_abort_check = 0.0


def abort_stale_uploads(older_than: timedelta, *, every: float = 0) -> int:
    """Abort unfinished multipart uploads (a killed worker's) older than older_than; how many.

    Their parts are billed storage until aborted. A bucket lifecycle rule
    (AbortIncompleteMultipartUpload) does the same; this covers buckets without one.
    every: at most one listing per that many seconds in this process (the sweep runs often).
    """
    global _next_abort_check
    bucket = getattr(default_storage, "bucket", None)
    if bucket is None or time.monotonic() < _next_abort_check:
        return 0
    _next_abort_check = time.monotonic() + every
    from botocore.exceptions import BotoCoreError, ClientError

    cutoff = time.time() - older_than.total_seconds()
    aborted = 0
    try:
        for upload in bucket.multipart_uploads.all():
            if upload.initiated.timestamp() < cutoff:
                upload.abort()
                aborted += 1
    except (BotoCoreError, ClientError) as exc:
        # Left for the next check; the sweep's own work must go on.
        logger.warning("could not list unfinished uploads in the bucket: %s", type(exc).__name__)
    return aborted


def delete_files(job: Any) -> None:
    """Delete job's stored files, except a reference image another job still uses (variants, reuse)."""
    reference = job.reference_image
    if reference and type(job).objects.filter(reference_image=reference.name).exclude(pk=job.pk).exists():
        reference = None
    for field in (job.poster, reference):
        for width in IMAGE_WIDTHS if field else ():
            with suppress(OSError):
                field.storage.delete(sized_name(field.name, width))
    for field in (job.video, job.poster, reference):
        if field:
            with suppress(OSError):
                field.delete(save=False)


# --- Smaller copies of posters and reference images --------------------------------


def sized_name(name: str, width: int) -> str:
    """Where the copy of a stored image at width lives: derived from its name, so no column is needed."""
    stem = name.rpartition(".")[0] or name
    return f"{stem}-{width}w.jpg"


def store_sizes(source: Any, name: str, storage: Any = default_storage) -> None:
    """Store JPEG copies of the image at source (a path or open file) at each of IMAGE_WIDTHS.

    Widths the image does not exceed are skipped: the original serves them.
    """
    with Image.open(source) as opened:
        image = opened.convert("RGB")
        for width in IMAGE_WIDTHS:
            if width >= image.width:
                continue
            height = max(1, round(image.height * width / image.width))
            output = BytesIO()
            image.resize((width, height), Image.Resampling.LANCZOS).save(
                output, format="JPEG", quality=80, optimize=True, progressive=True
            )
            target = sized_name(name, width)
            # Storage would pick a new name beside an old copy; the name must stay derivable.
            storage.delete(target)
            storage.save(target, ContentFile(output.getvalue()))


def make_image_sizes(job: Any, only_missing: bool = False) -> int:
    """Store the smaller copies of a job's poster and reference image (for videos stored before them)."""
    made = 0
    for field in (job.poster, job.reference_image):
        if not field:
            continue
        if only_missing and all(field.storage.exists(sized_name(field.name, w)) for w in IMAGE_WIDTHS):
            continue
        with field.open("rb") as source:
            store_sizes(source, field.name, field.storage)
        made += 1
    return made


def sized(field: Any, width: object) -> Any:
    """The stored copy of field at width (?w=, untrusted), or field itself when there is none."""
    width = str(width or "")
    if not (
        field and len(width) <= 5 and width.isascii() and width.isdecimal() and int(width) in IMAGE_WIDTHS
    ):
        return field
    name = sized_name(field.name, int(width))
    if not field.storage.exists(name):
        return field
    return FieldFile(field.instance, field.field, name)


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO_SIZE = re.compile(r"Stream #.*Video: .*?(\d{2,5})x(\d{2,5})")


def probe(path: Path) -> dict[str, float]:
    """Width, height and duration (seconds) of a video, read from ffmpeg's report."""
    result = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    info: dict[str, float] = {}
    if match := _DURATION.search(result.stderr):
        hours, minutes, seconds = match.groups()
        info["duration"] = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    if match := _VIDEO_SIZE.search(result.stderr):
        info["width"], info["height"] = int(match[1]), int(match[2])
    return info


def make_poster(video: Path, poster: Path, duration: float) -> None:
    result = subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
            "-ss", f"{min(1.0, duration / 2):.2f}", "-i", str(video),
            "-frames:v", "1", "-vf", "scale='min(640,iw)':-2", "-q:v", "4", str(poster),
        ],
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    if result.returncode and b"No space left" in result.stderr:
        raise disk.StorageFull("the disk is full (no room for the poster)")
    if result.returncode or not poster.exists():
        raise upstream.Permanent("the file is not a playable video (no frame could be read)", kind="download")


# --- Reference images: the gateway fetches them by URL ---------------------------


def reference_token(job: Any) -> str:
    return signing.dumps(job.pk, salt=_SIGNER_SALT, compress=True)


def job_pk_from_reference_token(token: str) -> int | None:
    """The job a reference link names, or None when it is forged or expired."""
    try:
        pk = signing.loads(token, salt=_SIGNER_SALT, max_age=REFERENCE_LINK_MAX_AGE)
    except signing.BadSignature:
        return None
    # Signed by us but of another shape (another salt's payload, an old format): not a link.
    return pk if params.is_pk(pk) else None


def reference_url(job: Any) -> str:
    """An unguessable, expiring link the gateway can fetch the job's reference image from.

    On object storage, a presigned GET on the bucket: no public address for soraweb
    itself is needed. Otherwise a signed link to soraweb at PUBLIC_BASE_URL.
    """
    storage = job.reference_image.storage
    if settings.S3_BUCKET and hasattr(storage, "bucket"):
        return storage.url(job.reference_image.name, expire=REFERENCE_LINK_MAX_AGE)
    if not settings.PUBLIC_BASE_URL:
        raise upstream.Permanent(
            "The reference image cannot be sent: PUBLIC_BASE_URL is not set, so the video service "
            "has no address to fetch it from.",
            kind="rejected",
        )
    return settings.PUBLIC_BASE_URL + reverse("jobs:reference", args=[reference_token(job)])
