"""A ZIP of finished videos, written as it is sent.

zipstream-ng yields the archive piece by piece: nothing is written to a temporary file and
memory stays at about one read chunk, however large the total. The MP4s are stored as they
are (ZIP_STORED: they are compressed already), ZIP64 is used once the archive needs it, and
the files are read through Django's storage, so local media and S3 work alike.
"""

import csv
import io
import logging
from collections.abc import Iterable, Iterator

import zipstream.ng
from django.db.models.fields.files import FieldFile
from django.utils.text import slugify
from isal import isal_zlib
from zipstream import ZIP_STORED, ZipStream

from jobs.models import VideoJob

log = logging.getLogger(__name__)

# Every byte of a ZIP goes through CRC-32. zipstream-ng takes zipfile's (zlib's, about 1-2 GB/s
# here), which made the ZIP send at a third of the speed of reading the files; ISA-L's gives
# the same checksums at tens of GB/s. zipstream-ng looks the name up on its module at each call.
zipstream.ng.crc32 = isal_zlib.crc32

MAX_JOBS = 200
CHUNK = 2**20
MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = (
    "number", "prompt", "model", "orientation", "length_seconds", "who", "when", "cost",
    "gateway_id", "file_name", "note",
)  # fmt: skip
NOT_INCLUDED = "not included: this job has no stored video"


def file_name(job: VideoJob) -> str:
    """<job number>-<prompt slug>.mp4: the number keeps names unique, the slug makes them readable."""
    slug = slugify(job.prompt, allow_unicode=True)[:60].strip("-_")
    return f"{job.pk}-{slug}.mp4" if slug else f"{job.pk}.mp4"


def archive(jobs: Iterable[VideoJob]) -> ZipStream:
    """The ZIP of jobs' videos with manifest.csv first; jobs without a video are listed, not included.

    Sized, so the response can say its length (a browser then shows real progress): each file's
    size is asked of the storage before the first byte is sent.
    """
    stream = ZipStream(compress_type=ZIP_STORED, sized=True)
    rows, files = [], []
    for job in jobs:
        size = _size(job.video)
        if size is None:
            rows.append(_row(job, "", NOT_INCLUDED))
        else:
            name = file_name(job)
            rows.append(_row(job, name, ""))
            files.append((job.video, name, size))
    stream.add(manifest(rows), MANIFEST_NAME)
    for field, name, size in files:
        stream.add(_chunks(field), name, size=size)
    return stream


def manifest(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(MANIFEST_COLUMNS)
    writer.writerows(rows)
    # With a BOM, spreadsheet programs read the prompts' accents and emoji as UTF-8.
    return ("\ufeff" + out.getvalue()).encode()


def _row(job: VideoJob, name: str, note: str) -> list[str]:
    return [
        str(job.pk),
        _cell(job.prompt),
        job.get_model_display(),
        job.get_aspect_ratio_display(),
        str(job.duration),
        _cell(job.owner.get_username()),
        job.created_at.isoformat(),
        "" if job.cost is None else f"{job.cost:f}",
        job.upstream_id or "",
        name,
        note,
    ]


def _cell(text: str) -> str:
    # A spreadsheet would run a cell starting with one of these as a formula (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _size(field: FieldFile) -> int | None:
    if not field:
        return None
    try:
        return field.storage.size(field.name)
    except OSError:  # Listed in the row, missing from storage: say so rather than break the ZIP.
        log.warning("zip: %s is missing from storage", field.name)
        return None


def _chunks(field: FieldFile) -> Iterator[bytes]:
    # A handle of its own (not field.open(), which the field shares), closed as soon as it is read.
    with field.storage.open(field.name, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk
